"""Suggesting a mapping: names and values scored together, then assigned best first.

Besides each column's own name and values, two readings need the whole header row: a lone
``state`` (Kit's subscriber state) is an address part only beside other address columns, and
a bare ``name`` next to a last name but no first name is the first name (MailerLite).
"""

from __future__ import annotations

from sqlalchemy import Engine

from ferry.catalog import FieldType, Resource
from ferry.import_params import ColumnMapping
from tasks.imports.map.memory import remembered_mapping
from tasks.imports.map.names import Header, Slot, name_score, resource_slots
from tasks.imports.map.targets import importable_resource
from tasks.imports.map.values import compatibility, profile_values, value_candidates

THRESHOLD = 0.62  # below this a column stays unmapped
AMBIGUOUS_PARTS = frozenset({"state", "region", "province"})  # address parts that are also words for a status
_TIMES = (FieldType.DATE, FieldType.DATETIME)
# Words that name a messaging channel: "SMS Marketing Consent" is never e-mail consent, nor "Email Opt In" the SMS one.
CHANNELS = {"email": "email", "sms": "sms", "text": "sms", "whatsapp": "sms", "push": "push"}


def _channel(slot: Slot) -> str | None:
    slug = slot.field.slug
    return "email" if slug == "email_consent" else "sms" if slug == "sms_consent" else None


def _name_rules(header: Header, slot: Slot, name) -> tuple[float, str]:
    """Penalties from the header's shape: an id, a moment, or a description of another column."""
    mult, notes = 1.0, []
    if header.has_id and name is not None and not name.has_id and slot.field.slug != "external_id":
        mult, notes = mult * 0.5, notes + ["an identifier column is unlikely to hold this field"]
    if header.names_a_time and slot.kind not in _TIMES:
        mult, notes = mult * 0.5, notes + ["the header names a moment, the field is no date"]
    channel, named = _channel(slot), {CHANNELS[w] for w in header.words if w in CHANNELS}
    if channel and named and channel not in named:
        mult, notes = 0.0, notes + [f"the header names another channel than {slot.field.slug}'s"]
    meta = header.describes_another_column
    if meta and (name is None or meta not in name.phrase.split()):
        mult, notes = mult * 0.5, notes + [f"the header is the {meta} of another column"]
    return mult, "; ".join(notes)


def _lone_parts(headers: list[Header], candidates: list) -> set[int]:
    """Columns named only "state" (or region, province) in a file with no other address column: a status, not a place."""
    placed = {ci for score, ci, _, slot, _, _ in candidates if slot.part and slot.part != "state" and score >= THRESHOLD}
    return {ci for ci, h in enumerate(headers) if h.core in AMBIGUOUS_PARTS and not placed - {ci}}


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
    resource = importable_resource(resource)
    columns = _columns_of(info_or_columns)
    if workspace is not None:
        if engine is None:
            from ferry.store.engine import get_engine

            engine = get_engine()
        remembered = remembered_mapping(engine, workspace, resource, columns)
        if remembered is not None:
            return remembered
    slots = resource_slots(resource)
    headers = [Header.of(c) for c in columns]
    candidates: list[tuple[float, int, int, Slot, str, float]] = []  # (score, column, slot order, slot, why, name score)
    best_rejected: dict[int, tuple[float, str]] = {}  # column -> (how strongly the header matched, why not)
    for ci, (column, header) in enumerate(zip(columns, headers)):
        profile = profile_values([row.get(column) for row in sample_rows])
        for slot in slots:
            score, why, name = name_score(header, slot)
            if score <= 0:
                continue
            mult, note = compatibility(slot, header, profile)
            rule_mult, rule_note = _name_rules(header, slot, name)
            mult, note = mult * rule_mult, note or rule_note
            final = score * mult
            reason = why + (f"; {note}" if note else "")
            candidates.append((final, ci, slot.order, slot, reason, score))
        for score, slot, why in value_candidates(slots, header, profile):
            mult, note = compatibility(slot, header, profile)
            candidates.append((score * mult, ci, slot.order, slot, why, score))
    lone = _lone_parts(headers, candidates)
    candidates = [c for c in candidates if not (c[1] in lone and c[3].part == "state")]
    for ci in lone:
        best_rejected[ci] = (1.0, f"{columns[ci]!r} alone, with no other address column, is a status rather than an address part")
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
            target = next((s for s in resource_slots(resource) if s.field is slot.field and not s.generic and s.key not in used), None)
            if target is None:
                continue
            reason += f" -> {target.value_type}"
        if target.key in used:
            reject(ci, max(strength, 2.0), f"{target.key} ({score:.2f}) is taken by a better match; {reason}")
            continue
        used.add(target.key)
        chosen[ci] = ColumnMapping(columns[ci], target.field.slug, target.value_type, target.part, round(min(1.0, score), 2), reason)
    _first_name_from_name(headers, chosen)
    result = []
    for ci, column in enumerate(columns):
        if ci in chosen:
            result.append(chosen[ci])
            continue
        rejected = best_rejected.get(ci)
        why = f"unmapped: {rejected[1]}" if rejected else "unmapped: no field matches the header or the values"
        result.append(ColumnMapping(column, None, None, None, 0.0, why))
    return result


def _first_name_from_name(headers: list[Header], chosen: dict[int, ColumnMapping]) -> None:
    """A bare "name" beside a last name and no first name is the first name (MailerLite's ``name``, ``last_name``)."""
    targets = {m.target_field_slug for m in chosen.values()}
    if "last_name" not in targets or "first_name" in targets:
        return
    for ci, m in chosen.items():
        if m.target_field_slug == "full_name" and headers[ci].core == "name":
            why = f"{m.reason}; beside a last name and no first name, a bare name is the first name"
            chosen[ci] = ColumnMapping(m.source_column, "first_name", None, None, m.confidence, why)
            return
