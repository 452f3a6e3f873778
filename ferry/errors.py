"""One error hierarchy for Ferry.

Every error carries a message a user can act on: what was wrong, with which
value, and what to do. Errors never carry customer data (Prefect pickles
exceptions into run states and shows them in the UI), and they stay small and
picklable.

Errors are told apart by type, never by message text. Whether trying again can
help is a marker, as in dlt's ``TransientException``: an error class that also
derives from :class:`TransientError` is retried (with backoff) by the tasks
that talk to the outside world; every other error fails the run at once.
Classes are pickled by their path (``ferry.errors.X``) into Prefect's run
states, so they live here and keep their names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


class FerryError(Exception):
    """Base of every error Ferry raises on purpose."""

    #: True for :class:`TransientError` subclasses: trying again may help.
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


class TransientError(FerryError):
    """Marker: the failure may go away if the same call is tried again (timeouts, resets, 5xx, 429).

    Its text says Ferry retries it; once the retries are spent, the run's record
    says :meth:`after_retries` instead, so the last word is not a promise.
    """

    transient = True
    RETRY_NOTE = "Ferry retries this."

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, " ".join(part for part in (hint, self.RETRY_NOTE) if part) or None)
        self.plain_hint = hint

    def after_retries(self) -> str:
        """The error once every retry failed too."""
        hint = getattr(self, "plain_hint", None)
        return f"{self.message} {hint + ' ' if hint else ''}It still failed after Ferry's retries: run it again once that is fixed."


def is_transient(exc: BaseException) -> bool:
    """Whether retrying ``exc`` can help: Ferry's transient errors, and network timeouts and resets from libraries."""
    if isinstance(exc, FerryError):
        return isinstance(exc, TransientError)
    return isinstance(exc, (ConnectionError, TimeoutError))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a parameter: the field, the value given, and why."""

    field: str
    value: object
    reason: str

    def __str__(self) -> str:
        shown = self.value.isoformat() if isinstance(self.value, (date, datetime)) else repr(self.value)
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


def problems_from_validation(errors: list[dict], root: str = "request", field_name=None) -> list[Problem]:
    """pydantic's ``ValidationError.errors()`` as Problems (every error at once); values of secret fields withheld.

    A location is named with dots (``filters.0.op``), or ``root`` when it is
    the whole object; ``field_name(loc)`` names it the way the caller's users
    know it instead (a job names request fields as job fields).
    """
    problems = []
    for error in errors:
        loc = tuple(error.get("loc") or ())
        name = field_name(loc) if field_name else ".".join(str(part) for part in loc) or root
        value = "***" if looks_secret(name) else error.get("input")
        problems.append(Problem(name, value, error["msg"]))
    return problems


def looks_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in ("password", "secret", "token", "passphrase", "private_key", "api_key"))


class UnknownResourceError(FerryError):
    """A resource slug that the catalog does not know."""


class RunNotFoundError(FerryError):
    """No flow run with that id in this Prefect server's history (or not one of the kind asked for)."""


class RunStateError(FerryError):
    """The run exists but cannot give what was asked: not finished yet, failed, or its record is unreadable."""


class JobNotFoundError(FerryError):
    """No export job (a Ferry-tagged deployment) by that name or id."""


class JobExistsError(FerryError):
    """A job or deployment of that name exists already."""


class InvalidJobError(FerryError):
    """A job's stored parameters no longer validate (edited outside Ferry)."""


class ConfigurationError(FerryError):
    """This installation cannot do what was asked (a Prefect version, a missing deployment or server)."""


class DeploymentUnavailableError(ConfigurationError):
    """A large import was to run as a deployment run, but no deployment or server could take it."""


class StoreError(FerryError):
    """The store cannot be reached or is not initialised."""


class UnknownWorkspaceError(StoreError):
    """A workspace name that the store does not hold."""


