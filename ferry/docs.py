"""Render the README's resource tables from the catalog.

``python -m ferry.docs`` rewrites the part of README.md between the
``resources`` markers; a test fails when the README is out of date.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ferry.catalog import RESOURCES, Field, FieldType

START, END = "<!-- resources:start -->", "<!-- resources:end -->"
README = Path(__file__).resolve().parent.parent / "README.md"


def _type(field: Field) -> str:
    if field.type is FieldType.MULTI_VALUE:
        return f"multi-value {field.item_type.value if field.item_type else 'text'} ({', '.join(field.value_types)})"
    if field.type is FieldType.ADDRESS:
        return f"address ({', '.join(field.parts)})"
    if field.type is FieldType.REFERENCE:
        return f"reference → {field.reference}"
    if field.type is FieldType.ENUM:
        return f"enum ({', '.join(field.enum)})"
    return field.type.value


def _flags(field: Field) -> str:
    flags = [name for name, on in (("required", field.required), ("unique", field.unique), ("read-only", field.readonly)) if on]
    return ", ".join(flags)


def resource_tables() -> str:
    parts = []
    for r in RESOURCES.values():
        head = f"### `{r.slug}`" + (f" (alias: {', '.join(f'`{a}`' for a in r.aliases)})" if r.aliases else "")
        facts = [r.description]
        if r.time_column:
            facts.append(f"Time column `{r.time_column}`" + (f", windows of at most {r.max_span_days} days." if r.max_span_days else "."))
        if r.key_fields:
            facts.append(f"Key: {', '.join(f'`{k}`' for k in r.key_fields)}.")
        if not r.importable:
            facts.append("Export only.")
        rows = ["| field | columns | type | flags | aliases |", "|---|---|---|---|---|"]
        for f in r.fields:
            columns = ", ".join(f"`{c.key}`" for c in f.columns())
            rows.append(f"| {f.label} | {columns} | {_type(f)} | {_flags(f)} | {', '.join(f.aliases)} |")
        parts.append("\n".join([head, "", " ".join(facts), "", *rows]))
    return "\n\n".join(parts)


def render(readme: str) -> str:
    block = f"{START}\n{resource_tables()}\n{END}"
    if START not in readme:
        return readme.rstrip() + "\n\n## Resources\n\n" + block + "\n"
    return re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, readme, flags=re.S)


def main() -> int:
    README.write_text(render(README.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
