"""The import flow's parameters: one pydantic model, validated up front.

Type errors come from pydantic (all at once); everything that needs the
resource catalog or the file (the mapping's targets, match fields, static
values, the file's existence) is checked by :meth:`ImportRequest.catalog_problems`,
which also lists every problem at once. Nothing is read or written before both
pass. :func:`ferry.import_plan.build_plan` turns a valid request plus the file's header into an
:class:`ImportPlan`: the exact source column -> store column routing every
later stage reads.

Mapping entries use the JSON names of ``tasks.imports.map.ColumnMapping``
(``sourceColumn``, ``targetFieldSlug``, ``valueType``, ``addressPart``,
``confidence``) so a mapping file written by ``ferry import suggest-mapping``
can be passed back unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ferry.catalog import FieldType, Resource, get_resource
from ferry.checks import is_remote_source
from ferry.column_mapping import ColumnMapping
from ferry.errors import ParameterError, Problem, UnknownResourceError, problems_from_validation
from ferry.import_plan import DateOrder, DuplicateStrategy, MergeMode, route_mapping, target_column

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
    value_maps: dict[str, dict[str, str | bool | int | float | None]] = Field(
        default_factory=dict,
        description='Source column -> value map, e.g. {"Status": {"subscribed": true, "pending": null}}: cells are matched '
        "trimmed and case-insensitively and read as the mapped value (null: empty). A mapping entry's own valueMap adds to it.",
    )
    date_order: DateOrder | None = Field(
        default=None,
        description="Slash dates (05/03/2026) in a column whose values read either way: `mdy` (month first, the default) "
        "or `dmy`. A column's own values decide when any part is over 12.",
    )
    keep_unmapped: bool = Field(
        default=False,
        description="Import every column the mapping leaves unmapped as a custom attribute (`attributes.<column name>`), "
        "instead of ignoring it.",
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
    inline_max_bytes: int = Field(
        default=INLINE_MAX_BYTES, gt=0, le=2**53 - 1, description="Size above which processing=auto starts a deployment run."
    )
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
    data_quality: bool | None = Field(
        default=None,
        description="Attach a great-expectations data-quality summary (on a sample) to the run: true always, false never, "
        "null (default) for files of at least FERRY_QUALITY_MIN_ROWS rows, so it never holds a small import back "
        "(every row is checked either way).",
    )
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


def parse_request(data: dict[str, Any] | ImportRequest) -> ImportRequest:
    """Validate raw parameters: every type problem, then every catalog problem, as one ParameterError."""
    if not isinstance(data, ImportRequest):
        try:
            data = ImportRequest.model_validate(data)
        except ValidationError as exc:
            raise ParameterError(problems_from_validation(exc.errors())) from None
    return data.validated()
