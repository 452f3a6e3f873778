"""An import's plan: the request resolved against the file's header, the exact routing every later stage reads.

:func:`route_mapping` turns mapping entries into catalog column keys (with
every problem at once); :func:`build_plan` adds static values, checks the
header and returns the :class:`ImportPlan`: small, picklable, and the only
thing parse, validate, transform and load need to know about the request.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ferry.catalog import RESOURCES, Column, FieldType, Resource
from ferry.column_mapping import ColumnMapping
from ferry.errors import ParameterError, Problem

if TYPE_CHECKING:
    from ferry.import_params import ImportRequest

DuplicateStrategy = Literal["skip", "update", "create"]
MergeMode = Literal["fill_empty", "overwrite", "prefer_import"]
DateOrder = Literal["mdy", "dmy"]


def target_column(resource: Resource, key: str) -> Column | None:
    """The importable column named ``key`` (a column key, or a single-column field slug)."""
    col = resource.column(key)
    if col is None or not resource.get_field(col.field_slug).importable:
        return None
    return col


ATTRIBUTE_NAME_RULE = "an attribute name needs a letter or digit (names are lower-case letters, digits and _)"


def attribute_name(header: str) -> str:
    """A custom attribute's name from a column header: ``Shoe Size`` -> ``shoe_size`` (what exports and filters name)."""
    ascii_text = unicodedata.normalize("NFKD", header).encode("ascii", "ignore").decode()
    return re.sub(r"[^0-9a-z]+", "_", ascii_text.lower()).strip("_")[:100]


def route_mapping(resource: Resource, entries: list[ColumnMapping]) -> tuple[dict[str, str], list[Problem], list[str]]:
    """Mapping entries -> {column key: source column}, with problems and warnings.

    Several source columns can fill one multi-value field (``phone.mobile``,
    ``phone.work``) or one address (``address.city``...). A multi-value entry
    without a value type takes the next free type, with a warning.
    """
    routes: dict[str, str] = {}
    problems: list[Problem] = []
    warnings: list[str] = []
    pending: list[tuple[int, ColumnMapping]] = []
    for i, entry in enumerate(entries):
        slug = entry.target_field_slug
        if not slug:
            continue
        where = f"mapping[{i}]"
        part = entry.value_type or entry.address_part
        if "." in slug and not resource.has_field(slug):
            slug, _, part = slug.partition(".")
        if not resource.has_field(slug):
            problems.append(Problem(f"{where}.targetFieldSlug", entry.target_field_slug, f"not a field of {resource.slug}"))
            continue
        fdef = resource.get_field(slug)
        if not fdef.importable:
            problems.append(Problem(f"{where}.targetFieldSlug", slug, "is set by Ferry and cannot be imported"))
            continue
        if fdef.type is FieldType.MULTI_VALUE:
            if part is None:
                pending.append((i, entry))
                continue
            if part not in fdef.value_types:
                problems.append(Problem(f"{where}.valueType", part, f"use one of {', '.join(fdef.value_types)}"))
                continue
            key = f"{slug}.{part}"
        elif fdef.custom_attributes and part is not None:  # one key of the custom-attributes object
            name = attribute_name(part)
            if not name:
                problems.append(Problem(f"{where}.targetFieldSlug", entry.target_field_slug, ATTRIBUTE_NAME_RULE))
                continue
            key = f"{slug}.{name}"
        elif fdef.type is FieldType.ADDRESS:
            if part is not None and part not in fdef.parts:
                problems.append(Problem(f"{where}.addressPart", part, f"use one of {', '.join(fdef.parts)}"))
                continue
            key = f"{slug}.{part}" if part else slug  # the whole address in one cell: split into its parts per row
        else:
            if part is not None:
                problems.append(Problem(f"{where}", part, f"{slug} takes no value type or address part"))
                continue
            key = slug
        if key in routes:
            problems.append(Problem(f"{where}.targetFieldSlug", key, f"already mapped from column {routes[key]!r}"))
            continue
        routes[key] = entry.source_column
    holder = resource.attributes_field
    if holder is not None and holder.slug in routes and any(k.startswith(f"{holder.slug}.") for k in routes):
        problems.append(
            Problem("mapping", holder.slug, f"{holder.slug} is mapped whole and by key; map the column {routes[holder.slug]!r} or the keys")
        )
    for i, entry in pending:
        fdef = resource.get_field(entry.target_field_slug.partition(".")[0])
        free = [v for v in fdef.value_types if f"{fdef.slug}.{v}" not in routes]
        if not free:
            problems.append(Problem(f"mapping[{i}].valueType", None, f"every {fdef.slug} value type is already mapped"))
            continue
        routes[f"{fdef.slug}.{free[0]}"] = entry.source_column
        warnings.append(f"Column {entry.source_column!r} has no value type; it is imported as {fdef.slug}.{free[0]}.")
    return routes, problems, warnings


