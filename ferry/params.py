"""The export flow's parameters: one pydantic model, validated up front.

Type errors come from pydantic (all at once); everything that needs the
resource catalog is checked by :func:`ExportRequest.check_against_catalog`,
which also lists every problem at once. Nothing is read or written before both
pass. :mod:`ferry.columns` turns a valid request into the exact columns the
export will have, in order, which every later stage reads.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, ValidationInfo, field_validator

from ferry.catalog import Resource, get_resource
from ferry.columns import FieldFilter, OutputColumn, filter_problems, naive_utc, output_columns, resolve_column
from ferry.errors import ParameterError, Problem, UnknownResourceError, problems_from_validation
from ferry.export_checks import MAX_INTEGER, bounded_relative_time, date_format_problems, filename_problems

Format = Literal["csv", "tsv", "json", "jsonl", "xml", "parquet", "xlsx", "pdf"]

DEFAULT_FILENAME = "{resource}-{workspace}-{date}-{run_id}.{format}"
TEXT_FORMATS = ("csv", "tsv")
FORMULA_FORMATS = ("csv", "tsv", "xlsx")
CONTACT_LINKED = ("contacts", "events", "survey_responses")
ANALYTICS_DIMENSIONS = ("date", "event_type")
ANALYTICS_MEASURES = ("count", "unique_contacts")


#: Column types that text operators (contains, starts_with) apply to.
#: A time relative to when the run starts: ``-30d`` or ``30d`` (30 days ago), ``24h``, ``90m``, ``2w``; ``+1d`` is ahead.
RelativeTime = Annotated[str, StringConstraints(pattern=r"^\s*[+-]?\d+\s*[mhdw]\s*$")]
_RELATIVE = re.compile(r"\s*([+-]?)(\d+)\s*([mhdw])\s*")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def resolve_time(value: datetime | date | str | None, now: datetime | None = None) -> datetime | date | None:
    """A window bound as an instant or a day: a relative time (``-30d``) counted back from ``now`` (naive UTC)."""
    if not isinstance(value, str):
        return value
    sign, amount, unit = _RELATIVE.fullmatch(value).groups()
    delta = timedelta(**{_UNITS[unit]: int(amount)})
    base = naive_utc(now or datetime.now(UTC))
    return base + delta if sign == "+" else base - delta


class SortSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="Column key to sort by.")
    direction: Literal["asc", "desc"] = Field(default="asc", description="Sort direction.")


class ExportRequest(BaseModel):
    """Everything one export needs. JSON names are the contract; keep them stable."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    workspace: str = Field(min_length=1, description="Workspace whose data is exported; nothing crosses workspaces.")
    resource: str = Field(description="Resource slug or alias, e.g. `contacts` (or `profiles`), `events`, `analytics`.")
    format: Format = Field(default="csv", description="Output file format.")
    fields: list[str] | None = Field(
        default=None,
        description="Columns to export, in this order: field slugs (`phone`), column keys (`phone.mobile`) "
        "or JSON keys (`properties.amount`). Default: every column of the resource.",
    )
    date_from: datetime | date | RelativeTime | None = Field(
        default=None, alias="from", description="Start of the window on the resource's time column (inclusive)."
    )
    date_to: datetime | date | RelativeTime | None = Field(
        default=None, alias="to", description="End of the window (a date includes that whole day; `-1d`: a day ago)."
    )
    segment: str | None = Field(default=None, description="Audience key of a saved segment; only its contacts are exported.")
    lists: list[str] = Field(default_factory=list, description="List keys; adds one 1/0 membership column per list (contacts).")
    activity_types: list[str] = Field(default_factory=list, description="Event types to keep (events, analytics).")
    catalog: str | None = Field(default=None, description="Catalog key (products).")
    product_schema: str | None = Field(default=None, alias="schema", description="Schema key (products).")
    include_variants: bool = Field(default=False, description="One row per product variant, with `variant.*` columns (products).")
    dimension_scope: dict[str, str] = Field(
        default_factory=dict, description='Localized values to use, e.g. {"language": "en"} (products).'
    )
    filters: list[FieldFilter] = Field(default_factory=list, description="Simple field filters, all of which must hold.")
    sort: SortSpec | None = Field(default=None, description="Sort order, e.g. `created_at:desc`.")
    limit: int | None = Field(default=None, gt=0, le=MAX_INTEGER, description="At most this many rows.")
    gzip: bool = Field(default=False, description="Compress the file with gzip (adds `.gz`).")
    delimiter: Literal[",", ";", "\t", "|"] = Field(default=",", description="CSV delimiter.")
    header: bool = Field(default=True, description="Write a header row (CSV/TSV).")
    date_format: str = Field(default="iso", description="`iso`, moment.js `L`, `LL`, `LLL`, or a strftime pattern such as `%d.%m.%Y`.")
    labels: dict[str, str] = Field(default_factory=dict, description="Custom header names: column key -> label.")
    neutralize_formulas: bool = Field(default=True, description="Prefix spreadsheet formula triggers with `'` in CSV/TSV/XLSX.")
    on_invalid: Literal["fail", "warn"] = Field(default="fail", description="What to do when the store holds rows that break the catalog.")
    destination: str | None = Field(
        default=None, description="A folder path, or a block reference `local-directory/NAME`. Default: managed exports folder."
    )
    filename: str = Field(
        default=DEFAULT_FILENAME, description="File name template; placeholders: {date} {resource} {workspace} {run_id} {format}."
    )
    overwrite: bool = Field(
        default=False, description="Replace a file of the same name at the destination; without it such a delivery is refused."
    )
    title: str | None = Field(default=None, description="Title of a PDF export.")
    description: str | None = Field(default=None, description="Description printed under a PDF export's title.")
    actor: str = Field(default="ferry", description="Who asked for the export (audit log).")
    notify_email: str | None = Field(
        default=None, description="E-mail address(es), comma-separated, told when the export finishes or fails (the seeds' `confirmEmail`)."
    )
    notify_webhook: str | None = Field(
        default=None,
        description="Webhook block (`NAME` or `webhook-endpoint/NAME`) that gets a signed JSON notice when the export finishes or fails.",
    )
    notify_smtp: str | None = Field(
        default=None,
        description="SMTP block (`NAME`, `smtp-server/NAME` or `email-server-credentials/NAME`) for notify_email; default FERRY_SMTP_BLOCK.",
    )
    # Incremental exports (scheduled export jobs, issue 5): see change_column().
    incremental: bool = Field(
        default=False,
        description="Export only rows created or changed since the job's last successful run (that run record's start time, read from Prefect's run history); the first run exports everything.",
    )
    since: datetime | RelativeTime | None = Field(
        default=None,
        description="Export only rows created or changed at or after this instant (UTC when naive), or this long ago (`24h`). "
        "Incremental runs fill it in from the run ledger.",
    )

    @field_validator("sort", mode="before")
    @classmethod
    def _parse_sort(cls, value: Any) -> Any:
        if isinstance(value, str):
            name, _, direction = value.partition(":")
            return {"field": name.strip(), "direction": (direction or "asc").strip().lower()}
        return value

    @field_validator("date_from", "date_to", "since", mode="before")
    @classmethod
    def _window_bound(cls, value: Any, info: ValidationInfo) -> Any:
        """A date (``"2026-10-31"``: that whole day, where pydantic alone would read midnight), an instant, or a relative time."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if _RELATIVE.fullmatch(text):
            return bounded_relative_time(text)
        day_only = re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) and info.field_name != "since"  # since is an instant
        try:
            return date.fromisoformat(text) if day_only else datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("not a date (2026-10-01), an instant (2026-10-01T08:00:00Z) or a relative time (-30d, 24h, 90m, 2w)") from None

    @field_validator("fields", "lists", "activity_types", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def validated(self) -> ExportRequest:
        """Return self, or raise one ParameterError listing every catalog problem."""
        problems = self.catalog_problems()
        if problems:
            raise ParameterError(problems)
        return self

    # --- derived values -------------------------------------------------

    @property
    def resource_def(self) -> Resource:
        return get_resource(self.resource)

    def window(self, now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
        """The effective [start, end) window, naive UTC. Resources with a maximum span get a default window."""
        now = naive_utc(now or datetime.now(UTC))
        start = _as_start(resolve_time(self.date_from, now))
        end = _as_end(resolve_time(self.date_to, now))
        span = self.resource_def.max_span_days
        if span and (start is None or end is None):
            if end is None:
                end = (start + timedelta(days=span)) if start else naive_utc(now or datetime.now(UTC))
            if start is None:
                start = end - timedelta(days=span)
        return start, end

    def extension(self) -> str:
        return self.format + (".gz" if self.gzip else "")

    # --- validation against the catalog --------------------------------

    def catalog_problems(self) -> list[Problem]:
        """Every problem the catalog finds, with a "did you mean" for a misspelt resource, field or column."""
        try:
            resource = self.resource_def
        except UnknownResourceError as exc:
            # Problems that do not need the resource are still reported: every problem at once.
            reason = exc.message + " " + (exc.hint or "")
            return [
                Problem("resource", self.resource, _with_suggestion(reason, self.resource, _resource_names()))
            ] + self._format_problems()
        return [self._suggested(p, resource) for p in self._catalog_problems(resource)]

    def _suggested(self, problem: Problem, resource: Resource) -> Problem:
        """``problem`` with the closest column or field, when it names one that does not exist (by location, never by text)."""
        if not isinstance(problem.value, str):
            return problem
        unknown_field = re.fullmatch(r"fields\[\d+\]", problem.field) and not resource.has_field(problem.value)
        unknown_column = re.fullmatch(r"sort\.field|filters\[\d+\]\.field", problem.field) and resolve_column(self, problem.value) is None
        if not (unknown_field or unknown_column):
            return problem
        return Problem(problem.field, problem.value, _with_suggestion(problem.reason, problem.value, _column_names(self, resource)))

    def _catalog_problems(self, resource: Resource) -> list[Problem]:
        problems: list[Problem] = []
        problems += self._window_problems(resource)
        problems += self._scope_problems(resource)
        problems += incremental_problems(self, resource)
        columns: list[OutputColumn] = []
        try:
            columns = output_columns(self)
        except ParameterError as exc:
            problems += exc.problems
        for i, flt in enumerate(self.filters):
            problems += filter_problems(self, flt, f"filters[{i}]")
        if self.sort and resolve_column(self, self.sort.field) is None:
            problems.append(Problem("sort.field", self.sort.field, f"not a column of {resource.slug}"))
        if resource.slug == "analytics":
            problems += self._analytics_problems(columns)
        output_keys = {c.key for c in columns}
        for key, label in self.labels.items():
            if columns and key not in output_keys:
                problems.append(Problem(f"labels.{key}", label, "labels a column that is not exported"))
            if not str(label).strip():
                problems.append(Problem(f"labels.{key}", label, "a label cannot be blank"))
        headers = [c.label for c in columns]
        for label in sorted({h for h in headers if headers.count(h) > 1}):
            problems.append(Problem("labels", label, "two columns would get this header; give each a distinct label"))
        return problems + self._format_problems()

    def _format_problems(self) -> list[Problem]:
        """Problems of the file's shape and name, which do not depend on the resource."""
        problems = date_format_problems(self.date_format)
        problems += filename_problems(self.filename)
        problems += _notification_problems(self)
        if self.format == "tsv" and self.delimiter not in (",", "\t"):
            problems.append(Problem("delimiter", self.delimiter, "TSV is always tab-delimited; use format=csv for other delimiters"))
        if self.format not in TEXT_FORMATS and not self.header:
            problems.append(Problem("header", self.header, "only CSV/TSV can omit the header"))
        return problems

    def _window_problems(self, resource: Resource) -> list[Problem]:
        if self.date_from is None and self.date_to is None:
            return []
        if not resource.time_column:
            return [Problem("from", self.date_from, f"{resource.slug} has no time column to filter on")]
        now = naive_utc(datetime.now(UTC))
        date_from, date_to = resolve_time(self.date_from, now), resolve_time(self.date_to, now)
        start, end = _as_start(date_from), _as_end(date_to)
        if start and end and start >= end:
            return [Problem("from", _shown(self.date_from), f"must be before to={_shown(self.date_to)}")]
        span = resource.max_span_days
        # Days count from date to date, as the seeds do: 2026-10-01 to 2026-11-01 is 31 days (the last day still included).
        counted_end = _as_start(date_to) if isinstance(date_to, date) and not isinstance(date_to, datetime) else end
        if span and start and counted_end and (counted_end - start) > timedelta(days=span):
            days = (counted_end - start).total_seconds() / 86_400
            return [
                Problem(
                    "to",
                    _shown(self.date_to),
                    f"from {_shown(date_from)} to {_shown(date_to)} is {days:g} days; "
                    f"{resource.slug} exports span at most {span} days. Split the export into smaller windows",
                )
            ]
        return []

    def _analytics_problems(self, columns: list[OutputColumn]) -> list[Problem]:
        """Analytics rows are groups: one per selected dimension (date, event_type) combination."""
        problems = []
        if columns and not any(c.key in ANALYTICS_MEASURES for c in columns):
            problems.append(Problem("fields", self.fields, f"analytics exports need a measure: {', '.join(ANALYTICS_MEASURES)}"))
        selected = {c.key for c in columns}
        if self.sort and self.sort.field in ANALYTICS_DIMENSIONS and columns and self.sort.field not in selected:
            problems.append(Problem("sort.field", self.sort.field, "rows are grouped by the selected columns; sort by one of them"))
        return problems

    def _scope_problems(self, resource: Resource) -> list[Problem]:
        problems = []
        if self.segment and resource.slug not in CONTACT_LINKED:
            problems.append(Problem("segment", self.segment, f"segments apply to {', '.join(CONTACT_LINKED)}, not {resource.slug}"))
        if self.lists and resource.slug != "contacts":
            problems.append(Problem("lists", self.lists, "list membership columns apply to contacts only"))
        if self.activity_types and resource.slug not in ("events", "analytics"):
            problems.append(Problem("activity_types", self.activity_types, "activity types apply to events and analytics only"))
        for name, value in (
            ("catalog", self.catalog),
            ("schema", self.product_schema),
            ("include_variants", self.include_variants or None),
            ("dimension_scope", self.dimension_scope or None),
        ):
            if value is not None and resource.slug != "products":
                problems.append(Problem(name, value, "applies to products only"))
        return problems


