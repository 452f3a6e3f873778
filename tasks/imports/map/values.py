"""Sample values: profile them (e-mails, phones, URLs, dates, booleans, numbers) and weigh a slot by them.

What an e-mail address, a phone number, a URL and a boolean word are is declared once,
in :mod:`ferry.checks`; the profiler applies those rules tolerantly (trimmed,
lower-cased, separators and phone extensions stripped) and adds only heuristics that
keep other kinds of value out (dates and IP addresses are not phone numbers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ferry.catalog import RESOURCES, Field, FieldType
from ferry.checks import (
    CONSENT_FALSE_WORDS,
    CONSENT_TRUE_WORDS,
    FALSE_WORDS,
    TRUE_WORDS,
    UNDECIDED_WORDS,
    is_email,
    is_phone,
    is_url,
    strip_phone_extension,
)
from tasks.imports.map.names import Header, Slot

_DATE = re.compile(
    r"^(\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2}|UTC)?)?"
    r"|\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}(,?\s+\d{1,2}:\d{2}(:\d{2})?\s*([AaPp][Mm])?)?"
    r"|[A-Za-z]{3,9}\.? \d{1,2},? \d{4}.*|\d{1,2} [A-Za-z]{3,9}\.? \d{4}.*)$"
)
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_NUMBER = re.compile(r"^[-+]?[$€£¥]?\s?(\d{1,3}([,' ]\d{3})+|\d+)([.,]\d+)?\s?[$€£¥%]?$|^[-+]?\.\d+$")
# Yes/no words, vendors' consent states, and the consent states that are neither (a consent column holds them too).
_BOOLEAN = frozenset(TRUE_WORDS + FALSE_WORDS + CONSENT_TRUE_WORDS + CONSENT_FALSE_WORDS + UNDECIDED_WORDS)
_VENDOR_ID = re.compile(
    r"^([a-z]{2,6}_[A-Za-z0-9]{6,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12}|[A-Za-z0-9]{15}|[A-Za-z0-9]{18}|[0-9a-f]{10,}|\d{4,}|[0-9A-Z]{26})$"
)


@dataclass(frozen=True)
class Profile:
    n: int
    email: float = 0.0
    phone: float = 0.0
    url: float = 0.0
    date: float = 0.0
    boolean: float = 0.0
    number: float = 0.0
    vendor_id: float = 0.0
    values: tuple[str, ...] = ()

    def share_in(self, allowed: tuple[str, ...]) -> float:
        if not self.n:
            return 0.0
        wanted = {_slug(a) for a in allowed}
        return sum(1 for v in self.values if _slug(v) in wanted) / self.n


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def profile_values(values: list) -> Profile:
    texts = tuple(str(v).strip() for v in values if v is not None and str(v).strip() != "")
    n = len(texts)
    if not n:
        return Profile(0)

    def share(test) -> float:
        return sum(1 for v in texts if test(v)) / n

    def phone_like(v: str) -> bool:
        number = strip_phone_extension(v)  # "(415) 555-0100 ext. 12" is a phone column's value too
        if not is_phone(number) or _DATE.match(v) or _IPV4.match(v):
            return False
        digits = sum(ch.isdigit() for ch in number)
        return 7 <= digits <= 15 and not re.fullmatch(r"-?\d+[.,]\d{1,2}", v)

    return Profile(
        n=n,
        email=share(is_email),
        phone=share(phone_like),
        url=share(lambda v: "@" not in v and is_url(v)),
        date=share(lambda v: bool(_DATE.match(v))),
        boolean=share(lambda v: v.lower().replace("-", " ").replace("_", " ") in _BOOLEAN),
        number=share(lambda v: bool(_NUMBER.match(v))),
        vendor_id=share(lambda v: bool(_VENDOR_ID.match(v))),
        values=texts,
    )


def _email_keyed(field: Field) -> bool:
    """A reference to a resource whose key is an e-mail (events.contact -> contacts.email)."""
    if field.type is not FieldType.REFERENCE or not field.reference:
        return False
    target = RESOURCES.get(field.reference)
    return bool(target and target.key_fields and target.get_field(target.key_fields[0]).type is FieldType.EMAIL)


def compatibility(slot: Slot, header: Header, profile: Profile) -> tuple[float, str]:
    """How well the sample values fit the slot: a multiplier, and why when it is below 1."""
    kind = slot.kind
    wants_email = kind is FieldType.EMAIL or _email_keyed(slot.field)
    if wants_email and header.has_id and profile.email < 0.8:
        return 0.0, "an identifier column never maps to an e-mail field"
    if kind is FieldType.BOOLEAN and header.negated:
        return 0.0, "the header is negated (opted out / unsubscribed): mapping it would invert the flag"
    if profile.n < 3:
        return 1.0, ""
    if wants_email:
        return (1.0, "") if profile.email >= 0.6 else (0.0, f"only {profile.email:.0%} of the values are e-mail addresses")
    if slot.field.slug == "external_id" and profile.email >= 0.8:
        return 0.3, "the values are e-mail addresses, not identifiers"
    if kind is FieldType.PHONE:
        if profile.email >= 0.5:
            return 0.0, "the values are e-mail addresses"
        return (1.0, "") if profile.phone >= 0.5 else (0.5, f"only {profile.phone:.0%} of the values look like phone numbers")
    if kind in (FieldType.INTEGER, FieldType.NUMBER):
        return (1.0, "") if profile.number >= 0.8 else (0.4, f"only {profile.number:.0%} of the values are numbers")
    if kind is FieldType.BOOLEAN:
        return (1.0, "") if profile.boolean >= 0.8 else (0.5, f"only {profile.boolean:.0%} of the values are yes/no")
    if kind in (FieldType.DATE, FieldType.DATETIME):
        return (1.0, "") if profile.date >= 0.6 else (0.5, f"only {profile.date:.0%} of the values are dates")
    if kind is FieldType.URL:
        return (1.0, "") if profile.url >= 0.6 else (0.6, f"only {profile.url:.0%} of the values are URLs or domains")
    if kind is FieldType.ENUM and slot.field.enum:
        hits = profile.share_in(slot.field.enum)
        if hits >= 0.5:
            return 1.0, ""
        return (
            (0.8, f"only {hits:.0%} of the values are known {slot.field.slug} values")
            if hits > 0
            else (0.5, f"none of the values is a known {slot.field.slug} value")
        )
    if slot.field.slug in ("first_name", "last_name", "full_name", "job_title", "company") and profile.email >= 0.8:
        return 0.5, "the values are e-mail addresses"
    return 1.0, ""


def value_candidates(slots: tuple[Slot, ...], header: Header, profile: Profile) -> list[tuple[float, Slot, str]]:
    """Slots a column goes to by its values alone, whatever its header."""
    found: list[tuple[float, Slot, str]] = []
    if profile.n < 3:
        return found
    for slot in slots:
        kind = slot.kind
        if profile.email >= 0.8 and (kind is FieldType.EMAIL or _email_keyed(slot.field)):
            found.append((0.9, slot, f"values: {profile.email:.0%} e-mail addresses"))
        elif profile.phone >= 0.8 and slot.generic and kind is FieldType.PHONE and not header.has_id:
            found.append((0.75, slot, f"values: {profile.phone:.0%} phone numbers"))
        elif profile.url >= 0.8 and kind is FieldType.URL:
            found.append((0.75, slot, f"values: {profile.url:.0%} URLs or domains"))
    return found
