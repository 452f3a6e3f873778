"""Value rules, each declared once: what an e-mail address, a phone number, a URL and a boolean look like.

Import validation (vectorised, on Arrow arrays), mapping suggestions (which
column holds e-mails?), export checks, notification addresses and the demo
seeder all read these, so a value one of them accepts the others accept too.
The patterns are RE2-compatible (Arrow's regex kernels use RE2).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

#: An e-mail address (matched case-insensitively): a local part of the usual characters, ``@``, and a domain
#: of dot-separated labels. Internationalised ones too (RFC 6531: ``jörg@müller.de`` as well as its punycode
#: form): any non-ASCII character counts as a letter. The range is written with literal characters, not
#: escapes, so the one pattern means the same to Python's ``re`` and to pyarrow's RE2.
_INTL = "\u0080-\U0010ffff"
_LABEL = rf"[a-z0-9{_INTL}](?:[a-z0-9\-{_INTL}]*[a-z0-9{_INTL}])?"
EMAIL = rf"(?i)^[a-z0-9!#$%&'*+/=?^_`{{|}}~.\-{_INTL}]+@{_LABEL}(?:\.{_LABEL})+$"
#: Characters people put between a phone number's digits; stripped before :data:`PHONE` is checked.
PHONE_SEPARATORS = r"[\s().\-/]"
#: A phone number once its separators are gone: 5-15 digits (E.164 allows 15), optional leading ``+``.
PHONE = r"^\+?[0-9]{5,15}$"
#: What people append to a phone number for an extension (``ext. 12``, ``x12``); validation does not
#: accept one, but the mapping profiler strips it before reading a sample value as a phone number.
PHONE_EXTENSION = r"(?i)\s*(?:ext\.?|x)\s?[0-9]{1,6}$"
#: A web address, with or without its scheme: ``https://example.com/x``, ``www.example.com``, ``example.com``.
URL = r"(?i)^(https?://)?([a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+[a-z]{2,}(:[0-9]{1,5})?([/?#]\S*)?$"
#: Words read as true / false (compared lower-cased and trimmed).
TRUE_WORDS = ("true", "t", "yes", "y", "1", "on", "x")
FALSE_WORDS = ("false", "f", "no", "n", "0", "off")
#: Vendors' consent states, yes or no in words (Klaviyo's ``SUBSCRIBED`` / ``NEVER_SUBSCRIBED``, "Opted in").
#: The mapping profiler counts them as boolean values and import validation reads them as true / false
#: (lower-cased, ``_`` and ``-`` read as spaces).
CONSENT_TRUE_WORDS = ("subscribed", "opted in", "confirmed")
CONSENT_FALSE_WORDS = ("unsubscribed", "opted out", "never subscribed", "not subscribed", "non subscribed")
#: Consent states that mean neither yes nor no (Mailchimp's ``pending`` and ``cleaned``): a boolean column may hold them
#: (imported as empty, not refused).
UNDECIDED_WORDS = ("pending", "cleaned")
#: How vendors separate the values of a multi-value cell written as text (``a, b``; ``"Black Friday","Customer"``; ``a;b``; ``a|b``).
LIST_SEPARATORS = (",", ";", "|")


def list_cell(value: str) -> list[str] | None:
    """A multi-value cell in any shape vendors write it, as its values; None when it is JSON that is no list.

    JSON (``["a", "b"]``) is read as JSON. A cell with double quotes is a quoted,
    comma-separated list (Mailchimp's ``"Black Friday","Customer"``: commas inside
    quotes stay); any other cell is values separated by ``,``, ``;`` or ``|``. Blanks drop.
    """
    text = value.strip()
    if text.startswith(("[", "{")):
        try:
            parsed = json.loads(text)
        except ValueError:
            return None
        return [str(item) for item in parsed if item is not None and str(item).strip()] if isinstance(parsed, list) else None
    if text.startswith('"'):
        items = next(csv.reader([text], skipinitialspace=True), [])
    else:
        items = re.split(r"[,;|]", text)
    return [item.strip() for item in items if item.strip()]


_EMAIL = re.compile(EMAIL)
_PHONE = re.compile(PHONE)
_PHONE_SEPARATORS = re.compile(PHONE_SEPARATORS)
_PHONE_EXTENSION = re.compile(PHONE_EXTENSION)
_URL = re.compile(URL)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_email(value: str) -> bool:
    return bool(_EMAIL.match(value.strip()))


def is_phone(value: str) -> bool:
    return bool(_PHONE.match(_PHONE_SEPARATORS.sub("", value.strip())))


def strip_phone_extension(value: str) -> str:
    """``"+1 415 555 0100 ext. 12"`` -> ``"+1 415 555 0100"``: the number without its extension, if it has one."""
    return _PHONE_EXTENSION.sub("", value.strip())


def is_url(value: str) -> bool:
    return bool(_URL.match(value.strip()))


def is_boolean(value: str) -> bool:
    return value.strip().lower() in TRUE_WORDS or value.strip().lower() in FALSE_WORDS


def is_remote_source(source: str | Path) -> bool:
    """True for ``scheme://...`` sources (URLs and block URIs), which the fetch stage downloads first.

    Parameter checks use it to skip the local "file exists" test for such sources
    (the download itself checks them, with errors that say which block or URL failed).
    """
    return bool(_SCHEME.match(str(source)))


def shown_url(url: str) -> str:
    """A URL fit for messages and logs: no userinfo, query or fragment (they may hold tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
