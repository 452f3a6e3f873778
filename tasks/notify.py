"""Notify: tell someone that a run finished (or failed), by e-mail and/or webhook.

Notifications are best effort: the file is delivered (or the run has failed)
whatever happens to the notice, so :func:`send_notifications` never raises. It
logs a warning per channel that failed and returns the problems. Each channel
is its own task, retried only on transient errors (the error type decides).

What a notice carries is the run record's *summary*: the scalar fields (status,
counts, size, location, download URL, error, times). Lists and mappings are
left out because some of them (an import's sample rows and first errors) hold
customer data; query strings of import sources are cut (signed URLs are
credentials).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NONE
from pydantic import BaseModel

from ferry.errors import FerryError, NotificationError
from ferry.notifications import REF, SMTP_SLUGS, WEBHOOK_SLUGS, email_addresses
from tasks.retry import retry_transient

# Shown first, in this order; other scalar fields of the record follow.
ORDER = (
    "status",
    "resource",
    "workspace",
    "format",
    "record_count",
    "total_rows",
    "created_rows",
    "updated_rows",
    "skipped_rows",
    "error_rows",
    "file_size",
    "destination_path",
    "url",
    "source",
    "sha256",
    "run_id",
    "started_at",
    "completed_at",
    "error",
)


def _load(ref: str, slugs: tuple[str, ...]):
    """Load ``NAME`` (first slug's type) or ``SLUG/NAME``."""
    from prefect_email import EmailServerCredentials

    from blocks.smtp import SmtpServer
    from blocks.webhook import Webhook

    classes = {
        "smtp-server": SmtpServer,
        "smtp": SmtpServer,
        "email-server-credentials": EmailServerCredentials,
        "email": EmailServerCredentials,
        "webhook-endpoint": Webhook,
        "webhook": Webhook,
    }
    match = REF.match(ref)
    slug = (match.group(1) if match else None) or slugs[0]
    name = match.group(2) if match else ref
    if slug not in slugs:
        raise NotificationError(f"{ref!r} is not a {' or '.join(slugs)} block reference.", "Check the notification settings.")
    try:
        return classes[slug].load(name)
    except ValueError:
        raise NotificationError(
            f"No {slug} block named {name!r}.", f"Create it first (ferry blocks create {slug.split('-')[0]} {name} ...)."
        ) from None


def summary(record: BaseModel) -> dict[str, Any]:
    """The record's scalar fields (see the module docstring for why only those)."""
    from ferry.checks import shown_url as shown

    data = record.model_dump(mode="json")
    fields = [k for k in ORDER if k in data] + [k for k in data if k not in ORDER]
    out: dict[str, Any] = {}
    for key in fields:
        value = data[key]
        if isinstance(value, (dict, list)):
            continue
        if key == "source" and isinstance(value, str) and "://" in value:
            value = shown(value)
        out[key] = value
    return out


def email_text(kind: str, facts: dict[str, Any]) -> tuple[str, str]:
    """Subject and plain-text body of the notice."""
    what = f"{facts.get('resource', '?')} of workspace {facts.get('workspace', '?')}"
    ok = facts.get("status") in ("success", "partial")
    verdict = {"success": "succeeded", "partial": "PARTLY succeeded (rows rejected)"}.get(facts.get("status"), "FAILED")
    count = facts.get("record_count", facts.get("processed_rows"))
    subject = f"Ferry {kind} {verdict}: {what}" + (f" ({count:,} records)" if ok and isinstance(count, int) else "")
    width = max(len(k) for k in facts) if facts else 0
    lines = [f"The {kind} of {what} {'finished' if ok else 'failed'}.", ""]
    for key, value in facts.items():
        if value is None or value == "":
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        lines.append(f"{key.replace('_', ' ').ljust(width)}  {value}")
    lines += ["", f"Sent by Ferry at {datetime.now().astimezone().isoformat(timespec='seconds')}."]
    return subject, "\n".join(lines) + "\n"


@task(
    name="notify-email", cache_policy=NONE, persist_result=False, retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_transient
)
def notify_email(facts: dict[str, Any], kind: str, to: list[str], smtp: str) -> None:
    from blocks.smtp import send_email

    subject, text = email_text(kind, facts)
    send_email(_load(smtp, SMTP_SLUGS), to, subject, text)


@task(
    name="notify-webhook", cache_policy=NONE, persist_result=False, retries=1, retry_delay_seconds=[30], retry_condition_fn=retry_transient
)
def notify_webhook(facts: dict[str, Any], kind: str, webhook: str) -> None:
    """The webhook block retries 5xx/429 itself; this task adds one later try for a longer outage."""
    _load(webhook, WEBHOOK_SLUGS).send({"event": f"{kind}.{facts.get('status')}", "record": facts}, f"the {kind} notice")


def send_notifications(
    record: BaseModel, kind: str, notify_email_to: str | None, notify_webhook_ref: str | None, notify_smtp_ref: str | None = None
) -> list[str]:
    """Send the notices a run asked for; never raises. Returns one message per channel that failed."""
    if not notify_email_to and not notify_webhook_ref:
        return []
    from ferry.notifications import notification_problems
    from ferry.settings import get_settings

    logger = get_run_logger()
    facts = summary(record)
    failures: list[str] = []
    problems = notification_problems(notify_email_to, notify_webhook_ref, notify_smtp_ref, get_settings().smtp_block)
    for problem in problems:  # the run already failed on these (they are parameters); do not act on them
        failures.append(f"{problem.field}: {problem.reason}")
        logger.warning("Not sending the %s notice: %s", kind, problem)
    bad = {p.field for p in problems}
    if bad & {"notify_email", "notify_smtp"}:
        notify_email_to = None
    if "notify_webhook" in bad:
        notify_webhook_ref = None
    channels = []
    if notify_email_to:
        smtp = notify_smtp_ref or get_settings().smtp_block
        channels.append(("e-mail", lambda: notify_email(facts, kind, email_addresses(notify_email_to), smtp) if smtp else _no_smtp()))
    if notify_webhook_ref:
        channels.append(("webhook", lambda: notify_webhook(facts, kind, notify_webhook_ref)))
    for name, send in channels:
        try:
            send()
            logger.info("Sent the %s notice by %s", kind, name)
        except FerryError as exc:
            failures.append(f"{name}: {exc}")
            logger.warning("Could not send the %s notice by %s: %s", kind, name, exc)
        except Exception as exc:  # noqa: BLE001 - a notice must never fail the run
            failures.append(f"{name}: unexpected {type(exc).__name__}")
            logger.warning("Could not send the %s notice by %s: unexpected %s", kind, name, type(exc).__name__)
    return failures


def _no_smtp() -> None:
    raise NotificationError("No SMTP block is configured for notification e-mails.", "Set notify_smtp or FERRY_SMTP_BLOCK.")
