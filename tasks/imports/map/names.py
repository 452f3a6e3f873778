"""Header names: normalising them, reading them the ways vendors write them, and scoring them against targets.

A header is read as several *phrases*, each with how much it is still trusted: the whole
header, and what is left after a vendor's qualifiers (``Person - Email``, ``fields.name``,
``City of Postal address``, ``Default Address City``), alternatives (``ZIP/Postal code``),
abbreviations and glued words (``orgname``, ``cdate``, ``custid``) and plurals
(``Email addresses``). Each target (:class:`Slot`: a field, or one phone type / address
part of it) has names (slug, label, aliases, the vendor vocabulary of :mod:`.targets`); a
phrase matching a name exactly scores the name's weight times the phrase's trust, a similar
one less. A few meanings are recognised by pattern instead of by name, because vendors spell
them too many ways to list (:func:`pattern_scores`): creation and modification times, the
record's own id versus another object's, an owner, an IP address, counts of orders or
payments, an SMS or WhatsApp number.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz

from ferry.catalog import Field, FieldType, Resource
from tasks.imports.map.targets import (
    ADDRESS_GENERIC,
    ADDRESS_LOOSE,
    ADDRESS_NAMES,
    DEMOTED_ALIASES,
    EXACT_ALIASES,
    EXTRA_ALIASES,
    PHONE_GENERIC,
    PHONE_NAMES,
    PHONE_WEAK,
    STRONG_ALIASES,
    WEAK_ALIASES,
    importable_fields,
)

GENERIC_CAP = 0.9  # a phone column of no stated type, or "Address" for the street

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
    ("lead", 0.92),
    ("member", 0.92),
    ("user", 0.92),
    ("record", 0.95),
    ("billing", 0.85),
    ("shipping", 0.8),
    ("card", 0.75),
)
# Names of the record itself in the vendors' object models: "Person - ID", "Contact Id" are its own id.
OWN_OBJECTS = frozenset(
    {"contact", "contacts", "person", "people", "customer", "subscriber", "profile", "lead", "member", "user", "record", "recipient"}
)
# Other objects a column can belong to: "Company Id", "Deal - Owner", "Card ID" describe those, not the contact.
ORG_OBJECTS = frozenset({"company", "account", "organization", "organisation", "org", "business", "employer", "parent"})
OTHER_OBJECTS = ORG_OBJECTS | frozenset(
    (
        "deal ticket opportunity order invoice card list campaign pipeline stage task activity note creator owner "
        "subscription plan project case product vendor email session device transaction payment event message group "
        "segment team tax vat skype google facebook twitter linkedin ad form visitor page app"
    ).split()
)
# Abbreviations vendors use in headers, read as the words they stand for.
ABBREVIATIONS: dict[str, str] = {
    "org": "organization",
    "cust": "customer",
    "acct": "account",
    "usr": "user",
    "addr": "address",
    "ph": "phone",
    "mob": "mobile",
    "num": "number",
    "nbr": "number",
    "cnt": "count",
    "desc": "description",
    "dob": "date of birth",
    "tz": "time zone",
    "cdate": "created date",
    "ctime": "created time",
    "udate": "updated date",
    "mdate": "modified date",
    "mtime": "modified time",
    "extid": "external id",
    "ext": "external",
}
# Words a glued header ("orgname", "custid", "userid") ends with after an object or abbreviation.
GLUE_TAILS = ("id", "name", "email", "phone", "type", "date")
ID_TOKENS = frozenset({"id", "ids", "uuid", "guid", "uid", "identifier", "euid", "leid"})
TIME_WORDS = frozenset({"at", "date", "time", "timestamp", "datetime", "on", "ts", "utc"})
META_WORDS = frozenset({"type", "types", "kind", "category"})  # "Phone Number Type" describes a phone, it is none
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


def _expand(words: list[str]) -> list[str]:
    """Glued words split and abbreviations spelled out: ``orgname`` -> ``organization name``, ``cdate`` -> ``created date``."""
    out: list[str] = []
    for word in words:
        if word in ABBREVIATIONS:
            out += ABBREVIATIONS[word].split()
            continue
        head, tail = next(((word[: -len(t)], t) for t in GLUE_TAILS if word.endswith(t) and len(word) > len(t) + 1), ("", ""))
        if head in ABBREVIATIONS or head in OWN_OBJECTS or head in OTHER_OBJECTS:
            out += ABBREVIATIONS.get(head, head).split() + [tail]
        else:
            out.append(word)
    return out


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("sses"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@dataclass(frozen=True)
class Phrase:
    """One reading of a header: normalised text, how much it is still trusted, and how it was read."""

    text: str
    trust: float
    how: str = ""  # "" for the whole header; else e.g. "without prefix 'card'"
    foreign: bool = False  # read after the qualifier of another object ("Card ID" is the card's id)


@dataclass(frozen=True)
class TargetName:
    phrase: str  # normalised
    weight: float
    why: str
    exact: bool = False  # matches verbatim only, never by similarity

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


def _names(pairs: list[tuple[str, float, str]], exact: tuple[str, ...] = ()) -> tuple[TargetName, ...]:
    seen: dict[str, TargetName] = {}
    for phrase, weight, why in pairs:
        norm = normalize(phrase)
        if norm and (norm not in seen or seen[norm].weight < weight):
            seen[norm] = TargetName(norm, weight, why, exact=phrase in exact)
    return tuple(seen.values())


def _field_names(f: Field) -> list[tuple[str, float, str]]:
    demoted = DEMOTED_ALIASES.get(f.slug, {})
    return (
        [(f.slug.replace("_", " "), 1.0, f"field name {f.slug!r}"), (f.label, 1.0, f"label {f.label!r}")]
        + [(a, demoted.get(a, 0.97), f"catalog alias {a!r}") for a in f.aliases]
        + [(a, 1.0, f"the record's own id {a!r}") for a in STRONG_ALIASES.get(f.slug, ())]
        + [(a, 0.95, f"known vendor header {a!r}") for a in EXTRA_ALIASES.get(f.slug, ()) + EXACT_ALIASES.get(f.slug, ())]
        + [(a, 0.85, f"vendor header {a!r}") for a in WEAK_ALIASES.get(f.slug, ())]
    )


@lru_cache(maxsize=64)
def resource_slots(resource: Resource) -> tuple[Slot, ...]:
    slots: list[Slot] = []
    for f in importable_fields(resource):
        names = _field_names(f)
        if f.type is FieldType.MULTI_VALUE and f.value_types:
            generic = [
                (n, GENERIC_CAP * w, f"{why} (no phone type given: first free type)")
                for n, w, why in names + [(g, 0.97, f"phone header {g!r}") for g in PHONE_GENERIC]
            ]
            slots.append(Slot(f, None, None, _names(generic), generic=True))
            for vt in f.value_types:
                own = [
                    (f"{f.slug} {vt}", 1.0, f"column key {f.slug}.{vt}"),
                    (f"{f.label} ({vt})", 1.0, "label"),
                    (f"{vt} {f.slug}", 1.0, f"{vt} {f.slug}"),
                ]
                own += [(n, 1.0 if n == vt or n.startswith(vt) else 0.95, f"{vt} phone header {n!r}") for n in PHONE_NAMES.get(vt, ())]
                own += [(n, 0.85, f"a bare {vt!r} in a contact export") for n in PHONE_WEAK.get(vt, ())]
                slots.append(Slot(f, vt, None, _names(own)))
        elif f.type is FieldType.ADDRESS and f.parts:
            for part in f.parts:
                own = [(f"{f.slug} {part}", 1.0, f"column key {f.slug}.{part}"), (f"{f.label} ({part})", 1.0, "label")]
                own += [(n, 1.0, f"address part header {n!r}") for n in ADDRESS_NAMES.get(part, ())]
                own += [(n, w, f"vendor header {n!r}") for n, w in ADDRESS_LOOSE.get(part, ())]
                if part == "street":
                    own += [
                        (n, GENERIC_CAP * w, f"{why} (taken as the street line)")
                        for n, w, why in names + [(g, 1.0, f"header {g!r}") for g in ADDRESS_GENERIC]
                    ]
                slots.append(Slot(f, None, part, _names(own)))
        else:
            slots.append(Slot(f, None, None, _names(names, EXACT_ALIASES.get(f.slug, ()))))
    return tuple(Slot(s.field, s.value_type, s.part, s.names, s.generic, i) for i, s in enumerate(slots))


_QUALIFIED = re.compile(r"^\s*([A-Za-z][A-Za-z ]{0,30}?)\s*(?:\s-\s|:\s*)(.+)$")
_NESTED = re.compile(r"^[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+$")
_OF_PLACE = re.compile(r"^(.+?)\s+of\s+(.*\b(?:address|location)\b.*)$", re.IGNORECASE)


def _raw_readings(raw: str) -> list[tuple[str, float, str, bool]]:
    """The header's raw text and what is left after a qualifier, a nesting or an "of <address>" tail."""
    found: list[tuple[str, float, str, bool]] = [(raw, 1.0, "", False)]
    if _NESTED.match(raw.strip()):
        found.append((raw.strip().rsplit(".", 1)[1], 0.95, "nested key", False))
    match = _QUALIFIED.match(raw)
    if match:
        owner_words = normalize(match.group(1)).split()
        if owner_words and owner_words[-1] in OWN_OBJECTS:
            found.append((match.group(2), 0.95, f"field of the {match.group(1).strip()}", False))
        elif owner_words and owner_words[-1] in OTHER_OBJECTS:
            found.append((match.group(2), 0.6, f"field of the {match.group(1).strip()}", True))
    more = []
    for text, trust, how, foreign in found:
        place = _OF_PLACE.match(text)
        if place:
            more.append((place.group(1), trust * 0.95, (how + "; " if how else "") + f"part of the {place.group(2).strip()}", foreign))
    found += more
    alternatives = []
    for text, trust, how, foreign in found:
        if "/" in text:
            for i, alt in enumerate(p for p in text.split("/") if p.strip()):
                alternatives.append(
                    (alt, trust * (1.0 if i == 0 else 0.97), (how + "; " if how else "") + f"alternative {alt.strip()!r}", foreign)
                )
    return found + alternatives