@dataclass(frozen=True)
class PlannedColumn:
    """One column the import writes: where its values come from and where they go."""

    key: str  # catalog column key, e.g. phone.mobile
    store_column: str  # e.g. phone_mobile; for references the *_id column
    type: FieldType
    field_slug: str
    source: str | None = None  # header of the source column (None: a static value)
    static: Any = None
    required: bool = False
    unique: bool = False
    enum: tuple[str, ...] = ()
    reference: str | None = None  # referenced resource slug
    value_map: tuple[tuple[str, str | None], ...] = ()  # (lower-case cell, text read instead): ColumnMapping.value_pairs
    address_cell: bool = False  # the source cell holds the whole address; this column is its part (tasks.imports.addresses)
    date_order: DateOrder = "mdy"  # slash dates' order, decided per column from its values (tasks.imports.dates)
    attributes: tuple[tuple[str, str], ...] = ()  # custom attributes: (name, source column), built into one JSON object

    @property
    def from_file(self) -> bool:
        """Whether the values come from the file (one column, or several as custom attributes), not a static value."""
        return self.source is not None or bool(self.attributes)

    @property
    def stage_column(self) -> str:
        """Column name in the staging table: references carry the key text, not the id."""
        return f"{self.field_slug}__key" if self.reference else self.store_column


@dataclass(frozen=True)
class ImportPlan:
    """A request resolved against the file's header: what every stage needs, small and picklable."""

    resource: str
    workspace: str
    columns: tuple[PlannedColumn, ...]
    source_columns: tuple[str, ...]
    match: tuple[str, ...]
    duplicates: DuplicateStrategy
    merge: MergeMode
    create_missing_references: bool
    skip_validation: bool
    dry_run: bool
    warnings: tuple[str, ...] = ()
    mapping: tuple[dict, ...] = field(default_factory=tuple)
    date_order: DateOrder | None = None  # for columns whose slash dates read either way; None: month-first, with a warning

    @property
    def resource_def(self) -> Resource:
        return RESOURCES[self.resource]

    def column(self, key: str) -> PlannedColumn | None:
        return next((c for c in self.columns if c.key == key), None)


def _attribute_sources(
    request: ImportRequest, resource: Resource, routes: dict[str, str], source_columns: list[str], problems: list[Problem]
) -> tuple[tuple[str, str], ...]:
    """Columns that go into the custom-attributes object as (name, source column): those mapped to ``attributes.<name>``
    (taken out of ``routes``) and, with ``keep_unmapped``, every column the mapping leaves unmapped."""
    holder = resource.attributes_field
    if holder is None:
        if request.keep_unmapped:
            problems.append(Problem("keep_unmapped", True, f"{resource.slug} has no custom attributes field to keep columns in"))
        return ()
    pairs = [(key.partition(".")[2], routes.pop(key)) for key in [k for k in routes if k.startswith(f"{holder.slug}.")]]
    if request.keep_unmapped:
        if holder.slug in routes:
            problems.append(Problem("keep_unmapped", True, f"{holder.slug} is mapped whole from column {routes[holder.slug]!r}"))
        used = set(routes.values()) | {source for _, source in pairs}
        for column in source_columns:
            if column in used:
                continue
            if not attribute_name(column):
                problems.append(Problem("keep_unmapped", column, f"cannot be kept: {ATTRIBUTE_NAME_RULE}; map it or rename it"))
            pairs.append((attribute_name(column), column))
    seen: dict[str, str] = {}
    for name, column in pairs:
        if name in seen and name:
            problems.append(Problem(f"{holder.slug}.{name}", column, f"the attribute name is also taken by column {seen[name]!r}"))
        seen.setdefault(name, column)
    return tuple(pairs)