class StoreBusyError(StoreError, TransientError):
    """Another run holds the store's write lock (SQLite) longer than this writer waits; trying later helps."""

    RETRY_NOTE = ""  # its message says what to do; the task's retries are its own


class StoreWriteError(StoreError):
    """The database refused a write for a reason of its own (a constraint, a type); the message names it, never the values."""


class DataValidationError(FerryError):
    """Data read from the store (or a file) breaks the resource catalog's rules."""


class StageStopped(FerryError):
    """A stage of a run stopped because another stage running beside it failed or ended first; that stage's error is the run's."""


class SourceFileError(FerryError):
    """An import file cannot be read as data: unknown format, undecodable text, an archive holding several files."""


class SerializationError(FerryError):
    """The data cannot be written in the requested format (e.g. too many rows for PDF)."""


class DestinationError(FerryError):
    """A destination refused or failed a delivery."""


class TransientDestinationError(DestinationError, TransientError):
    """A delivery failed in a way that retrying may fix (timeouts, resets, 5xx)."""


class SigningUnavailableError(DestinationError):
    """The destination's credentials cannot sign download URLs (e.g. a SAS without an account key)."""


class SourceError(FerryError):
    """An import source (a URL or a file behind a block) cannot be read, or is refused."""


class TransientSourceError(SourceError, TransientError):
    """Reading a source failed in a way that retrying may fix (timeouts, resets, 5xx)."""


class ImportConflictError(FerryError):
    """Rows of the file conflict with stored records in a way the chosen strategy cannot settle."""


class RollbackError(FerryError):
    """An import cannot be undone (unknown run, already rolled back, or its records changed since)."""


class NotificationError(FerryError):
    """A completion/failure notice (e-mail, webhook) could not be sent."""


class TransientNotificationError(NotificationError, TransientError):
    """Sending a notice failed in a way that retrying may fix (connection refused, timeouts, 4xx SMTP replies)."""


class WorkspaceExistsError(FerryError):
    """A workspace of that name (slug) exists already."""


class WorkspaceBusyError(FerryError):
    """A workspace cannot be deleted while runs of it are in flight (pending, running or cancelling)."""


class KeyNotFoundError(FerryError):
    """No API key with that id in the store."""


class ReportNotFoundError(FerryError):
    """No saved report with that id (or name) in the workspace; another workspace's report is reported the same (404)."""


# --- the HTTP API's refusals (each maps to one status: api/problems.py) --------------------------------


class AuthenticationError(FerryError):
    """No API key, or one that is malformed, unknown, revoked or expired (401)."""


class PermissionDeniedError(FerryError):
    """The key's role may not do this (403)."""


class RateLimitedError(TransientError):
    """Too many requests for the key's (or address's) budget; retry after the window (429)."""

    RETRY_NOTE = ""  # the caller retries, not Ferry


class MalformedRequestError(FerryError):
    """The request cannot be read at all: its body is not valid JSON (400)."""


class UnsupportedMediaTypeError(FerryError):
    """A JSON endpoint was called without a JSON content type (415)."""


class IdempotencyKeyReusedError(FerryError):
    """An ``Idempotency-Key`` already started a run with other parameters (422)."""


class PayloadTooLargeError(FerryError):
    """An upload or body is over its size limit (413)."""


class UploadNotFoundError(FerryError):
    """No upload with that id in the key's workspace (404)."""


class UploadStateError(FerryError):
    """An upload cannot do what was asked: no content yet, its content is there already, or it expired (409)."""


class RunFailedError(FerryError):
    """A flow run ended failed; ``record`` is its run record, whose error says why.

    A failed state's data must be an exception Prefect's engine can raise (a
    record there ends a deployment run with ``TypeError: Unexpected result for
    failed state``), so flows end failed runs with this error and the record
    rides inside it; ``ferry.runs.persisted_result`` hands the record back.
    """

    def __init__(self, message: str, record: object = None) -> None:
        super().__init__(message)
        self.record = record