@dataclass(frozen=True)
class Header:
    raw: str
    norm: str
    tokens: tuple[str, ...]
    phrases: tuple[Phrase, ...]  # the whole header first

    @classmethod
    def of(cls, raw: str) -> Header:
        norm = normalize(raw)
        found: dict[str, Phrase] = {}

        def add(text: str, trust: float, how: str, foreign: bool) -> None:
            if text and (text not in found or found[text].trust < trust):
                found[text] = Phrase(text, trust, how, foreign)

        for text, trust, how, foreign in _raw_readings(str(raw)):
            add(normalize(text), trust, how, foreign)
        for phrase in list(found.values()):  # "TitleOrPosition": either word names the column
            for i, alt in enumerate(phrase.text.split(" or ") if " or " in phrase.text else ()):
                add(
                    alt,
                    phrase.trust * (1.0 if i == 0 else 0.97),
                    (phrase.how + "; " if phrase.how else "") + f"alternative {alt!r}",
                    phrase.foreign,
                )
        for phrase in list(found.values()):
            for prefix, trust in PREFIXES:
                if phrase.text.startswith(prefix + " ") and len(phrase.text) > len(prefix) + 1:
                    how = (phrase.how + "; " if phrase.how else "") + f"without prefix {prefix!r}"
                    foreign = phrase.foreign or prefix.split()[0] not in OWN_OBJECTS
                    add(phrase.text[len(prefix) + 1 :], phrase.trust * trust, how, foreign)
        for phrase in list(found.values()):
            words = phrase.text.split()
            for text, how in ((" ".join(_expand(words)), "spelled out"), (" ".join(_singular(w) for w in words), "singular")):
                if text != phrase.text:
                    add(text, phrase.trust * 0.97, (phrase.how + "; " if phrase.how else "") + how, phrase.foreign)
        ordered = sorted(found.values(), key=lambda p: (p.text != norm, -p.trust))
        return cls(raw, norm, tuple(norm.split()), tuple(ordered))

    @property
    def words(self) -> frozenset[str]:
        """Every word of every reading: ``orgid`` has an ``id``."""
        return frozenset(w for p in self.phrases for w in p.text.split())

    @property
    def has_id(self) -> bool:
        return bool(ID_TOKENS & self.words)

    @property
    def of_another_object(self) -> bool:
        """``Deal - Owner``, ``Company: Record ID``: a column about another object than the record."""
        return any(p.foreign and p.how.startswith("field of the") for p in self.phrases)

    @property
    def negated(self) -> bool:
        return bool(NEGATIONS & set(self.tokens)) or "opted out" in self.norm or "opt out" in self.norm

    @property
    def names_a_time(self) -> bool:
        """``Subscribed at``, ``Date of Birth``, ``OPTIN_TIME``: a moment, never a flag, a name or a count."""
        t = self.tokens
        return bool(t) and "zone" not in t and (t[-1] in TIME_WORDS or t[0] == "date" or "date" in t)

    @property
    def describes_another_column(self) -> str | None:
        """``Phone Number Type``, ``Email 2 Type``: the kind of a value, not the value."""
        return self.tokens[-1] if self.tokens and self.tokens[-1] in META_WORDS else None

    @property
    def number(self) -> str | None:
        """``Phone Number 2``: the second of several same-named columns (``Address 2`` is a name of its own)."""
        return self.tokens[-1] if len(self.tokens) > 1 and self.tokens[-1].isdigit() and self.tokens[-1] != "1" else None

    @property
    def core(self) -> str:
        """The innermost reading, after qualifiers and nesting: ``fields.name`` -> ``name``."""
        readings = [p for p in self.phrases if p.how and "alternative" not in p.how and "prefix" not in p.how]
        return min(readings, key=lambda p: len(p.text)).text if readings else self.norm