def _notification_problems(request: ExportRequest) -> list[Problem]:
    from ferry.notifications import notification_problems
    from ferry.settings import get_settings

    return notification_problems(request.notify_email, request.notify_webhook, request.notify_smtp, get_settings().smtp_block)


# --- incremental exports (issue 5) ------------------------------------------


def change_column(resource: Resource) -> str | None:
    """The store column telling when a row was created or last changed, for incremental exports.

    ``updated_at`` where the resource has it (an edited contact is shipped again), else its
    time column (append-only rows such as events). None for analytics: aggregates cannot
    be shipped as deltas.
    """
    if resource.slug == "analytics":
        return None
    return "updated_at" if resource.has_field("updated_at") else resource.time_column


def incremental_problems(request: ExportRequest, resource: Resource) -> list[Problem]:
    if not request.incremental and request.since is None:
        return []
    if change_column(resource) is None:
        name, value = ("incremental", True) if request.incremental else ("since", request.since)
        return [Problem(name, value, f"{resource.slug} has no column recording when rows change; export it in full")]
    return []


def _shown(value: Any) -> Any:
    """A window bound as a person writes it: an ISO date or instant (never ``datetime.date(...)``), or the relative text."""
    return value.isoformat() if isinstance(value, date) else value


def _as_start(value: datetime | date | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return naive_utc(value)
    return datetime.combine(value, time.min)


def _as_end(value: datetime | date | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return naive_utc(value)
    return datetime.combine(value + timedelta(days=1), time.min)


def parse_request(data: dict[str, Any] | ExportRequest) -> ExportRequest:
    """Validate raw parameters: every type problem and every catalog problem, as one ParameterError.

    A parameter of the wrong type (``format="xlsxx"``) does not hide the others:
    the rest of the request is checked against the catalog too, and the
    problems of both are listed together.
    """
    if not isinstance(data, ExportRequest):
        try:
            data = ExportRequest.model_validate(data)
        except ValidationError as exc:
            raise ParameterError(type_problems(exc.errors()) + _problems_of_the_rest(data, exc.errors())) from None
    return data.validated()


# --- what --scope can name ------------------------------------------------------------------


def scope_dimensions(workspace: str | None = None) -> dict[str, dict[str, list[str]]]:
    """resource -> dimension -> values ``dimension_scope`` can name, as the store holds them (of ``workspace``, or of any)."""
    import sqlalchemy as sa

    from ferry.errors import StoreError
    from ferry.store.engine import get_engine, workspace_id
    from ferry.store.schema import localized_values as lv

    query = sa.select(lv.c.resource, lv.c.dimension, lv.c.dimension_value).distinct()
    found: dict[str, dict[str, list[str]]] = {}
    engine = get_engine()
    try:
        with engine.connect() as conn:
            if workspace is not None:
                query = query.where(lv.c.workspace_id == workspace_id(conn, workspace))
            rows = conn.execute(query.order_by(lv.c.resource, lv.c.dimension, lv.c.dimension_value)).all()
    except sa.exc.OperationalError:
        url = engine.url.render_as_string(hide_password=True)
        raise StoreError(f"The store at {url} cannot be read (is it initialised?).", "Run `ferry db init` first.") from None
    for resource, dimension, value in rows:
        found.setdefault(resource, {}).setdefault(dimension, []).append(value)
    return found


# --- every problem at once, with "did you mean" --------------------------------------------


def did_you_mean(value: str, names: dict[str, str]) -> str | None:
    """The name ``value`` most likely meant: an exact alias, or the closest spelling (``names``: spelling -> name)."""
    import difflib

    wanted = value.strip().lower()
    for spelling in (wanted, wanted.replace("-", "_").replace(" ", "_"), wanted.replace("_", " ")):
        if spelling in names:
            return names[spelling]
    close = difflib.get_close_matches(wanted, list(names), n=1, cutoff=0.7)
    return names[close[0]] if close else None


def _with_suggestion(reason: str, value: str, names: dict[str, str]) -> str:
    suggestion = did_you_mean(value, names)
    if not suggestion or suggestion == value:
        return reason
    base = reason.rstrip()
    base = base[:-1] if base.endswith(".") and not base.endswith("...") else base  # a full stop, not an ellipsis
    return f"{base}; did you mean {suggestion!r}?"


def _resource_names() -> dict[str, str]:
    from ferry.catalog import RESOURCES

    names = {alias: r.slug for r in RESOURCES.values() for alias in r.aliases}
    names.update({r.slug: r.slug for r in RESOURCES.values()})
    return names


def _column_names(request: ExportRequest, resource: Resource) -> dict[str, str]:
    """Every spelling of the resource's columns and fields (slugs, column keys, the catalog's aliases) -> the name to use."""
    from ferry.columns import selectable_columns

    names = {alias: f.slug for f in resource.fields for alias in f.aliases}
    names.update({f.slug: f.slug for f in resource.fields})
    names.update({c.key: c.key for c in selectable_columns(request, resource)})
    return names


def type_problems(errors: list[dict], **naming: Any) -> list[Problem]:
    """pydantic's errors as Problems (``naming``: as problems_from_validation's); a value not allowed gets the closest allowed."""
    problems = problems_from_validation(errors, **naming)
    for i, error in enumerate(errors):
        expected = (error.get("ctx") or {}).get("expected")
        if error.get("type") == "literal_error" and isinstance(error.get("input"), str) and isinstance(expected, str):
            choices = {c.lower(): c for c in re.findall(r"'([^']*)'", expected)}
            problem = problems[i]
            problems[i] = Problem(problem.field, problem.value, _with_suggestion(problem.reason, error["input"], choices))
    return problems


def _problems_of_the_rest(data: dict[str, Any], errors: list[dict]) -> list[Problem]:
    """The catalog's problems with the parameters that are of the right type (those that are not are left out)."""
    bad = {str(e["loc"][0]) for e in errors if e.get("loc")}
    if not isinstance(data, dict) or not bad:
        return []
    rest = {k: v for k, v in data.items() if k not in bad}
    rest.setdefault("workspace", "-")  # not checked against the catalog
    resource_known = "resource" in rest
    rest.setdefault("resource", "contacts")
    try:
        request = ExportRequest.model_validate(rest)
    except ValidationError:
        return []
    names = {name for name, f in ExportRequest.model_fields.items() if name in bad or f.alias in bad} | bad
    problems = request.catalog_problems() if resource_known else request._format_problems()
    return [p for p in problems if re.match(r"[A-Za-z_]+", p.field).group(0) not in names]
