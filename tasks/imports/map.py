"""Step 2 of an import: suggest the catalog field each source column goes to.

The suggestion must be deterministic and explainable, because a person accepts it and
a wrong mapping silently corrupts data. So there is no model here, only rules a reader
can follow, each recorded in the mapping's ``reason``:

1. Names. Headers are normalised (accents, camelCase, ``E-mail``, punctuation) and
   compared with each target's slug, label and aliases (the catalog's, plus the vendor
   spellings below). An exact match scores 1.0 (slug/label) or 0.95–0.97 (alias); a match
   after a known prefix ("Mailing", "Default Address", "Card Address") a little less;
   otherwise a token similarity (Dice over words, typo-tolerant) scaled to at most 0.85.
2. Values. The sample rows are profiled (e-mails, phones, URLs, dates, booleans,
   numbers). They veto impossible matches (an ``email`` column whose values are not
   e-mail addresses, a number field full of words) and can map a column on their own:
   a column full of e-mail addresses is the e-mail field whatever its header.
3. Safety rules. Identifier columns ("Record ID", "Customer ID", Stripe's ``id``) go to
   ``external_id`` and never to ``email``; a header with an ``id`` word is penalised for
   any target whose own name has none; negated consent ("Has opted out of email") never
   maps to a consent flag, since it would invert its meaning.
4. Assignment. Best score first, each source column and each target column used once;
   a phone column of no stated type takes the first free phone type (mobile, work, home,
   fax). Anything scoring under :data:`THRESHOLD` stays unmapped rather than guessed.

Accepted mappings are remembered per workspace, resource and set of source columns
(table ``import_mappings``) and proposed first, with confidence 1.0, next time.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz
from sqlalchemy import Engine, delete, insert, select

from ferry.catalog import PHONE_TYPES, RESOURCES, Field, FieldType, Resource, get_resource
from ferry.errors import ParameterError, Problem

THRESHOLD = 0.62  # below this a column stays unmapped
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


@dataclass(frozen=True)
class ColumnMapping:
    """Where one source column goes: a field (and phone type or address part), or nowhere."""

    source_column: str
    target_field_slug: str | None
    value_type: str | None = None
    address_part: str | None = None
    confidence: float = 0.0
    reason: str = ""

    @property
    def target_key(self) -> str | None:
        """The catalog column key this maps to: ``email``, ``phone.mobile``, ``address.city``."""
        if self.target_field_slug is None:
            return None
        sub = self.value_type or self.address_part
        return f"{self.target_field_slug}.{sub}" if sub else self.target_field_slug

    def to_json(self) -> dict:
        return {
            "sourceColumn": self.source_column,
            "targetFieldSlug": self.target_field_slug,
            "valueType": self.value_type,
            "addressPart": self.address_part,
            "confidence": self.confidence,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: dict) -> ColumnMapping:
        """Read the JSON form (camelCase, as printed by the CLI; snake_case accepted too)."""

        def get(camel: str, snake: str, default=None):
            return data.get(camel, data.get(snake, default))

        source = get("sourceColumn", "source_column")
        if not isinstance(source, str) or not source:
            raise ParameterError([Problem("sourceColumn", source, "is required: the source column's name")])
        confidence = get("confidence", "confidence", 1.0)
        target = get("targetFieldSlug", "target_field_slug") or None
        value_type = get("valueType", "value_type") or None
        address_part = get("addressPart", "address_part") or None
        if target and "." in target and not (value_type or address_part):  # a column key: phone.mobile, address.city
            target, sub = target.split(".", 1)
            if sub in PHONE_TYPES:
                value_type = sub
            else:
                address_part = sub
        return cls(
            source_column=source,
            target_field_slug=target,
            value_type=value_type,
            address_part=address_part,
            confidence=float(confidence if confidence is not None else 1.0),
            reason=get("reason", "reason", "") or "",
        )


# --- target fields ------------------------------------------------------------------------------


def _resource(resource: Resource | str) -> Resource:
    found = get_resource(resource) if isinstance(resource, str) else resource
    if not found.importable:
        importable = ", ".join(r.slug for r in RESOURCES.values() if r.importable)
        raise ParameterError([Problem("resource", found.slug, f"is export-only; import into one of: {importable}")])
    return found


def _importable_fields(resource: Resource) -> list[Field]:
    return [f for f in resource.fields if not f.readonly]


def target_fields(resource: Resource | str) -> list[dict]:
    """The fields a source column can map to: slug, label, type, and phone value types or address parts."""
    resource = _resource(resource)
    return [
        {
            "slug": f.slug,
            "label": f.label,
            "type": f.type.value,
            "required": f.required,
            "unique": f.unique,
            "valueTypes": list(f.value_types),
            "addressParts": list(f.parts),
            "aliases": list(f.aliases),
        }
        for f in _importable_fields(resource)
    ]


# --- names ------------------------------------------------------------------------------------


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
class _Name:
    phrase: str  # normalised
    weight: float
    why: str

    @property
    def has_id(self) -> bool:
        return bool(ID_TOKENS & set(self.phrase.split()))


@dataclass(frozen=True)
class _Slot:
    """One place a column can go: a field, or one phone type / address part of it."""

    field: Field
    value_type: str | None
    part: str | None
    names: tuple[_Name, ...]
    generic: bool = False  # a phone of no stated type: becomes the first free type when assigned
    order: int = 0

    @property
    def key(self) -> str:
        sub = self.value_type or self.part
        return f"{self.field.slug}.{sub}" if sub else self.field.slug

    @property
    def kind(self) -> FieldType:
        return self.field.item_type if self.field.type is FieldType.MULTI_VALUE and self.field.item_type else self.field.type


def _names(pairs: list[tuple[str, float, str]]) -> tuple[_Name, ...]:
    seen: dict[str, _Name] = {}
    for phrase, weight, why in pairs:
        norm = normalize(phrase)
        if norm and (norm not in seen or seen[norm].weight < weight):
            seen[norm] = _Name(norm, weight, why)
    return tuple(seen.values())


@lru_cache(maxsize=64)
def _slots(resource: Resource) -> tuple[_Slot, ...]:
    slots: list[_Slot] = []
    for f in _importable_fields(resource):
        base = [(f.slug.replace("_", " "), 1.0, f"field name {f.slug!r}"), (f.label, 1.0, f"label {f.label!r}")]
        aliases = [(a, 0.97, f"catalog alias {a!r}") for a in f.aliases]
        extra = [(a, 0.95, f"known vendor header {a!r}") for a in EXTRA_ALIASES.get(f.slug, ())]
        weak = [(a, 0.85, f"vendor header {a!r}") for a in WEAK_ALIASES.get(f.slug, ())]
        if f.type is FieldType.MULTI_VALUE and f.value_types:
            generic = [
                (n, GENERIC_CAP * w, f"{why} (no phone type given: first free type)")
                for n, w, why in base + aliases + [(g, 0.97, f"phone header {g!r}") for g in PHONE_GENERIC]
            ]
            slots.append(_Slot(f, None, None, _names(generic), generic=True))
            for vt in f.value_types:
                own = [
                    (f"{f.slug} {vt}", 1.0, f"column key {f.slug}.{vt}"),
                    (f"{f.label} ({vt})", 1.0, "label"),
                    (f"{vt} {f.slug}", 1.0, f"{vt} {f.slug}"),
                ]
                own += [(n, 1.0 if n == vt or n.startswith(vt) else 0.95, f"{vt} phone header {n!r}") for n in PHONE_NAMES.get(vt, ())]
                slots.append(_Slot(f, vt, None, _names(own)))
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
                slots.append(_Slot(f, None, part, _names(own)))
        else:
            slots.append(_Slot(f, None, None, _names(base + aliases + extra + weak)))
    return tuple(_Slot(s.field, s.value_type, s.part, s.names, s.generic, i) for i, s in enumerate(slots))


@dataclass(frozen=True)
class _Header:
    raw: str
    norm: str
    tokens: tuple[str, ...]
    variants: tuple[tuple[str, float, str], ...]  # (text without a vendor prefix, trust, prefix)

    @classmethod
    def of(cls, raw: str) -> _Header:
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


def _name_score(header: _Header, slot: _Slot) -> tuple[float, str, _Name | None]:
    best: tuple[float, str, _Name | None] = (0.0, "", None)
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


# --- values -----------------------------------------------------------------------------------

_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[A-Za-z]{2,}$")
_DATE = re.compile(
    r"^(\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2}|UTC)?)?"
    r"|\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}(,?\s+\d{1,2}:\d{2}(:\d{2})?\s*([AaPp][Mm])?)?"
    r"|[A-Za-z]{3,9}\.? \d{1,2},? \d{4}.*|\d{1,2} [A-Za-z]{3,9}\.? \d{4}.*)$"
)
_PHONE = re.compile(r"^(\+|00)?[\d\s().\-/]{6,24}((ext|x|ext\.)\s?\d{1,6})?$", re.IGNORECASE)
_URL = re.compile(r"^(https?://\S+|www\.\S+|[a-z0-9\-]+(\.[a-z0-9\-]+)*\.[a-z]{2,}(/\S*)?)$", re.IGNORECASE)
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_NUMBER = re.compile(r"^[-+]?[$€£¥]?\s?(\d{1,3}([,' ]\d{3})+|\d+)([.,]\d+)?\s?[$€£¥%]?$|^[-+]?\.\d+$")
_BOOLEAN = frozenset(
    {
        "true",
        "false",
        "yes",
        "no",
        "y",
        "n",
        "1",
        "0",
        "t",
        "f",
        "subscribed",
        "unsubscribed",
        "never subscribed",
        "never_subscribed",
        "opted in",
        "opted out",
        "opted_in",
        "opted_out",
        "on",
        "off",
        "x",
        "pending",
        "cleaned",
        "non subscribed",
        "not subscribed",
        "confirmed",
    }
)
_VENDOR_ID = re.compile(
    r"^([a-z]{2,6}_[A-Za-z0-9]{6,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12}|[A-Za-z0-9]{15}|[A-Za-z0-9]{18}|[0-9a-f]{10,}|\d{4,}|[0-9A-Z]{26})$"
)


@dataclass(frozen=True)
class _Profile:
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


def _profile(values: list) -> _Profile:
    texts = tuple(str(v).strip() for v in values if v is not None and str(v).strip() != "")
    n = len(texts)
    if not n:
        return _Profile(0)

    def share(test) -> float:
        return sum(1 for v in texts if test(v)) / n

    def phone_like(v: str) -> bool:
        if not _PHONE.match(v) or _DATE.match(v) or _IPV4.match(v):
            return False
        digits = sum(ch.isdigit() for ch in v)
        return 7 <= digits <= 15 and not re.fullmatch(r"-?\d+[.,]\d{1,2}", v)

    return _Profile(
        n=n,
        email=share(lambda v: bool(_EMAIL.match(v))),
        phone=share(phone_like),
        url=share(lambda v: "@" not in v and bool(_URL.match(v)) and not _NUMBER.match(v)),
        date=share(lambda v: bool(_DATE.match(v))),
        boolean=share(lambda v: v.lower().replace("-", " ") in _BOOLEAN),
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


def _compat(slot: _Slot, header: _Header, profile: _Profile) -> tuple[float, str]:
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


def _value_candidates(slots: tuple[_Slot, ...], header: _Header, profile: _Profile) -> list[tuple[float, _Slot, str]]:
    """Slots a column goes to by its values alone, whatever its header."""
    found: list[tuple[float, _Slot, str]] = []
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


# --- suggesting ----------------------------------------------------------------------------------


def _columns_of(info_or_columns) -> list[str]:
    columns = getattr(info_or_columns, "columns", info_or_columns)
    return [str(c) for c in columns]


def suggest_mapping(
    info_or_columns, sample_rows: list[dict], resource: Resource | str, *, engine: Engine | None = None, workspace: str | None = None
) -> list[ColumnMapping]:
    """One :class:`ColumnMapping` per source column, in file order.

    ``info_or_columns``: a :class:`tasks.imports.parse.FileInfo` or the list of source
    column names; ``sample_rows``: dicts of source column -> raw text (e.g. a preview's
    sample rows). With ``workspace``, a mapping accepted before for the same resource
    and the same set of source columns is returned instead (confidence 1.0).
    """
    resource = _resource(resource)
    columns = _columns_of(info_or_columns)
    if workspace is not None:
        if engine is None:
            from ferry.store.engine import get_engine

            engine = get_engine()
        remembered = remembered_mapping(engine, workspace, resource, columns)
        if remembered is not None:
            return remembered
    slots = _slots(resource)
    headers = [_Header.of(c) for c in columns]
    candidates: list[tuple[float, int, int, _Slot, str, float]] = []  # (score, column, slot order, slot, why, name score)
    best_rejected: dict[int, tuple[float, str]] = {}  # column -> (how strongly the header matched, why not)
    for ci, (column, header) in enumerate(zip(columns, headers)):
        profile = _profile([row.get(column) for row in sample_rows])
        for slot in slots:
            score, why, name = _name_score(header, slot)
            if score <= 0:
                continue
            mult, note = _compat(slot, header, profile)
            if header.has_id and name is not None and not name.has_id and slot.field.slug != "external_id":
                mult, note = mult * 0.5, note or "an identifier column is unlikely to hold this field"
            final = score * mult
            reason = why + (f"; {note}" if note else "")
            candidates.append((final, ci, slot.order, slot, reason, score))
        for score, slot, why in _value_candidates(slots, header, profile):
            mult, note = _compat(slot, header, profile)
            candidates.append((score * mult, ci, slot.order, slot, why, score))
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    chosen: dict[int, ColumnMapping] = {}
    used: set[str] = set()

    def reject(ci: int, strength: float, why: str) -> None:
        if ci not in best_rejected or strength > best_rejected[ci][0]:
            best_rejected[ci] = (strength, why)

    for score, ci, _, slot, reason, strength in candidates:
        if score < THRESHOLD:
            if ci not in chosen:
                reject(ci, strength, f"best: {slot.key} at {score:.2f} < {THRESHOLD}, {reason}")
            continue
        if ci in chosen:
            continue
        target = slot
        if slot.generic:
            target = next((s for s in _slots(resource) if s.field is slot.field and not s.generic and s.key not in used), None)
            if target is None:
                continue
            reason += f" -> {target.value_type}"
        if target.key in used:
            reject(ci, max(strength, 2.0), f"{target.key} ({score:.2f}) is taken by a better match; {reason}")
            continue
        used.add(target.key)
        chosen[ci] = ColumnMapping(columns[ci], target.field.slug, target.value_type, target.part, round(min(1.0, score), 2), reason)
    result = []
    for ci, column in enumerate(columns):
        if ci in chosen:
            result.append(chosen[ci])
            continue
        rejected = best_rejected.get(ci)
        why = f"unmapped: {rejected[1]}" if rejected else "unmapped: no field matches the header or the values"
        result.append(ColumnMapping(column, None, None, None, 0.0, why))
    return result


# --- validating and remembering ----------------------------------------------------------------


def validate_mapping(resource: Resource | str, mapping: list[ColumnMapping], columns: list[str] | None = None) -> None:
    """Raise :class:`ParameterError` listing every problem: unknown fields, types or parts,
    read-only fields, a target used twice, a source column not in the file."""
    resource = _resource(resource)
    problems: list[Problem] = []
    valid_keys = {s.key for s in _slots(resource) if not s.generic}
    seen_targets: dict[str, str] = {}
    seen_sources: set[str] = set()
    for m in mapping:
        label = f"mapping[{m.source_column!r}]"
        if columns is not None and m.source_column not in columns:
            problems.append(Problem(label, m.source_column, "is not a column of the file"))
        if m.source_column in seen_sources:
            problems.append(Problem(label, m.source_column, "is mapped twice"))
        seen_sources.add(m.source_column)
        if m.target_field_slug is None:
            continue
        if not resource.has_field(m.target_field_slug):
            problems.append(Problem(label, m.target_field_slug, f"is not a field of {resource.slug}"))
            continue
        f = resource.get_field(m.target_field_slug)
        if f.readonly:
            problems.append(Problem(label, f.slug, "is set by Ferry and cannot be imported"))
            continue
        if f.value_types and m.value_type not in f.value_types:
            problems.append(Problem(label, m.value_type, f"{f.slug} needs a value type: one of {', '.join(f.value_types)}"))
            continue
        if f.parts and m.address_part not in f.parts:
            problems.append(Problem(label, m.address_part, f"{f.slug} needs an address part: one of {', '.join(f.parts)}"))
            continue
        if (m.value_type and not f.value_types) or (m.address_part and not f.parts):
            problems.append(Problem(label, m.value_type or m.address_part, f"{f.slug} has no value types or parts"))
            continue
        key = m.target_key
        if key not in valid_keys:
            problems.append(Problem(label, key, f"is not a column of {resource.slug}"))
        elif key in seen_targets:
            problems.append(Problem(label, key, f"is already the target of {seen_targets[key]!r}"))
        else:
            seen_targets[key] = m.source_column
    if problems:
        raise ParameterError(problems)


def columns_key(columns: list[str]) -> str:
    """The identity of a set of source columns: order does not matter, spelling does."""
    return hashlib.sha256(json.dumps(sorted(columns), ensure_ascii=False).encode("utf-8")).hexdigest()


def remember_mapping(engine: Engine, workspace: str, resource: Resource | str, mapping: list[ColumnMapping]) -> None:
    """Store an accepted mapping for this workspace, resource and set of source columns (replaces an older one)."""
    from ferry.store.engine import workspace_id
    from ferry.store.schema import import_mappings

    resource = _resource(resource)
    validate_mapping(resource, mapping)
    columns = [m.source_column for m in mapping]
    key = columns_key(columns)
    stored = [{**m.to_json(), "confidence": 1.0, "reason": "accepted before for these columns"} for m in mapping]
    with engine.begin() as conn:
        ws = workspace_id(conn, workspace)
        where = (
            (import_mappings.c.workspace_id == ws) & (import_mappings.c.resource == resource.slug) & (import_mappings.c.columns_key == key)
        )
        conn.execute(delete(import_mappings).where(where))
        conn.execute(
            insert(import_mappings).values(
                workspace_id=ws, resource=resource.slug, columns_key=key, source_columns=sorted(columns), mapping=stored
            )
        )


def remembered_mapping(engine: Engine, workspace: str, resource: Resource | str, columns: list[str]) -> list[ColumnMapping] | None:
    """The mapping accepted before for exactly these source columns, in the given column order; None if none
    (or if it no longer fits the catalog)."""
    from ferry.errors import UnknownWorkspaceError
    from ferry.store.engine import workspace_id
    from ferry.store.schema import import_mappings

    resource = _resource(resource)
    with engine.connect() as conn:
        try:
            ws = workspace_id(conn, workspace)
        except UnknownWorkspaceError:  # no such workspace yet: nothing remembered there
            return None
        row = conn.execute(
            select(import_mappings.c.mapping).where(
                (import_mappings.c.workspace_id == ws)
                & (import_mappings.c.resource == resource.slug)
                & (import_mappings.c.columns_key == columns_key(columns))
            )
        ).first()
    if row is None:
        return None
    stored = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    by_source = {m.source_column: m for m in (ColumnMapping.from_json(d) for d in stored)}
    result = [by_source.get(c, ColumnMapping(c, None, None, None, 0.0, "not in the remembered mapping")) for c in columns]
    try:
        validate_mapping(resource, result, columns)
    except ParameterError:
        return None  # the catalog changed since: suggest afresh
    return result