# --- meanings recognised by pattern ------------------------------------------------------------------

_CREATED = frozenset({"created", "create", "creation", "added", "signup", "registered", "registration", "joined"})
_UPDATED = frozenset({"updated", "update", "modified", "modify", "modification", "changed", "edited"})
_ORDERS = frozenset({"order", "orders", "purchase", "purchases", "payment", "payments", "transaction", "transactions"})
_COUNTS = frozenset({"count", "number", "total", "nb", "qty", "quantity"})
_MONEY = frozenset({"amount", "value", "spent", "spend", "revenue", "refunded", "volume", "sum", "average", "date", "last", "first"})
_MESSAGING = frozenset({"sms", "whatsapp", "text", "texting", "signal", "viber", "telegram"})
_PHONE_WORDS = frozenset({"phone", "number", "mobile", "cell", "tel", "no"})
_CONSENT_WORDS = frozenset({"consent", "opt", "optin", "subscribed", "subscription", "marketing", "status", "permission"})


def _timestamp_kind(words: list[str]) -> str | None:
    """``created_at``, ``Date Created``, ``Person created``, ``LastModifiedDate``, ``Update time``, ``udate``, ``signupDate``."""
    rest = [w for w in words if w not in TIME_WORDS and w not in {"last", "first", "sign", "up", "signed"}]
    if "signed" in words and "up" in words:
        rest.append("signup")
    if not rest or len(rest) > 2 or (len(rest) == 2 and rest[0] not in OWN_OBJECTS):
        return None  # "Deal created", "Created by", "Last activity date" are not the record's own times
    verb = rest[-1]
    return "created_at" if verb in _CREATED else "updated_at" if verb in _UPDATED else None