def build_plan(request: ImportRequest, source_columns: list[str], mapping: list[ColumnMapping]) -> ImportPlan:
    """Resolve the mapping against the file's header; raise ParameterError listing every problem."""
    resource = request.resource_def
    routes, problems, warnings = route_mapping(resource, mapping)
    header = set(source_columns)
    for i, entry in enumerate(mapping):
        if entry.source_column not in header:
            problems.append(Problem(f"mapping[{i}].sourceColumn", entry.source_column, "no such column in the file"))
    for name in request.value_maps:
        if name not in header:
            problems.append(Problem(f"value_maps.{name}", request.value_maps[name], "no such column in the file"))
    combined = {name: dict(values) for name, values in request.value_maps.items()}
    for entry in mapping:  # an entry's own valueMap adds to (and wins over) the request's map of its column
        combined.setdefault(entry.source_column, {}).update(entry.value_map or {})
    value_maps = {name: ColumnMapping(source_column=name, value_map=vm).value_pairs() for name, vm in combined.items()}
    for key in request.static_values:
        col = target_column(resource, key)
        if col is not None and col.key in routes:
            problems.append(
                Problem(f"static_values.{key}", request.static_values[key], f"{col.key} is also mapped from column {routes[col.key]!r}")
            )
    attributes = _attribute_sources(request, resource, routes, source_columns, problems)
    if problems:
        raise ParameterError(problems)
    planned: list[PlannedColumn] = []
    for col in resource.columns():
        fdef = resource.get_field(col.field_slug)
        if not fdef.importable:
            continue
        static_key = col.key if col.key in request.static_values else None
        kept = attributes if fdef.custom_attributes else ()
        whole = routes.get(fdef.slug) if fdef.type is FieldType.ADDRESS and col.key not in routes else None
        if col.key not in routes and static_key is None and not kept and whole is None:
            continue
        planned.append(
            PlannedColumn(
                key=col.key,
                store_column=col.store_column,
                type=col.type,
                field_slug=col.field_slug,
                source=routes.get(col.key) or whole,
                static=request.static_values.get(col.key) if static_key else None,
                required=fdef.required and len(fdef.columns()) == 1,
                unique=fdef.unique and len(fdef.columns()) == 1,
                enum=fdef.enum,
                reference=fdef.reference,
                value_map=value_maps.get(routes.get(col.key), ()),
                attributes=kept,
                address_cell=whole is not None,
            )
        )
    mapped_fields = {c.field_slug for c in planned}
    for fdef in resource.fields:
        if fdef.required and not fdef.readonly and fdef.slug not in mapped_fields:
            warnings.append(
                f"Required field {fdef.slug!r} is not mapped: rows that would create a new record are rejected; "
                "rows that update an existing record are fine."
            )
    used = set(routes.values()) | {source for _, source in attributes}
    for name in source_columns:
        if name not in used:
            warnings.append(f"Column {name!r} is not mapped and is ignored.")
    missing_match = [m for m in request.match_fields() if m not in mapped_fields]
    if missing_match and request.duplicates != "create":
        warnings.append(
            f"Match field(s) {', '.join(missing_match)} are not mapped: no row can match an existing record, every row creates one."
        )
    if request.skip_validation:
        warnings.append("skip_validation is on: values that fail checks are loaded as empty instead of rejecting their rows.")
    return ImportPlan(
        resource=resource.slug,
        workspace=request.workspace,
        columns=tuple(planned),
        source_columns=tuple(source_columns),
        match=tuple(request.match_fields()),
        duplicates=request.duplicates,
        merge=request.merge,
        create_missing_references=request.create_missing_references,
        skip_validation=request.skip_validation,
        dry_run=request.dry_run,
        warnings=tuple(warnings),
        mapping=tuple(e.to_json() for e in mapping),
        date_order=request.date_order,
    )
