"""The import flow's parameters: one pydantic model, validated up front.

Type errors come from pydantic (all at once); everything that needs the
resource catalog or the file (the mapping's targets, match fields, static
values, the file's existence) is checked by :meth:`ImportRequest.catalog_problems`,
which also lists every problem at once. Nothing is read or written before both
pass. :func:`build_plan` turns a valid request plus the file's header into an
:class:`ImportPlan`: the exact source column -> store column routing every
later stage reads.

Mapping entries use the JSON names of ``tasks.imports.map.ColumnMapping``
(``sourceColumn``, ``targetFieldSlug``, ``valueType``, ``addressPart``,
``confidence``) so a mapping file written by ``ferry import suggest-mapping``
can be passed back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic.alias_generators import to_camel
from pydantic.dataclasses import dataclass as pydantic_dataclass

from ferry.catalog import PHONE_TYPES, RESOURCES, Column, FieldType, Resource, get_resource
from ferry.checks import is_remote_source
from ferry.errors import ParameterError, Problem, UnknownResourceError, problems_from_validation

DuplicateStrategy = Literal["skip", "update", "create"]
MergeMode = Literal["fill_empty", "overwrite", "prefer_import"]
ProcessingMode = Literal["auto", "inline", "deployment"]

#: Files above this size run as a deployment run when ``processing="auto"``.
INLINE_MAX_BYTES = 100 * 1024 * 1024
#: The deployment large imports are started on (prefect.yaml).
IMPORT_DEPLOYMENT = "import-data/default"


def _source_and_notification_problems(request: ImportRequest) -> list[Problem]:
    """Notification fields as for exports (a remote source's scheme is checked by the fetch stage, which knows the blocks)."""
    from ferry.notifications import notification_problems
    from ferry.settings import get_settings

    return notification_problems(request.notify_email, request.notify_webhook, request.notify_smtp, get_settings().smtp_block)


@pydantic_dataclass(frozen=True, config=ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore"))
class ColumnMapping:
    """Where one source column goes: a field (and phone type or address part), or nowhere.

    One model for a mapping entry wherever it appears: a mapping file, the
    suggestions, the request, the run record and the remembered mappings. JSON
    names are camelCase (``sourceColumn``, ``targetFieldSlug``, ``valueType``,
    ``addressPart``, ``confidence``, ``reason``); snake_case is accepted too, and a
    column key such as ``"targetFieldSlug": "phone.mobile"`` is split into its field
    and phone type (or address part).
    """

    source_column: str = Field(description="Header of the column in the file.")
    target_field_slug: str | None = Field(
        default=None, description="Field slug (or column key such as `phone.mobile`); null ignores the column."
    )
    value_type: str | None = Field(default=None, description="Multi-value fields: mobile, work, home or fax.")
    address_part: str | None = Field(default=None, description="Address fields: street, street2, city, state, zip or country.")
    confidence: float = Field(default=1.0, description="How sure the suggestion was (0-1); a mapping a person gave is 1.0.")
    reason: str = Field(default="", description="Why the suggestion was made (suggestions only).")

    def __post_init__(self) -> None:
        target, value_type, address_part = self.target_field_slug or None, self.value_type or None, self.address_part or None
        if target and "." in target and not (value_type or address_part):  # a column key: phone.mobile, address.city
            target, sub = target.split(".", 1)
            value_type, address_part = (sub, None) if sub in PHONE_TYPES else (None, sub)
        object.__setattr__(self, "target_field_slug", target)
        object.__setattr__(self, "value_type", value_type)
        object.__setattr__(self, "address_part", address_part)

    @property
    def target_key(self) -> str | None:
        """The catalog column key this maps to: ``email``, ``phone.mobile``, ``address.city``."""
        if self.target_field_slug is None:
            return None
        sub = self.value_type or self.address_part
        return f"{self.target_field_slug}.{sub}" if sub else self.target_field_slug

    def to_json(self) -> dict:
        return _MAPPING_ADAPTER.dump_python(self, mode="json", by_alias=True)

    @classmethod
    def from_json(cls, data: dict) -> ColumnMapping:
        """Read the JSON form; a missing or empty ``sourceColumn`` is a ParameterError, a null confidence is 1.0."""
        source = data.get("sourceColumn", data.get("source_column"))
        if not isinstance(source, str) or not source:
            raise ParameterError([Problem("sourceColumn", source, "is required: the source column's name")])
        if data.get("confidence", 0) is None:
            data = {**data, "confidence": 1.0}
        try:
            return _MAPPING_ADAPTER.validate_python(data)
        except ValidationError as exc:
            raise ParameterError(problems_from_validation(exc.errors(), root="mapping")) from None


_MAPPING_ADAPTER = TypeAdapter(ColumnMapping)


class ImportRequest(BaseModel):
    """Everything one import needs. JSON names are the contract; keep them stable."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str = Field(
        min_length=1,
        description="The file to import (CSV, TSV, XLSX, JSON, ... as the parser knows): a local path, "
        "an http(s) URL (the seeds' `sourceUrl`), or a block URI such as `sftp://NAME/path` or `s3://BUCKET/key`.",
    )
    resource: str = Field(description="Resource slug or alias, e.g. `contacts` (or `profiles`).")
    workspace: str = Field(min_length=1, description="Workspace the rows go into; nothing crosses workspaces.")
    mapping: list[ColumnMapping] | None = Field(default=None, description="Source column -> field; omit with auto_map=true.")
    auto_map: bool = Field(default=False, description="Suggest the mapping from the header and sample rows (and remember it).")
    duplicates: DuplicateStrategy = Field(
        default="skip", description="What a row that matches an existing record (or an earlier row) does."
    )
    match: list[str] | None = Field(
        default=None, description="Fields that identify a record; default the resource's key (contacts: email)."
    )
    merge: MergeMode = Field(
        default="prefer_import", description="How duplicates=update combines values: fill_empty, overwrite or prefer_import."
    )
    static_values: dict[str, Any] = Field(
        default_factory=dict, description='Column key -> value applied to every row, e.g. {"source": "fair-2026"}.'
    )
    create_missing_references: bool = Field(
        default=False, description="Create referenced records that do not exist (e.g. a company's account)."
    )
    skip_validation: bool = Field(
        default=False, description="Load values that fail checks as empty instead of rejecting rows. Loud: every run warns."
    )
    dry_run: bool = Field(default=False, description="Run every step but the commit and report what would happen.")
    processing: ProcessingMode = Field(default="auto", description="auto: inline below the size limit, else a deployment run.")
    sheet: str | None = Field(
        default=None,
        max_length=200,
        description="Workbooks: the worksheet to read, by name or 1-based index (`2`); default the first sheet with data.",
    )
    inline_max_bytes: int = Field(default=INLINE_MAX_BYTES, gt=0, description="Size above which processing=auto starts a deployment run.")
    max_errors: int = Field(
        default=100, ge=0, le=10_000, description="Errors kept in the run record; all of them go to the rejected-rows file."
    )
    max_error_rate: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Largest share of rejected rows (0-1, or a percentage such as `5%`) an import may have; "
        "past it the run fails and loads nothing. 0 refuses any rejected row; 1 never fails for rejected rows.",
    )
    data_quality: bool = Field(default=True, description="Attach a great-expectations data-quality summary (on a sample) to the run.")
    actor: str = Field(default="ferry", description="Who asked for the import (audit log).")
    notify_email: str | None = Field(
        default=None, description="E-mail address(es), comma-separated, told when the import finishes or fails (the seeds' `confirmEmail`)."
    )
    notify_webhook: str | None = Field(
        default=None, description="Webhook block (`NAME` or `webhook-endpoint/NAME`) that gets a signed JSON notice when the import ends."
    )
    notify_smtp: str | None = Field(default=None, description="SMTP block for notify_email; default FERRY_SMTP_BLOCK.")

    @field_validator("match", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("max_error_rate", mode="before")
    @classmethod
    def _percentage(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                return float(value.strip()[:-1]) / 100
            except ValueError:
                return value
        return value

    def allowed_rejected_rows(self, total_rows: int) -> int:
        """How many rows may be rejected before the run fails (``max_error_rate`` of ``total_rows``, rounded down)."""
        return int(total_rows * self.max_error_rate + 1e-9)

    @field_validator("mapping", mode="before")
    @classmethod
    def _mapping_entries(cls, value: Any) -> Any:
        if isinstance(value, dict) and "mapping" in value:  # a saved mapping file: {"mapping": [...]}
            value = value["mapping"]
        if isinstance(value, list):
            return [item.to_json() if hasattr(item, "to_json") else item for item in value]
        return value

    def validated(self) -> ImportRequest:
        """Return self, or raise one ParameterError listing every problem."""
        problems = self.catalog_problems()
        if problems:
            raise ParameterError(problems)
        return self

    @property
    def resource_def(self) -> Resource:
        return get_resource(self.resource)

    @property
    def source_path(self) -> Path:
        return Path(self.source).expanduser()

    def match_fields(self) -> list[str]:
        return list(self.match) if self.match else list(self.resource_def.key_fields)

    def catalog_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        path = self.source_path
        problems += _source_and_notification_problems(self)
        if not is_remote_source(self.source) and not path.is_file():
            problems.append(Problem("source", self.source, "no such file"))
        try:
            resource = self.resource_def
        except UnknownResourceError as exc:
            return problems + [Problem("resource", self.resource, exc.message + " " + (exc.hint or ""))]
        if not resource.importable:
            problems.append(Problem("resource", self.resource, f"{resource.slug} is export-only"))
        if not resource.has_field("id"):
            problems.append(
                Problem(
                    "resource",
                    self.resource,
                    f"{resource.slug} has no record id, so an import could not be rolled back; not importable yet",
                )
            )
        if self.mapping is None and not self.auto_map:
            problems.append(Problem("mapping", None, "give a mapping, or set auto_map=true"))
        if self.mapping is not None and self.auto_map:
            problems.append(Problem("auto_map", True, "give either a mapping or auto_map, not both"))
        for i, name in enumerate(self.match_fields()):
            if not resource.has_field(name):
                problems.append(Problem(f"match[{i}]", name, f"not a field of {resource.slug}"))
            elif (
                len(resource.get_field(name).columns()) != 1
                or resource.get_field(name).readonly
                or resource.get_field(name).type in (FieldType.REFERENCE, FieldType.JSON)
            ):
                problems.append(
                    Problem(f"match[{i}]", name, "match fields must be single-column, importable fields (not references or JSON)")
                )
        if self.mapping is not None:
            _, mapping_problems, _ = route_mapping(resource, self.mapping)
            problems += mapping_problems
        for key, value in self.static_values.items():
            col = target_column(resource, key)
            if col is None:
                problems.append(Problem(f"static_values.{key}", value, f"not an importable column of {resource.slug}"))
            elif isinstance(value, (dict, list)) and col.type is not FieldType.JSON:
                problems.append(Problem(f"static_values.{key}", value, "must be a single value"))
        return problems


def target_column(resource: Resource, key: str) -> Column | None:
    """The importable column named ``key`` (a column key, or a single-column field slug)."""
    col = resource.column(key)
    if col is None or resource.get_field(col.field_slug).readonly:
        return None
    return col


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
        if fdef.readonly:
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
        elif fdef.type is FieldType.ADDRESS:
            if part is None:
                part = "street"
                warnings.append(f"Column {entry.source_column!r} maps to the whole address; it is imported as address.street.")
            if part not in fdef.parts:
                problems.append(Problem(f"{where}.addressPart", part, f"use one of {', '.join(fdef.parts)}"))
                continue
            key = f"{slug}.{part}"
        else:
            if part is not None:
                problems.append(Problem(f"{where}", part, f"{slug} takes no value type or address part"))
                continue
            key = slug
        if key in routes:
            problems.append(Problem(f"{where}.targetFieldSlug", key, f"already mapped from column {routes[key]!r}"))
            continue
        routes[key] = entry.source_column
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

    @property
    def resource_def(self) -> Resource:
        return RESOURCES[self.resource]

    def column(self, key: str) -> PlannedColumn | None:
        return next((c for c in self.columns if c.key == key), None)


def build_plan(request: ImportRequest, source_columns: list[str], mapping: list[ColumnMapping]) -> ImportPlan:
    """Resolve the mapping against the file's header; raise ParameterError listing every problem."""
    resource = request.resource_def
    routes, problems, warnings = route_mapping(resource, mapping)
    header = set(source_columns)
    for i, entry in enumerate(mapping):
        if entry.source_column not in header:
            problems.append(Problem(f"mapping[{i}].sourceColumn", entry.source_column, "no such column in the file"))
    for key in request.static_values:
        col = target_column(resource, key)
        if col is not None and col.key in routes:
            problems.append(
                Problem(f"static_values.{key}", request.static_values[key], f"{col.key} is also mapped from column {routes[col.key]!r}")
            )
    if problems:
        raise ParameterError(problems)
    planned: list[PlannedColumn] = []
    for col in resource.columns():
        fdef = resource.get_field(col.field_slug)
        if fdef.readonly:
            continue
        static_key = col.key if col.key in request.static_values else None
        if col.key not in routes and static_key is None:
            continue
        planned.append(
            PlannedColumn(
                key=col.key,
                store_column=col.store_column,
                type=col.type,
                field_slug=col.field_slug,
                source=routes.get(col.key),
                static=request.static_values.get(col.key) if static_key else None,
                required=fdef.required and len(fdef.columns()) == 1,
                unique=fdef.unique and len(fdef.columns()) == 1,
                enum=fdef.enum,
                reference=fdef.reference,
            )
        )
    mapped_fields = {c.field_slug for c in planned}
    for fdef in resource.fields:
        if fdef.required and not fdef.readonly and fdef.slug not in mapped_fields:
            warnings.append(
                f"Required field {fdef.slug!r} is not mapped: rows that would create a new record are rejected; "
                "rows that update an existing record are fine."
            )
    used = set(routes.values())
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
    )


def parse_request(data: dict[str, Any] | ImportRequest) -> ImportRequest:
    """Validate raw parameters: every type problem, then every catalog problem, as one ParameterError."""
    if not isinstance(data, ImportRequest):
        try:
            data = ImportRequest.model_validate(data)
        except ValidationError as exc:
            raise ParameterError(problems_from_validation(exc.errors())) from None
    return data.validated()
