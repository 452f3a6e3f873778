"""Query: the SQL behind an export, built from its request.

The query is built with SQLAlchemy Core from the request and the catalog: one
labelled SQL expression per output column, every row scoped to the workspace.
Filters, segments, lists, references, variants and catalog/schema scopes all
become part of the one SELECT; :func:`build_queries` also gives the SELECT
that counts its rows. ``tasks.export.extract`` streams the rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Date,
    Float,
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from ferry import catalog
from ferry.catalog import FieldType, Resource
from ferry.columns import (
    FieldFilter,
    OutputColumn,
    coerce_filter_value,
    filter_problems,
    filter_type,
    is_numeric_json_filter,
    output_columns,
    resolve_column,
)
from ferry.errors import ParameterError, Problem
from ferry.params import ANALYTICS_DIMENSIONS, ANALYTICS_MEASURES, ExportRequest
from ferry.store import schema as s
from ferry.store.engine import workspace_id


class _Query:
    """Builds the SELECT for one export: expressions per column key, joins, filters."""

    def __init__(self, request: ExportRequest, ws: int, conn: Connection) -> None:
        self.request = request
        self.resource: Resource = request.resource_def
        self.ws = ws
        self.conn = conn
        self.table = s.table_for(self.resource) if self.resource.slug != "analytics" else s.events
        self.from_clause = self.table
        self._joined: dict[str, Any] = {}

    # expressions ----------------------------------------------------------
    def reference(self, field_slug: str, table=None, resource: Resource | None = None):
        """The referenced record's key column, joined once per reference."""
        table = table if table is not None else self.table
        resource = resource or self.resource
        name = f"{table.name}.{field_slug}"
        if name not in self._joined:
            field = resource.get_field(field_slug)
            target_resource = catalog.RESOURCES[field.reference]
            target = s.table_for(target_resource).alias(f"ref_{len(self._joined)}")
            fk = table.c[f"{field_slug}_id"]
            # The workspace check is part of the join: a stray id pointing into another
            # workspace must export as empty, never as that workspace's record key.
            self.from_clause = self.from_clause.outerjoin(target, and_(target.c.id == fk, target.c.workspace_id == self.ws))
            key = target_resource.key_fields[0]
            self._joined[name] = target.c[target_resource.get_field(key).columns()[0].store_column]
        return self._joined[name]

    def variants(self):
        if "variants" not in self._joined:
            v = s.variants.alias("variant")
            self.from_clause = self.from_clause.outerjoin(v, and_(v.c.product_id == self.table.c.id, v.c.workspace_id == self.ws))
            self._joined["variants"] = v
        return self._joined["variants"]

    def expression(self, col: OutputColumn) -> ColumnElement:
        if col.list_key is not None:
            member = (
                select(literal(1))
                .select_from(s.list_memberships.join(s.lists, s.lists.c.id == s.list_memberships.c.list_id))
                .where(s.lists.c.key == col.list_key, s.lists.c.workspace_id == self.ws, s.list_memberships.c.contact_id == self.table.c.id)
            )
            return case((exists(member), 1), else_=0)
        if col.json_path is not None:
            return self._json_text(*col.json_path)
        if self.resource.slug == "analytics":
            return self._analytics_expression(col.key)
        if col.key.startswith("variant."):
            return self.variants().c[col.source.store_column]
        source = col.source
        field = self.resource.get_field(source.field_slug)
        if field.type is FieldType.REFERENCE:
            return self.reference(field.slug)
        if field.slug in catalog.LOCALIZED_FIELDS.get(self.resource.slug, ()) and self.request.dimension_scope:
            return self._localized(field.slug)
        return self.table.c[source.store_column]

    def _json_number(self, parent: str, inner: str) -> ColumnElement:
        """The value at a JSON key as a number, for numeric filters on JSON keys."""
        if self.conn.dialect.name != "sqlite":
            return self.table.c[parent][inner].as_float()
        # A plain path string, not SQLAlchemy's JSON path type: the cursor streamer binds raw values.
        return cast(func.json_extract(self.table.c[parent], f'$."{inner}"'), Float)

    def _json_text(self, parent: str, inner: str) -> ColumnElement:
        """The value at a JSON key as text, the same on every backend (``80.57``, ``true``, ``/pricing``)."""
        if self.conn.dialect.name != "sqlite":
            return self.table.c[parent][inner].as_string()
        # SQLite's json_extract returns SQL numbers and 1/0 for booleans: make them the text PostgreSQL's ->> gives.
        # The path is a plain string (see _json_number).
        document, path = self.table.c[parent], f'$."{inner}"'
        return case(
            (func.json_type(document, path) == "true", literal("true")),
            (func.json_type(document, path) == "false", literal("false")),
            else_=cast(func.json_extract(document, path), String),
        )

    def _localized(self, field_slug: str) -> ColumnElement:
        lv = s.localized_values
        candidates = [
            select(lv.c.value)
            .where(
                lv.c.workspace_id == self.ws,
                lv.c.resource == self.resource.slug,
                lv.c.record_id == self.table.c.id,
                lv.c.field == field_slug,
                lv.c.dimension == dim,
                lv.c.dimension_value == value,
            )
            .scalar_subquery()
            for dim, value in self.request.dimension_scope.items()
        ]
        return func.coalesce(*candidates, self.table.c[field_slug])

    def _day(self) -> ColumnElement:
        occurred = s.events.c.occurred_at
        if self.conn.dialect.name == "sqlite":
            return func.date(occurred)
        return cast(occurred, Date)

    def _analytics_expression(self, key: str) -> ColumnElement:
        return {
            "date": self._day(),
            "event_type": s.events.c.type,
            "count": func.count(),
            "unique_contacts": func.count(s.events.c.contact_id.distinct()),
        }[key]

    def filter_expression(self, key: str) -> ColumnElement:
        """The typed (unwire-coerced) expression behind a column key, for WHERE and ORDER BY."""
        return self.expression(self._column(key, "filters"))

    def _column(self, key: str, where: str) -> OutputColumn:
        col = resolve_column(self.request, key)
        if col is None:
            raise ParameterError([Problem(where, key, f"not a column of {self.resource.slug}")])
        return col

    # the whole statement -------------------------------------------------
    def build(self, columns: list[OutputColumn]) -> Select:
        dialect = self.conn.dialect.name
        selected = [_wire(self.expression(c), c, dialect).label(c.key) for c in columns]
        where = [self.table.c.workspace_id == self.ws]
        where += self._window()
        where += self._since()
        having = []
        for i, flt in enumerate(self.request.filters):
            # Analytics measures are aggregates: they filter groups (HAVING), not events (WHERE).
            target = having if self.resource.slug == "analytics" and flt.field in ANALYTICS_MEASURES else where
            target.append(self._filter(flt, f"filters[{i}]"))
        where += self._segment()
        if self.request.activity_types:
            where.append(s.events.c.type.in_(self.request.activity_types))
        where += self._product_scope()
        if self.request.include_variants:
            self.variants()
        self.where = where
        query = select(*selected).select_from(self.from_clause).where(*where)
        if self.resource.slug == "analytics":
            query = query.group_by(*self._groups(columns))
            if having:
                query = query.having(*having)
        query = query.order_by(*self._order(columns))
        if self.request.limit:
            query = query.limit(self.request.limit)
        return query

    def count(self, query: Select) -> Select:
        """How many rows ``query`` (this builder's ``build``) returns, without computing its columns.

        A reference is a LEFT JOIN on the referenced record's id: at most one row
        each, so the count needs none of them (neither planner drops them by
        itself; on SQLite they cost ~1 s per 350k events). Variants multiply
        rows and analytics groups them: those are counted as they are.
        """
        if self.resource.slug == "analytics" or "variants" in self._joined:
            return select(func.count()).select_from(query.order_by(None).subquery())
        rows = select(literal(1)).select_from(self.table).where(*self.where)
        if len(rows.get_final_froms()) > 1:  # a filter reads a referenced record: keep the joins it needs
            rows = select(literal(1)).select_from(self.from_clause).where(*self.where)
        if self.request.limit:
            rows = rows.limit(self.request.limit)
        return select(func.count()).select_from(rows.subquery())

    def _since(self) -> list[ColumnElement]:
        """Incremental exports (issue 5): rows created or changed at or after ``request.since``."""
        from datetime import UTC

        from ferry.params import change_column, resolve_time

        since = resolve_time(self.request.since)
        if since is None:
            return []
        if since.tzinfo is not None:
            since = since.astimezone(UTC).replace(tzinfo=None)
        return [self.table.c[change_column(self.resource)] >= since]

    def _window(self) -> list[ColumnElement]:
        start, end = self.request.window()
        column_name = "occurred_at" if self.resource.slug == "analytics" else self.resource.time_column
        if not column_name or (start is None and end is None):
            return []
        column = self.table.c[column_name]
        clauses = []
        if start is not None:
            clauses.append(column >= start)
        if end is not None:
            clauses.append(column < end)
        return clauses

    def _groups(self, columns: list[OutputColumn]) -> list[ColumnElement]:
        """Analytics groups by the dimensions it shows: ``date`` + ``count`` gives daily totals."""
        keys = {c.key for c in columns}
        return [self._analytics_expression(k) for k in ANALYTICS_DIMENSIONS if k in keys]

    def _filter(self, flt: FieldFilter, where: str) -> ColumnElement:
        col = self._column(flt.field, f"{where}.field")
        expr = self.expression(col)
        value = coerce_filter_value(filter_type(col, flt), flt, where)
        if is_numeric_json_filter(col, flt):
            expr = self._json_number(*col.json_path)
        elif col.type is FieldType.JSON:
            # JSON documents compare as their text (jsonb has no LIKE or = with text).
            expr = cast(expr, String)
        match flt.op:
            case "eq":
                return expr == value
            case "ne":
                return or_(expr != value, expr.is_(None))
            case "gt":
                return expr > value
            case "gte":
                return expr >= value
            case "lt":
                return expr < value
            case "lte":
                return expr <= value
            case "in":
                return expr.in_(value)
            case "not_in":
                return or_(expr.not_in(value), expr.is_(None))
            case "contains":
                return expr.contains(str(value), autoescape=True)
            case "starts_with":
                return expr.startswith(str(value), autoescape=True)
            case "is_null":
                return expr.is_(None)
            case "not_null":
                return expr.is_not(None)
        raise AssertionError(flt.op)

    def _segment(self) -> list[ColumnElement]:
        key = self.request.segment
        if not key:
            return []
        rule = self.conn.execute(
            select(s.segments.c.rule).where(s.segments.c.workspace_id == self.ws, s.segments.c.key == key)
        ).scalar_one_or_none()
        if rule is None:
            raise ParameterError([Problem("segment", key, "no segment with this audience key in the workspace")])
        contacts_request = self.request.model_copy(
            update={
                "resource": "contacts",
                "filters": [],
                "fields": None,
                "lists": [],
                "segment": None,
                "include_variants": False,
                "dimension_scope": {},
                "catalog": None,
                "product_schema": None,
                "activity_types": [],
                "sort": None,
                "labels": {},
            }
        )
        inner = _Query(contacts_request, self.ws, self.conn)
        try:
            filters = [FieldFilter.model_validate(item) for item in rule]
        except Exception as exc:  # noqa: BLE001 - a broken saved rule is the store's problem, say which
            raise ParameterError([Problem("segment", key, f"its saved rule is invalid: {exc}")]) from None
        problems = [p for i, f in enumerate(filters) for p in filter_problems(contacts_request, f, f"segment {key!r} rule[{i}]")]
        if problems:
            raise ParameterError(problems)
        conditions = [inner._filter(f, f"segment {key!r} rule[{i}]") for i, f in enumerate(filters)]
        members = select(s.contacts.c.id).select_from(inner.from_clause).where(s.contacts.c.workspace_id == self.ws, *conditions)
        own_key = self.table.c.id if self.resource.slug == "contacts" else self.table.c.contact_id
        return [own_key.in_(members)]

    def _product_scope(self) -> list[ColumnElement]:
        clauses = []
        for name, value in (("catalog", self.request.catalog), ("schema", self.request.product_schema)):
            if value is None:
                continue
            target = s.tables[f"{name}s"]
            found = self.conn.execute(
                select(target.c.id).where(target.c.workspace_id == self.ws, target.c.key == value)
            ).scalar_one_or_none()
            if found is None:
                raise ParameterError([Problem(name, value, f"no {name} with this key in the workspace")])
            clauses.append(self.table.c[f"{name}_id"] == found)
        return clauses

    def _order(self, columns: list[OutputColumn]) -> list[ColumnElement]:
        order = []
        if self.request.sort:
            expr = self.filter_expression(self.request.sort.field)
            order.append(expr.desc() if self.request.sort.direction == "desc" else expr.asc())
        if self.resource.slug == "analytics":
            order += self._groups(columns)
        elif "id" in self.table.c:
            order.append(self.table.c.id)
        else:
            order += [self.table.c[k] for k in self.table.primary_key.columns.keys()]
        if self.request.include_variants:
            order.append(self.variants().c.id)
        return order


