"""One error hierarchy for Ferry.

Every error carries a message a user can act on: what was wrong, with which
value, and what to do. Errors never carry customer data (Prefect pickles
exceptions into run states and shows them in the UI), and they stay small and
picklable. ``transient`` tells the retry machinery whether trying again can help.
"""

from __future__ import annotations

from dataclasses import dataclass


class FerryError(Exception):
    """Base of every error Ferry raises on purpose."""

    transient: bool = False

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n{hint}" if "\n" in message else f"{message} {hint}")

    def __reduce__(self):  # keep subclasses picklable with their own signature
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(cls: type[FerryError], state: dict) -> FerryError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("message"))
    err.__dict__.update(state)
    return err


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a parameter: the field, the value given, and why."""

    field: str
    value: object
    reason: str

    def __str__(self) -> str:
        shown = repr(self.value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return f"{self.field}={shown}: {self.reason}"


class ParameterError(FerryError):
    """The parameters of a run are invalid. Lists every problem at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{len(self.problems)} invalid parameter(s):\n{lines}",
            "Fix the listed parameters and run again; nothing was read or written.",
        )


class UnknownResourceError(FerryError):
    """A resource slug that the catalog does not know."""


class StoreError(FerryError):
    """The store cannot be reached or is not initialised."""


class DataValidationError(FerryError):
    """Data read from the store (or a file) breaks the resource catalog's rules."""


class SourceFileError(FerryError):
    """An import file cannot be read as data: unknown format, undecodable text, an archive holding several files."""


class SerializationError(FerryError):
    """The data cannot be written in the requested format (e.g. too many rows for PDF)."""


class DestinationError(FerryError):
    """A destination refused or failed a delivery."""


class TransientDestinationError(DestinationError):
    """A delivery failed in a way that retrying may fix (timeouts, resets, 5xx)."""

    transient = True


class SourceError(FerryError):
    """An import source (a URL or a file behind a block) cannot be read, or is refused."""


class TransientSourceError(SourceError):
    """Reading a source failed in a way that retrying may fix (timeouts, resets, 5xx)."""

    transient = True


class NotificationError(FerryError):
    """A completion/failure notice (e-mail, webhook) could not be sent."""
