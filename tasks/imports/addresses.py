"""Addresses in one cell, split into their parts (street, street2, city, state, zip, country).

A column mapped to the whole address (``address`` with no part) is read in the
shapes exports write it, vectorised per batch:

* Mailchimp's ADDRESS merge field: its parts separated by two spaces,
  ``addr1  addr2  city  state  zip  country`` (``addr2`` may be missing);
* one line or several, parts separated by commas or line breaks, with the zip
  code where the country puts it: ``1 Main St, Apt 4, Springfield, IL 62704, USA``
  (US/CA style: state then zip), ``Hauptstr. 5, 10115 Berlin, Germany`` (zip
  before city), ``10 Downing St, London SW1A 2AA, UK`` (UK postcode after city).

A value in none of these shapes is kept whole in ``street``, and the caller
counts it so the run can say so.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ferry.catalog import ADDRESS_PARTS
from tasks.imports.cells import mask

_PART = r"[^,]+?"
_HEAD = rf"^(?P<street>{_PART}),\s*(?:(?P<street2>{_PART}),\s*)?"
_COUNTRY = rf"(?:,\s*(?P<country>{_PART}))?\s*$"
#: Comma-separated layouts (line breaks become commas first), most specific first.
COMMA_LAYOUTS = (
    _HEAD + rf"(?P<city>{_PART}),\s*(?P<state>[A-Za-z][A-Za-z .]*?)\s+(?P<zip>\d{{5}}(?:-\d{{4}})?|[A-Z]\d[A-Z] ?\d[A-Z]\d)" + _COUNTRY,
    _HEAD + rf"(?P<city>{_PART}),?\s+(?P<zip>[A-Z]{{1,2}}\d[A-Z\d]? ?\d[A-Z]{{2}})" + _COUNTRY,
    _HEAD + rf"(?P<zip>(?:[A-Z]{{1,2}}-)?\d{{4,5}})\s+(?P<city>{_PART})" + _COUNTRY,
)
MAILCHIMP_SEPARATOR = "  "


def _mailchimp(text: pa.Array) -> tuple[dict[str, pa.Array], pa.Array]:
    """Two-space separated parts: 6 (with street2) or 5 (without); anything else is not this shape."""
    parts = pc.split_pattern(pc.fill_null(text, ""), MAILCHIMP_SEPARATOR)
    count = pc.list_value_length(parts)
    six, five = mask(pc.equal(count, 6)), mask(pc.equal(count, 5))

    def at(i6: int, i5: int | None) -> pa.Array:
        got6 = _element(parts, i6, six)
        got5 = _element(parts, i5, five) if i5 is not None else pa.nulls(len(text), pa.string())
        return pc.coalesce(got6, got5)

    fields = {
        "street": at(0, 0),
        "street2": at(1, None),
        "city": at(2, 1),
        "state": at(3, 2),
        "zip": at(4, 3),
        "country": at(5, 4),
    }
    return fields, pc.or_(five, six)


def _element(lists: pa.Array, index: int, where: pa.Array) -> pa.Array:
    """The ``index``-th item of each list where ``where`` holds (rows too short there are never asked), else null."""
    safe = pc.if_else(where, lists, pa.scalar([""] * (index + 1), lists.type))
    return pc.if_else(where, pc.list_element(safe, index), pa.scalar(None, pa.string()))


def _comma(text: pa.Array) -> tuple[dict[str, pa.Array], pa.Array]:
    lines = pc.replace_substring_regex(text, r"\s*(?:\r\n|\r|\n)\s*", ", ")
    found = {part: pa.nulls(len(text), pa.string()) for part in ADDRESS_PARTS}
    matched = pa.array([False] * len(text))
    for layout in COMMA_LAYOUTS:
        parts = pc.extract_regex(pc.if_else(matched, pa.scalar(None, pa.string()), lines), layout)
        hit = pc.is_valid(parts)
        if not pc.any(hit).as_py():
            continue
        for part in ADDRESS_PARTS:
            if part in layout:
                found[part] = pc.coalesce(found[part], pc.struct_field(parts, part))
        matched = pc.or_(matched, mask(hit))
    return found, matched


def split_addresses(text: pa.Array) -> tuple[dict[str, pa.Array], int]:
    """Each address part as an array (empty parts null), and how many non-empty cells fit no known shape."""
    mailchimp, is_mailchimp = _mailchimp(text)
    comma, is_comma = _comma(pc.if_else(is_mailchimp, pa.scalar(None, pa.string()), text))
    known = pc.or_(is_mailchimp, is_comma)
    parts = {}
    for part in ADDRESS_PARTS:
        value = pc.if_else(is_mailchimp, mailchimp[part], comma[part])
        value = pc.utf8_trim_whitespace(value)
        parts[part] = pc.if_else(mask(pc.equal(value, "")), pa.scalar(None, pa.string()), value)
    unknown = pc.and_(pc.is_valid(text), pc.invert(known))
    parts["street"] = pc.if_else(unknown, text, parts["street"])
    return parts, int(pc.sum(pc.cast(unknown, pa.int64())).as_py() or 0)
