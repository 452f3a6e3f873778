"""The store's tables, derived from the resource catalog.

Each catalog resource with a table becomes one SQLAlchemy Core table: one SQL
column per catalog column (``phone.mobile`` -> ``phone_mobile``, a reference
``company`` -> ``company_id``), plus ``workspace_id`` on every row. Nothing
about a resource's fields is declared twice. Alembic migrations freeze each
version of this schema (``ferry/migrations``).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from ferry import catalog
from ferry.catalog import FieldType, Resource

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY, so ids are BIGINT elsewhere.
Id = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")

_SQL_TYPES = {
    FieldType.TEXT: Text,
    FieldType.EMAIL: lambda: String(320),
    FieldType.PHONE: lambda: String(64),
    FieldType.URL: Text,
    FieldType.INTEGER: BigInteger,
    FieldType.NUMBER: Float,
    FieldType.BOOLEAN: Boolean,
    FieldType.DATE: Date,
    FieldType.DATETIME: DateTime,
    FieldType.ENUM: lambda: String(64),
    FieldType.JSON: lambda: Json,
}

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", Id, primary_key=True),
    Column("slug", String(100), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("created_at", DateTime, nullable=False, server_default=func.current_timestamp()),
)


def _table_for(resource: Resource) -> Table:
    columns: list = [Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False)]
    constraints: list = []
    for field in resource.fields:
        if field.slug == "id":
            columns.insert(0, Column("id", Id, primary_key=True))
            continue
        for col in field.columns():
            if field.type is FieldType.REFERENCE:
                target = catalog.RESOURCES[field.reference].table
                on_delete = "CASCADE" if field.required else "SET NULL"
                columns.append(
                    Column(
                        col.store_column,
                        Id,
                        ForeignKey(f"{target}.id", ondelete=on_delete),
                        nullable=not field.required,
                        index=True,
                    )
                )
                continue
            sql_type = _SQL_TYPES[col.type]()
            default = {"server_default": func.current_timestamp()} if field.readonly and col.type is FieldType.DATETIME else {}
            nullable = not (field.required and len(field.columns()) == 1)
            columns.append(Column(col.store_column, sql_type, nullable=nullable, **default))
        if field.unique and field.slug != "id":
            constraints.append(UniqueConstraint("workspace_id", field.columns()[0].store_column))
    if not resource.has_field("id"):
        keys = [resource.get_field(k).columns()[0].store_column for k in resource.key_fields]
        constraints.append(PrimaryKeyConstraint(*keys))
    if resource.time_column and resource.has_field(resource.time_column):
        constraints.append(Index(f"ix_{resource.table}_ws_{resource.time_column}", "workspace_id", resource.time_column))
    if not any(isinstance(c, (UniqueConstraint, Index)) for c in constraints):
        # Only where no other index starts with workspace_id: a redundant one costs every insert (~10% of a bulk load).
        constraints.append(Index(f"ix_{resource.table}_workspace_id", "workspace_id"))
    return Table(resource.table, metadata, *columns, *constraints)


_STORED = [r for r in catalog.RESOURCES.values() if r.slug not in ("analytics",)]
tables: dict[str, Table] = {r.slug: _table_for(r) for r in _STORED}

contacts = tables["contacts"]
accounts = tables["accounts"]
events = tables["events"]
survey_responses = tables["survey_responses"]
lists = tables["lists"]
list_memberships = tables["list_memberships"]
segments = tables["segments"]
workflows = tables["workflows"]
catalogs = tables["catalogs"]
schemas = tables["schemas"]
products = tables["products"]
variants = tables["variants"]
audit_log = tables["audit_log"]

Index("ix_events_ws_type", events.c.workspace_id, events.c.type)

localized_values = Table(
    "localized_values",
    metadata,
    Column("id", Id, primary_key=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("resource", String(64), nullable=False),
    Column("record_id", Id, nullable=False),
    Column("field", String(64), nullable=False),
    Column("dimension", String(64), nullable=False),
    Column("dimension_value", String(64), nullable=False),
    Column("value", Text),
    UniqueConstraint("workspace_id", "resource", "record_id", "field", "dimension", "dimension_value"),
)

# Column mappings a user accepted on import, proposed first the next time the same
# set of source columns is imported into the same resource of the workspace (migration 0002).
import_mappings = Table(
    "import_mappings",
    metadata,
    Column("id", Id, primary_key=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("resource", String(64), nullable=False),
    Column("columns_key", String(64), nullable=False),  # sha256 of the sorted source-column names
    Column("source_columns", Json, nullable=False),
    Column("mapping", Json, nullable=False),
    Column("updated_at", DateTime, nullable=False, server_default=func.current_timestamp()),
    UniqueConstraint("workspace_id", "resource", "columns_key"),
)


def table_for(resource: Resource) -> Table:
    return tables[resource.slug]


# --- the rollback journal of imports (migration 0003; tables named import_*) ---------------------------------------------------
# What each import changed, written in the import's own transaction so a crash leaves
# neither data nor journal: the run, the ids it created, and before/after images of the
# records it updated (one typed shadow table per importable resource, so a rollback
# restores exact values without a JSON round trip).

import_runs = Table(
    "import_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("resource", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # committed | rolled_back
    Column("stamp", DateTime, nullable=False),  # created_at/updated_at the import wrote
    Column("actor", Text, nullable=False),
    Column("created_rows", BigInteger, nullable=False, server_default="0"),
    Column("updated_rows", BigInteger, nullable=False, server_default="0"),
    Column("created_at", DateTime, nullable=False, server_default=func.current_timestamp()),
    Column("rolled_back_at", DateTime),
    Column("rolled_back_by", Text),
)

import_created = Table(
    "import_created_ranges",
    metadata,
    # The ids an import created, as runs of consecutive ids (first_id..last_id, both included): one
    # journal row per run, not per record. A million-row import has one or a few runs; a row per id
    # cost ~20% of its load.
    Column("run_id", String(64), nullable=False, index=True),
    Column("resource", String(64), nullable=False),
    Column("first_id", BigInteger, nullable=False),
    Column("last_id", BigInteger, nullable=False),
)


def _images_table(table: Table) -> Table:
    columns = [Column("run_id", String(64), nullable=False), Column("image", String(8), nullable=False)]
    columns += [Column(c.name, c.type, nullable=True) for c in table.columns]
    return Table(f"import_images_{table.name}", metadata, *columns, Index(f"ix_import_images_{table.name}_run", "run_id", "id"))


import_images: dict[str, Table] = {r.slug: _images_table(tables[r.slug]) for r in _STORED if r.importable and r.has_field("id")}


# --- API keys (migration 0005) -------------------------------------------------------------------------------------------------
# The HTTP API's bearer keys: one row per key, keyed by the key's public id (the part between
# ``ferry_`` and the secret), holding only the SHA-256 of the whole key (ferry/keys.py). Times are UTC.

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False, server_default=func.current_timestamp()),
    Column("expires_at", DateTime),
    Column("last_used_at", DateTime),
    Column("revoked_at", DateTime),
)


# --- API idempotency (migration 0006) ------------------------------------------------------------------------------------------
# One row per (caller, Idempotency-Key) of a POST that starts work (ferry/idempotency.py): the
# request's fingerprint, whether it is still being answered, and the first answer, replayed for 24 h.

api_idempotency = Table(
    "api_idempotency",
    metadata,
    Column("scope", String(64), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("status_code", Integer),
    Column("response", Json),
    Column("created_at", DateTime, nullable=False, index=True),
    Column("completed_at", DateTime),
    PrimaryKeyConstraint("scope", "idempotency_key"),
)


# --- saved reports (migration 0008) --------------------------------------------------------------------------------------------
# A named, saved export definition of a workspace (ferry/reports.py): resource, columns, labels, filters,
# sort, title and description as JSON, validated as an export request whenever it is written.

reports = Table(
    "reports",
    metadata,
    Column("id", String(32), primary_key=True),  # rpt_<24 hex>
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("definition", Json, nullable=False),
    Column("created_at", DateTime, nullable=False, server_default=func.current_timestamp()),
    Column("updated_at", DateTime, nullable=False, server_default=func.current_timestamp()),
    UniqueConstraint("workspace_id", "name"),
)