def _wire(expr: ColumnElement, col: OutputColumn, dialect: str) -> ColumnElement:
    """On SQLite, one storage class per column (text, integer or real), which Arrow converts column-wise.

    SQLite columns are dynamically typed (e.g. a JSON value may be a number in one
    row and text in the next); the ADBC reader needs one type per column.
    """
    if dialect != "sqlite":
        return expr
    if col.type in (FieldType.INTEGER, FieldType.BOOLEAN):
        return cast(expr, Integer)
    if col.type is FieldType.NUMBER:
        return cast(expr, Float)
    return cast(expr, String)


def build_query(request: ExportRequest, conn: Connection) -> tuple[Select, list[OutputColumn]]:
    """The export's SELECT and its output columns; raises ParameterError for unknown segments etc."""
    query, _, columns = build_queries(request, conn)
    return query, columns


def build_queries(request: ExportRequest, conn: Connection) -> tuple[Select, Select, list[OutputColumn]]:
    """The export's SELECT, the SELECT that counts its rows, and the output columns."""
    ws = workspace_id(conn, request.workspace)
    columns = output_columns(request)
    problems = _scope_problems(conn, ws, request)
    if missing := _missing_lists(conn, ws, request.lists):
        problems.append(Problem("lists", missing, "no list with these keys in the workspace"))
    if problems:
        raise ParameterError(problems)
    builder = _Query(request, ws, conn)
    query = builder.build(columns)
    return query, builder.count(query), columns


