"""One failed-run path for every flow: a record whose error a user can act on, and logs with the details.

A :class:`~ferry.errors.FerryError`'s message is the record's error: it says
what was wrong and what to do. Anything else is a bug or a library's error
whose text may quote customer data (driver errors do), so the record names
only its type and the traceback goes to the run's logs. Every flow then
ends with :func:`failed`, so the run history shows the record and the UI the
message.
"""

from __future__ import annotations

from prefect.states import Failed, State

from ferry.errors import FerryError, RunFailedError, TransientError


def failed(error: str, record: object) -> State:
    """The Failed state a flow ends with: ``error`` as its message, the run record inside its data (a RunFailedError)."""
    return Failed(message=error, data=RunFailedError(error, record))


def failure_message(exc: BaseException, what: str, logger, *, nothing_written: bool = False) -> str:
    """Log ``exc`` (the traceback only when it is not one of Ferry's errors) and return the record's error text."""
    if isinstance(exc, TransientError):  # it reached the flow: its task's retries are spent
        logger.error("%s failed: %s", what.capitalize(), exc.after_retries())
        return exc.after_retries()
    if isinstance(exc, FerryError):
        logger.error("%s failed: %s", what.capitalize(), exc)
        return str(exc)
    logger.exception("%s failed unexpectedly", what.capitalize())
    written = " Nothing was written (it is one transaction); the run can be retried." if nothing_written else ""
    return f"The {what} failed with an unexpected {type(exc).__name__}; the flow run's logs hold the details.{written}"
