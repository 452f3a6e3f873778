"""Cell text as every import check reads it (trimmed, empty as null), and custom attributes built into JSON objects.

Vectorised with pyarrow compute, one record batch at a time, like the checks
in :mod:`tasks.imports.validate` that use them.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

#: JSON string escapes (RFC 8259): the backslash first, so later escapes are not escaped again.
_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
_OTHER_CONTROL = [chr(c) for c in range(32) if chr(c) not in "\n\r\t"]


def mask(array: pa.Array) -> pa.Array:
    """A boolean array with null read as False."""
    return pc.fill_null(array, False)


def normalise_text(array: pa.Array) -> pa.Array:
    """Trim whitespace; empty strings become null."""
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        array = pc.cast(array, pa.string())
    trimmed = pc.utf8_trim_whitespace(array)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def null_where(array: pa.Array, where: pa.Array) -> pa.Array:
    return pc.if_else(where, pa.scalar(None, array.type), array)


def json_strings(text: pa.Array) -> pa.Array:
    """Each value as a JSON string literal (quoted and escaped); null stays null."""
    for raw, escaped in _ESCAPES:
        text = pc.replace_substring(text, raw, escaped)
    if pc.any(mask(pc.match_substring_regex(text, "[\\x00-\\x1f]"))).as_py():
        for char in _OTHER_CONTROL:
            text = pc.replace_substring(text, char, f"\\u{ord(char):04x}")
    return pc.binary_join_element_wise('"', text, '"', "")


def attributes_json(batch: pa.RecordBatch, pairs: tuple[tuple[str, str], ...]) -> pa.Array:
    """One compact JSON object per row, ``{"name": "cell", ...}`` of its non-empty cells (null when none).

    Names are attribute names (letters, digits, _: nothing to escape). Compact, as
    SQLite's ``json_patch`` writes it, so a merge that changes nothing compares equal.
    """
    names = batch.schema.names
    members = [  # '"name":"cell",' or null; joined with nulls as "" (null_handling="skip" drops rows where all are null)
        pc.binary_join_element_wise(f'"{name}":', json_strings(normalise_text(batch.column(names.index(source)))), ",", "")
        for name, source in pairs
    ]
    joined = pc.utf8_rtrim(pc.binary_join_element_wise(*members, "", null_handling="replace", null_replacement=""), ",")
    return null_where(pc.binary_join_element_wise("{", joined, "}", ""), mask(pc.equal(joined, "")))