def _scope_problems(conn: Connection, ws: int, request: ExportRequest) -> list[Problem]:
    """A dimension scope naming a dimension or value the workspace's localized values do not have, with the ones that exist."""
    if not request.dimension_scope:
        return []
    lv = s.localized_values
    rows = conn.execute(
        select(lv.c.dimension, lv.c.dimension_value)
        .where(lv.c.workspace_id == ws, lv.c.resource == request.resource_def.slug)
        .distinct()
        .order_by(lv.c.dimension, lv.c.dimension_value)
    ).all()
    known: dict[str, list[str]] = {}
    for dimension, value in rows:
        known.setdefault(dimension, []).append(value)
    problems = []
    for dimension, value in request.dimension_scope.items():
        if dimension not in known:
            existing = ", ".join(known) or "none"
            problems.append(Problem(f"dimension_scope.{dimension}", value, f"no dimension {dimension!r}; the workspace has: {existing}"))
        elif value not in known[dimension]:
            problems.append(
                Problem(f"dimension_scope.{dimension}", value, f"no {dimension} {value!r}; there are: {', '.join(known[dimension])}")
            )
    return problems


def _missing_lists(conn: Connection, ws: int, keys: list[str]) -> list[str]:
    if not keys:
        return []
    found = set(conn.execute(select(s.lists.c.key).where(s.lists.c.workspace_id == ws, s.lists.c.key.in_(keys))).scalars())
    return [k for k in keys if k not in found]