def _object_id(words: list[str]) -> str | None:
    """``<object> id``: the record's own (``Contact Id``), another object's (``Company Id``), or a vendor's (``Copper ID``)."""
    if len(words) != 2 or words[1] not in ID_TOKENS:
        return None
    return "own" if words[0] in OWN_OBJECTS else "other" if words[0] in OTHER_OBJECTS or words[0] in ABBREVIATIONS else "vendor"


def _pattern(words: list[str], slot: Slot) -> tuple[float, str]:
    """The pattern score of one reading for one slot (0 when no pattern applies)."""
    slug, ws = slot.field.slug, set(words)
    if slug in ("created_at", "updated_at") and _timestamp_kind(words) == slug:
        return 0.96, "a timestamp of the record's " + ("creation" if slug == "created_at" else "last change")
    if slug == "external_id":
        kind = _object_id(words)
        if kind == "own":
            return 0.93, f"the id of the {words[0]} itself"
        if kind == "vendor":
            return 0.75, f"an id named after the source system ({words[0]!r})"
    if slug == "owner" and words and words[-1] == "owner" and not ws & ID_TOKENS and not (len(words) > 1 and words[-2] in OTHER_OBJECTS):
        return 0.9, "an owner of the record"
    if slug == "ip_address" and words and words[-1] == "ip" and len(words) <= 3:
        return 0.8, "an IP address"
    if slug == "orders_count" and ws & _ORDERS and ws & _COUNTS and not ws & _MONEY:
        return 0.93, "a count of orders or payments"
    if slot.value_type == "mobile" and ws & _MESSAGING and not ws & _CONSENT_WORDS and (ws & _PHONE_WORDS or words == ["whatsapp"]):
        return 0.95, "an SMS or messaging number is the mobile phone"
    return 0.0, ""


def name_score(header: Header, slot: Slot) -> tuple[float, str, TargetName | None]:
    """How well the header names the slot: the best reading against the best name, or a pattern."""
    best: tuple[float, str, TargetName | None] = (0.0, "", None)
    for name in slot.names:
        name_words = name.phrase.split()
        id_only = bool(name_words) and set(name_words) <= ID_TOKENS
        for phrase in header.phrases:
            if (id_only and phrase.foreign) or (slot.field.slug == "external_id" and header.of_another_object):
                continue  # "Card ID" is the card's id, "Company: Record ID" the company's: not the record's
            where = f"header ({phrase.how})" if phrase.how else "header"
            if phrase.text == name.phrase or _compact(phrase.text) == _compact(name.phrase):
                score, why = name.weight * phrase.trust, f"{where} matches {name.why}"
            elif name.exact:
                continue
            else:
                similarity = _dice(_tokens(phrase.text), _tokens(name.phrase))
                if not similarity:
                    continue
                score = 0.85 * similarity * min(1.0, name.weight / 0.95) * phrase.trust
                if header.number and header.number not in name_words:
                    score *= 0.5  # "Phone Number 2" is not the phone number
                why = f"{where} words similar ({similarity:.2f}) to {name.why}"
            if score > best[0]:
                best = (score, why, name)
    for phrase in header.phrases:
        score, why = _pattern(phrase.text.split(), slot)
        score *= phrase.trust
        if score > best[0]:
            best = (score, f"header ({phrase.how}) is {why}" if phrase.how else f"header is {why}", None)
    return best
