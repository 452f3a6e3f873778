"""Checks of the notification parameters (``notify_email``, ``notify_webhook``, ``notify_smtp``).

Kept apart from tasks/notify.py so parameter models can validate them up
front without importing Prefect tasks.
"""

from __future__ import annotations

import re

from ferry.checks import is_email
from ferry.errors import Problem

REF = re.compile(r"^(?:([a-z0-9-]+)/)?([a-z0-9][a-z0-9-]*)$")
SMTP_SLUGS = ("smtp-server", "email-server-credentials", "smtp", "email")  # the last two: the short kinds of `ferry blocks create`
WEBHOOK_SLUGS = ("webhook-endpoint", "webhook")


def email_addresses(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def notification_problems(
    notify_email: str | None, notify_webhook: str | None, notify_smtp: str | None, default_smtp: str | None
) -> list[Problem]:
    """Every problem with the notification parameters, found before any data moves."""
    problems = []
    if notify_email is not None:
        addresses = email_addresses(notify_email)
        if not addresses:
            problems.append(Problem("notify_email", notify_email, "give one or more e-mail addresses, comma-separated"))
        for address in addresses:
            if not is_email(address):
                problems.append(Problem("notify_email", address, "is not an e-mail address"))
        if not (notify_smtp or default_smtp):
            problems.append(
                Problem(
                    "notify_email",
                    notify_email,
                    "no SMTP block to send it: set notify_smtp or FERRY_SMTP_BLOCK (create one with `ferry blocks create smtp NAME ...`)",
                )
            )
    for field, ref, slugs in (("notify_webhook", notify_webhook, WEBHOOK_SLUGS), ("notify_smtp", notify_smtp, SMTP_SLUGS)):
        if ref is None:
            continue
        match = REF.match(ref)
        if not match or (match.group(1) and match.group(1) not in slugs):
            problems.append(Problem(field, ref, f"must be a block name, or KIND/NAME with KIND one of {', '.join(slugs)}"))
    return problems
