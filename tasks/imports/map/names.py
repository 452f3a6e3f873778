"""Header names: normalising them and scoring them against each target's slug, label and aliases.

The vocabulary (vendor spellings, phone and address headers, prefixes, identifier and
negation words) and the places a column can go (:class:`Slot`, one per field, phone
type or address part) live here, with the similarity used when no name matches exactly.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz

from ferry.catalog import Field, FieldType, Resource
from tasks.imports.map.targets import importable_fields

GENERIC_CAP = 0.9  # a phone column of no stated type, or "Address" for the street

# Vendor spellings the catalog's aliases do not cover, by field slug (any resource), weight 0.95.
EXTRA_ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": (
        "id",
        "external id",
        "klaviyo id",
        "mailchimp id",
        "stripe id",
        "shopify id",
        "profile id",
        "subscriber id",
        "member id",
        "user id",
        "person id",
        "lead id",
        "unique id",
        "uid",
        "uuid",
        "euid",
        "web id",
        "crm id",
        "object id",
        "contact record id",
        "customer number",
    ),
    "email": ("email", "mail address", "primary email", "work email", "business email", "personal email"),
    "first_name": ("given", "forename", "vorname", "prenom"),
    "last_name": ("family", "nachname"),
    "full_name": ("customer name", "your name", "person name"),
    "company": ("account name", "company name", "business name", "organization name", "organisation name", "org"),
    "job_title": ("job title", "designation", "occupation", "job"),
    "lifecycle_stage": ("lifecycle stage", "customer stage", "funnel stage"),
    "email_consent": (
        "accepts email marketing",
        "email marketing",
        "marketing opt in",
        "marketing consent",
        "email subscription",
        "email subscribed",
        "subscribed to email",
        "email opt in status",
        "newsletter",
        "opt in",
        "optin",
        "marketing emails",
    ),
    "sms_consent": ("sms marketing consent", "sms subscribed", "sms opt in status", "accepts sms", "sms marketing"),
    "tags": ("tag",),
    "notes": ("comment", "remarks"),
    "source": ("initial source", "signup source", "utm source", "lead source"),
    "owner": ("hubspot owner", "record owner", "account manager", "sales rep"),
    "ip_address": ("ip address", "optin ip", "confirm ip", "signup ip"),
    "timezone": ("time zone",),
    "lifetime_value": (
        "total spend",
        "amount spent",
        "lifetime revenue",
        "customer lifetime value",
        "total customer lifetime value",
        "historic clv",
        "total revenue",
    ),
    "orders_count": ("order count", "orders count"),
}
# Slightly weaker spellings (weight 0.85): right for some vendors, ambiguous alone.
WEAK_ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": ("leid",),  # Mailchimp's list-specific id; EUID is the stable one
}

PHONE_NAMES: dict[str, tuple[str, ...]] = {
    "mobile": (
        "mobile",
        "mobile phone",
        "mobile phone number",
        "mobile number",
        "cell",
        "cell phone",
        "cell number",
        "sms number",
        "sms phone",
        "mobile no",
        "handy",
    ),
    "work": (
        "work phone",
        "business phone",
        "office phone",
        "work number",
        "direct phone",
        "direct dial",
        "company phone",
        "business number",
        "work phone number",
    ),
    "home": ("home phone", "home number", "private phone", "home phone number"),
    "fax": ("fax", "fax number", "facsimile", "business fax"),
}
PHONE_GENERIC = (
    "phone",
    "phone number",
    "telephone",
    "telephone number",
    "contact number",
    "primary phone",
    "phone 1",
    "default phone",
    "tel",
)

ADDRESS_NAMES: dict[str, tuple[str, ...]] = {
    "street": (
        "street",
        "street address",
        "address 1",
        "address line 1",
        "line 1",
        "street 1",
        "street line 1",
        "addr 1",
        "street and number",
    ),
    "street2": ("street 2", "address 2", "address line 2", "line 2", "apartment", "suite", "apt", "unit", "addr 2", "street line 2"),
    "city": ("city", "town", "locality", "city town"),
    "state": (
        "state",
        "province",
        "region",
        "state region",
        "state province",
        "province code",
        "state code",
        "state or province",
        "region code",
    ),
    "zip": ("zip", "zip code", "postal code", "postcode", "post code", "postal", "zip postal code", "plz"),
    "country": ("country", "country code", "country region", "nation", "country name"),
}
ADDRESS_WEAK = {"country": ("cc",)}  # Mailchimp's country code column
ADDRESS_GENERIC = ("address", "full address")

# Prefixes a vendor puts before a field name, and how much the match is still trusted.
PREFIXES: tuple[tuple[str, float], ...] = (
    ("default address", 0.92),
    ("mailing address", 0.92),
    ("primary address", 0.92),
    ("home address", 0.9),
    ("billing address", 0.85),
    ("shipping address", 0.8),
    ("card address", 0.8),
    ("address", 0.95),
    ("mailing", 0.92),
    ("primary", 0.92),
    ("default", 0.92),
    ("contact", 0.92),
    ("customer", 0.92),
    ("subscriber", 0.92),
    ("profile", 0.92),
    ("person", 0.92),
    ("billing", 0.85),
    ("shipping", 0.8),
    ("card", 0.75),
)
ID_TOKENS = frozenset({"id", "ids", "uuid", "guid", "uid", "identifier", "euid", "leid"})
NEGATIONS = frozenset(
    {
        "out",
        "optout",
        "optedout",
        "unsubscribed",
        "unsubscribe",
        "not",
        "dont",
        "never",
        "no",
        "bounced",
        "blocked",
        "suppressed",
        "exclude",
        "excluded",
    }
)
STOPWORDS = frozenset({"the", "of", "a", "an", "your", "my", "utc", "gmt", "local", "in", "at"})


def normalize(text: str) -> str:
    """``"MailingPostalCode"`` -> ``"mailing postal code"``, ``"E-Mail Address"`` -> ``"email address"``."""
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", text)
    text = re.sub(r"([A-Za-z])(\d)", r"\1 \2", text)
    text = re.sub(r"(\d)([A-Za-z])", r"\1 \2", text)
    text = text.lower()
    text = re.sub(r"\be[\s_\-.]?mail", "email", text)
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


def _compact(text: str) -> str:
    return text.replace(" ", "")


def _tokens(text: str) -> list[str]:
    return [t for t in text.split() if t not in STOPWORDS]


def _tokens_match(a: str, b: str) -> bool:
    return a == b or (min(len(a), len(b)) >= 5 and fuzz.ratio(a, b) >= 88)


def _dice(a: list[str], b: list[str]) -> float:
    if not a or not b:
        return 0.0
    unused = list(b)
    matched = 0
    for token in a:
        hit = next((u for u in unused if _tokens_match(token, u)), None)
        if hit is not None:
            unused.remove(hit)
            matched += 1
    return 2 * matched / (len(a) + len(b))


@dataclass(frozen=True)
class TargetName:
    phrase: str  # normalised
    weight: float
    why: str

    @property
    def has_id(self) -> bool:
        return bool(ID_TOKENS & set(self.phrase.split()))


@dataclass(frozen=True)
class Slot:
    """One place a column can go: a field, or one phone type / address part of it."""

    field: Field
    value_type: str | None
    part: str | None
    names: tuple[TargetName, ...]
    generic: bool = False  # a phone of no stated type: becomes the first free type when assigned
    order: int = 0

    @property
    def key(self) -> str:
        sub = self.value_type or self.part
        return f"{self.field.slug}.{sub}" if sub else self.field.slug

    @property
    def kind(self) -> FieldType:
        return self.field.item_type if self.field.type is FieldType.MULTI_VALUE and self.field.item_type else self.field.type


def _names(pairs: list[tuple[str, float, str]]) -> tuple[TargetName, ...]:
    seen: dict[str, TargetName] = {}
    for phrase, weight, why in pairs:
        norm = normalize(phrase)
        if norm and (norm not in seen or seen[norm].weight < weight):
            seen[norm] = TargetName(norm, weight, why)
    return tuple(seen.values())


@lru_cache(maxsize=64)
def resource_slots(resource: Resource) -> tuple[Slot, ...]:
    slots: list[Slot] = []
    for f in importable_fields(resource):
        base = [(f.slug.replace("_", " "), 1.0, f"field name {f.slug!r}"), (f.label, 1.0, f"label {f.label!r}")]
        aliases = [(a, 0.97, f"catalog alias {a!r}") for a in f.aliases]
        extra = [(a, 0.95, f"known vendor header {a!r}") for a in EXTRA_ALIASES.get(f.slug, ())]
        weak = [(a, 0.85, f"vendor header {a!r}") for a in WEAK_ALIASES.get(f.slug, ())]
        if f.type is FieldType.MULTI_VALUE and f.value_types:
            generic = [
                (n, GENERIC_CAP * w, f"{why} (no phone type given: first free type)")
                for n, w, why in base + aliases + [(g, 0.97, f"phone header {g!r}") for g in PHONE_GENERIC]
            ]
            slots.append(Slot(f, None, None, _names(generic), generic=True))
            for vt in f.value_types:
                own = [
                    (f"{f.slug} {vt}", 1.0, f"column key {f.slug}.{vt}"),
                    (f"{f.label} ({vt})", 1.0, "label"),
                    (f"{vt} {f.slug}", 1.0, f"{vt} {f.slug}"),
                ]
                own += [(n, 1.0 if n == vt or n.startswith(vt) else 0.95, f"{vt} phone header {n!r}") for n in PHONE_NAMES.get(vt, ())]
                slots.append(Slot(f, vt, None, _names(own)))
        elif f.type is FieldType.ADDRESS and f.parts:
            for part in f.parts:
                own = [(f"{f.slug} {part}", 1.0, f"column key {f.slug}.{part}"), (f"{f.label} ({part})", 1.0, "label")]
                own += [(n, 1.0, f"address part header {n!r}") for n in ADDRESS_NAMES.get(part, ())]
                own += [(n, 0.85, f"vendor header {n!r}") for n in ADDRESS_WEAK.get(part, ())]
                if part == "street":
                    own += [
                        (n, GENERIC_CAP * w, f"{why} (taken as the street line)")
                        for n, w, why in base + aliases + [(g, 1.0, f"header {g!r}") for g in ADDRESS_GENERIC]
                    ]
                slots.append(Slot(f, None, part, _names(own)))
        else:
            slots.append(Slot(f, None, None, _names(base + aliases + extra + weak)))
    return tuple(Slot(s.field, s.value_type, s.part, s.names, s.generic, i) for i, s in enumerate(slots))


@dataclass(frozen=True)
class Header:
    raw: str
    norm: str
    tokens: tuple[str, ...]
    variants: tuple[tuple[str, float, str], ...]  # (text without a vendor prefix, trust, prefix)

    @classmethod
    def of(cls, raw: str) -> Header:
        norm = normalize(raw)
        variants = []
        for prefix, trust in PREFIXES:
            if norm.startswith(prefix + " ") and len(norm) > len(prefix) + 1:
                variants.append((norm[len(prefix) + 1 :], trust, prefix))
        return cls(raw, norm, tuple(norm.split()), tuple(variants))

    @property
    def has_id(self) -> bool:
        return bool(ID_TOKENS & set(self.tokens))

    @property
    def negated(self) -> bool:
        return bool(NEGATIONS & set(self.tokens)) or "opted out" in self.norm or "opt out" in self.norm


def name_score(header: Header, slot: Slot) -> tuple[float, str, TargetName | None]:
    best: tuple[float, str, TargetName | None] = (0.0, "", None)
    compact = _compact(header.norm)
    for name in slot.names:
        if header.norm == name.phrase or compact == _compact(name.phrase):
            score, why = name.weight, f"header matches {name.why}"
        else:
            score, why = 0.0, ""
            for rest, trust, prefix in header.variants:
                if name.phrase.split() and set(name.phrase.split()) <= ID_TOKENS:
                    break  # "Card ID" is the card's id, not the record's
                if rest == name.phrase or _compact(rest) == _compact(name.phrase):
                    if name.weight * trust > score:
                        score, why = name.weight * trust, f"header without prefix {prefix!r} matches {name.why}"
            if score == 0.0:
                similarity = _dice(_tokens(header.norm), _tokens(name.phrase))
                if similarity > 0:
                    score = 0.85 * similarity * min(1.0, name.weight / 0.95)
                    why = f"header words similar ({similarity:.2f}) to {name.why}"
        if score > best[0]:
            best = (score, why, name)
    return best
