"""Extract: every export filter on SQLite and PostgreSQL, checked against independent SQL.

Each test runs the real extract stage (``extract.fn``: query building, binary
COPY or SQLite streaming, the pipe to the next stage) without a flow run, and
compares what it sent with a plain SQL query written here by hand. The seeded store is
read-only; tests that need odd rows build their own ``empty_store``.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from sqlalchemy import text

from ferry.params import parse_request
from ferry.pipe import Pipe
from tasks.export.extract import extract

ACME, GLOBEX = "acme", "globex"
OCTOBER = {"from": "2026-10-01", "to": "2026-10-31"}


def export(**params) -> pa.Table:
    """Run the extract stage for ``params`` (workspace acme unless given) and read back what it sent down its pipe."""
    request = parse_request({"workspace": ACME, **params})
    pipe = Pipe(capacity=None)  # nobody reads while the stage runs
    out = extract.fn(request, pipe)
    with pipe.reading("test") as batches:
        table = pa.Table.from_batches(list(batches), schema=pipe.header().schema)
    assert table.num_rows == out.rows == pipe.header().total
    return table


def sql(store, query: str, **params) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(query), params)]


def ws(store, slug: str = ACME) -> int:
    return sql(store, "SELECT id FROM workspaces WHERE slug = :s", s=slug)[0][0]


def column(table: pa.Table, key: str) -> list:
    return table.column(key).to_pylist()


def ids(table: pa.Table) -> list[int]:
    return column(table, "id")


def sql_ids(store, table: str, where: str = "1 = 1", slug: str = ACME, **params) -> list[int]:
    return [
        r[0] for r in sql(store, f"SELECT id FROM {table} WHERE workspace_id = :ws AND ({where}) ORDER BY id", ws=ws(store, slug), **params)
    ]


def is_sqlite(store) -> bool:
    return store.kind == "sqlite"


def day_sql(store) -> str:
    return "date(occurred_at)" if is_sqlite(store) else "CAST(occurred_at AS DATE)"


# --- columns ------------------------------------------------------------------------


def test_fields_subset_in_the_requested_order(store):
    table = export(resource="contacts", fields=["last_name", "email", "id", "lifetime_value"])

    assert table.column_names == ["last_name", "email", "id", "lifetime_value"]
    expected = sql(store, "SELECT last_name, email, id, lifetime_value FROM contacts WHERE workspace_id = :ws ORDER BY id", ws=ws(store))
    assert [tuple(r.values()) for r in table.to_pylist()] == expected
    assert table.num_rows == 400


def test_default_columns_are_the_whole_catalog(store):
    from ferry.catalog import ACCOUNTS

    table = export(resource="accounts")
    assert table.column_names == ACCOUNTS.default_export_keys()
    assert ids(table) == sql_ids(store, "accounts")


def test_a_field_slug_expands_to_its_columns(store):
    table = export(resource="contacts", fields=["id", "phone", "address"])

    assert table.column_names == [
        "id",
        "phone.mobile",
        "phone.work",
        "phone.home",
        "phone.fax",
        "address.street",
        "address.street2",
        "address.city",
        "address.state",
        "address.zip",
        "address.country",
    ]
    expected = sql(
        store,
        "SELECT id, phone_mobile, phone_work, phone_home, phone_fax, address_street, address_street2, "
        "address_city, address_state, address_zip, address_country FROM contacts WHERE workspace_id = :ws ORDER BY id",
        ws=ws(store),
    )
    assert [tuple(r.values()) for r in table.to_pylist()] == expected
    assert any(r["phone.work"] for r in table.to_pylist()) and any(r["phone.work"] is None for r in table.to_pylist())


def test_references_export_the_referenced_key(store):
    table = export(resource="contacts", fields=["id", "company"])

    expected = dict(
        sql(
            store,
            "SELECT c.id, a.name FROM contacts c LEFT JOIN accounts a ON a.id = c.company_id WHERE c.workspace_id = :ws",
            ws=ws(store),
        )
    )
    assert dict(zip(ids(table), column(table, "company"))) == expected
    assert None in expected.values()  # contacts without a company export an empty cell


def test_json_key_columns_hold_the_value_at_that_key(store):
    table = export(resource="events", fields=["id", "properties.amount", "properties.path", "properties"], **OCTOBER)

    raw = {
        i: json.loads(p) if isinstance(p, str) else p
        for i, p in sql(
            store,
            "SELECT id, properties FROM events WHERE workspace_id = :ws AND occurred_at >= '2026-10-01' AND occurred_at < '2026-11-01'",
            ws=ws(store),
        )
    }
    assert sorted(raw) == ids(table)
    for row in table.to_pylist():
        props = raw[row["id"]]
        assert json.loads(row["properties"]) == props
        if "amount" in props:
            assert float(row["properties.amount"]) == props["amount"] and row["properties.path"] is None
        else:
            assert row["properties.path"] == props["path"] and row["properties.amount"] is None
    assert {r["properties.amount"] is None for r in table.to_pylist()} == {True, False}


# --- windows ---------------------------------------------------------------------------


def test_date_range_includes_the_whole_last_day(store):
    table = export(resource="events", fields=["id", "occurred_at"], **{"from": "2026-10-01", "to": "2026-10-15"})

    assert ids(table) == sql_ids(store, "events", "occurred_at >= '2026-10-01 00:00:00' AND occurred_at < '2026-10-16 00:00:00'")
    times = column(table, "occurred_at")
    assert min(times) >= datetime(2026, 10, 1, tzinfo=UTC) and max(times) < datetime(2026, 10, 16, tzinfo=UTC)
    assert any(t.date().isoformat() == "2026-10-15" for t in times)  # the `to` day itself is in


def test_datetime_bounds_are_exact_and_utc(store):
    table = export(resource="contacts", fields=["id"], **{"from": "2026-06-01T12:00:00+02:00", "to": "2026-09-01T00:00:00Z"})

    assert ids(table) == sql_ids(store, "contacts", "created_at >= '2026-06-01 10:00:00' AND created_at < '2026-09-01 00:00:00'")
    assert table.num_rows > 0


def test_events_default_to_the_last_31_days(store):
    before = datetime.now(UTC).replace(tzinfo=None)
    table = export(resource="events", fields=["id"])
    after = datetime.now(UTC).replace(tzinfo=None)

    # The window ends "now", somewhere between `before` and `after`.
    surely_in = set(sql_ids(store, "events", "occurred_at >= :a AND occurred_at < :b", a=after - timedelta(days=31), b=before))
    maybe_in = set(sql_ids(store, "events", "occurred_at >= :a AND occurred_at < :b", a=before - timedelta(days=31), b=after))
    assert surely_in <= set(ids(table)) <= maybe_in


# --- segments, lists, activity types -------------------------------------------------------


SEGMENT_SQL = {
    "customers": ([{"field": "lifecycle_stage", "op": "eq", "value": "customer"}], "lifecycle_stage = 'customer'"),
    "high-value": ([{"field": "lifetime_value", "op": "gte", "value": 500}], "lifetime_value >= 500"),
}


@pytest.mark.parametrize("key", sorted(SEGMENT_SQL))
def test_segment_exports_exactly_the_contacts_its_rule_selects(store, key):
    rule, where = SEGMENT_SQL[key]
    (saved,) = sql(store, "SELECT rule FROM segments WHERE workspace_id = :ws AND key = :k", ws=ws(store), k=key)
    assert (json.loads(saved[0]) if isinstance(saved[0], str) else saved[0]) == rule  # the oracle below is this rule

    table = export(resource="contacts", fields=["id"], segment=key)
    assert ids(table) == sql_ids(store, "contacts", where)
    assert 0 < table.num_rows < 400


def test_segment_on_events_keeps_only_its_contacts_events(store):
    table = export(resource="events", fields=["id"], segment="customers", **OCTOBER)

    assert ids(table) == sql_ids(
        store,
        "events",
        "occurred_at >= '2026-10-01' AND occurred_at < '2026-11-01' AND contact_id IN "
        "(SELECT id FROM contacts WHERE lifecycle_stage = 'customer')",
    )
    assert table.num_rows > 0


def test_unknown_segment_is_a_parameter_error(store):
    from ferry.errors import ParameterError

    with pytest.raises(ParameterError, match="segment='nope'"):
        export(resource="contacts", segment="nope")


def test_list_columns_are_one_for_members_and_zero_otherwise(store):
    table = export(resource="contacts", fields=["id"], lists=["vip", "newsletter", "beta"])

    assert table.column_names == ["id", "list.vip", "list.newsletter", "list.beta"]
    for key in ("vip", "newsletter", "beta"):
        members = {
            r[0]
            for r in sql(
                store,
                "SELECT m.contact_id FROM list_memberships m JOIN lists l ON l.id = m.list_id WHERE l.workspace_id = :ws AND l.key = :k",
                ws=ws(store),
                k=key,
            )
        }
        got = dict(zip(ids(table), column(table, f"list.{key}")))
        assert got == {i: int(i in members) for i in got}
        assert set(got.values()) == {0, 1}


def test_unknown_list_is_a_parameter_error(store):
    from ferry.errors import ParameterError

    with pytest.raises(ParameterError, match="no list with these keys"):
        export(resource="contacts", lists=["vip", "nope"])


def test_activity_types_keep_only_those_events(store):
    table = export(resource="events", fields=["id", "type"], activity_types=["purchase", "signup"], **OCTOBER)

    assert ids(table) == sql_ids(
        store, "events", "type IN ('purchase', 'signup') AND occurred_at >= '2026-10-01' AND occurred_at < '2026-11-01'"
    )
    assert set(column(table, "type")) == {"purchase", "signup"}


# --- products ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "table_name"), [("catalog", "outlet", "catalogs"), ("catalog", "main", "catalogs"), ("schema", "gear", "schemas")]
)
def test_catalog_and_schema_keep_their_products(store, option, value, table_name):
    table = export(resource="products", fields=["id", option], **{option: value})

    assert ids(table) == sql_ids(
        store, "products", f"{option}_id = (SELECT id FROM {table_name} WHERE workspace_id = :ws AND key = :k)", k=value
    )
    assert set(column(table, option)) == {value}


def test_unknown_catalog_is_a_parameter_error(store):
    from ferry.errors import ParameterError

    with pytest.raises(ParameterError, match="catalog='nope'"):
        export(resource="products", catalog="nope")


def test_include_variants_gives_one_row_per_variant(store):
    table = export(resource="products", fields=["sku", "variant.sku", "variant.stock"], include_variants=True)

    expected = sql(
        store,
        "SELECT p.sku, v.sku, v.stock FROM products p LEFT JOIN variants v ON v.product_id = p.id "
        "WHERE p.workspace_id = :ws ORDER BY p.id, v.id",
        ws=ws(store),
    )
    assert [tuple(r.values()) for r in table.to_pylist()] == expected
    assert any(v is None for _, v, _ in expected)  # products without variants keep one row
    assert len({p for p, _, _ in expected}) < len(expected)  # and some have several


def test_dimension_scope_exports_localized_values(store):
    table = export(resource="products", fields=["id", "name", "description"], dimension_scope={"language": "de"})

    expected = sql(
        store,
        """
        SELECT p.id,
               COALESCE((SELECT value FROM localized_values l WHERE l.workspace_id = p.workspace_id AND l.resource = 'products'
                         AND l.record_id = p.id AND l.field = 'name' AND l.dimension = 'language' AND l.dimension_value = 'de'), p.name),
               COALESCE((SELECT value FROM localized_values l WHERE l.workspace_id = p.workspace_id AND l.resource = 'products'
                         AND l.record_id = p.id AND l.field = 'description' AND l.dimension = 'language' AND l.dimension_value = 'de'), p.description)
        FROM products p WHERE p.workspace_id = :ws ORDER BY p.id""",
        ws=ws(store),
    )
    assert [tuple(r.values()) for r in table.to_pylist()] == expected
    assert all(name.endswith("(DE)") for name in column(table, "name"))


def test_an_unknown_dimension_or_value_is_a_parameter_problem_listing_the_ones_that_exist(store):
    from ferry.errors import ParameterError

    with pytest.raises(ParameterError) as refused:
        export(resource="products", fields=["id", "name"], dimension_scope={"language": "es", "market": "eu"})
    problems = {p.field: p.reason for p in refused.value.problems}
    assert problems["dimension_scope.language"].startswith("no language 'es'; there are: de")
    assert problems["dimension_scope.market"] == "no dimension 'market'; the workspace has: language"  # both at once


def test_dimension_scope_falls_back_per_record(empty_store):
    from ferry.store.seed import SeedCounts, seed_workspace

    seed_workspace(empty_store.engine, ACME, SeedCounts(contacts=5, events=5, products=4), seed=3)
    with empty_store.engine.begin() as conn:
        first = conn.execute(text("SELECT min(id) FROM products")).scalar_one()
        conn.execute(text("DELETE FROM localized_values WHERE record_id = :p AND dimension_value = 'de' AND field = 'name'"), {"p": first})

    table = export(resource="products", fields=["id", "name", "description"], dimension_scope={"language": "de"})
    rows = table.to_pylist()
    base = dict(sql(empty_store, "SELECT id, name FROM products"))
    assert rows[0]["name"] == base[first] and rows[0]["description"].startswith("Ein feines")
    assert all(r["name"] == base[r["id"]] + " (DE)" for r in rows[1:])


# --- field filters ---------------------------------------------------------------------


FILTERS = [
    ({"field": "lifecycle_stage", "op": "eq", "value": "lead"}, "lifecycle_stage = 'lead'"),
    ({"field": "lifecycle_stage", "op": "ne", "value": "lead"}, "lifecycle_stage <> 'lead'"),
    ({"field": "job_title", "op": "ne", "value": "CEO"}, "job_title <> 'CEO' OR job_title IS NULL"),
    ({"field": "orders_count", "op": "gt", "value": 3}, "orders_count > 3"),
    ({"field": "orders_count", "op": "gte", "value": "3"}, "orders_count >= 3"),
    ({"field": "lifetime_value", "op": "lt", "value": 100.5}, "lifetime_value < 100.5"),
    ({"field": "lifetime_value", "op": "lte", "value": "250"}, "lifetime_value <= 250"),
    ({"field": "lifecycle_stage", "op": "in", "value": ["lead", "evangelist"]}, "lifecycle_stage IN ('lead', 'evangelist')"),
    ({"field": "address.country", "op": "not_in", "value": ["DE", "FR"]}, "address_country NOT IN ('DE', 'FR')"),
    ({"field": "job_title", "op": "not_in", "value": ["CEO"]}, "job_title <> 'CEO' OR job_title IS NULL"),
    ({"field": "email", "op": "contains", "value": "@example."}, "email LIKE '%@example.%'"),
    ({"field": "email", "op": "contains", "value": "_"}, "1 = 0"),  # a literal underscore, not LIKE's wildcard
    ({"field": "address.city", "op": "starts_with", "value": "Ber"}, "address_city LIKE 'Ber%'"),
    ({"field": "notes", "op": "is_null"}, "notes IS NULL"),
    ({"field": "notes", "op": "not_null"}, "notes IS NOT NULL"),
    ({"field": "job_title", "op": "is_null"}, "job_title IS NULL"),
    ({"field": "email_consent", "op": "eq", "value": "false"}, "email_consent = FALSE"),
    ({"field": "sms_consent", "op": "eq", "value": True}, "sms_consent = TRUE"),
    ({"field": "created_at", "op": "gte", "value": "2026-06-01T02:00:00+02:00"}, "created_at >= '2026-06-01 00:00:00'"),
    ({"field": "created_at", "op": "lt", "value": "2025-12-31"}, "created_at < '2025-12-31 00:00:00'"),
    ({"field": "tags", "op": "contains", "value": "vip"}, "CAST(tags AS TEXT) LIKE '%vip%'"),
    ({"field": "company", "op": "starts_with", "value": "Lopez"}, "company_id IN (SELECT id FROM accounts WHERE name LIKE 'Lopez%')"),
    ({"field": "orders_count", "op": "in", "value": [0, "1"]}, "orders_count IN (0, 1)"),
]


@pytest.mark.parametrize(("flt", "where"), FILTERS, ids=[f"{f['field']}-{f['op']}-{f.get('value')}" for f, _ in FILTERS])
def test_field_filter(store, flt, where):
    table = export(resource="contacts", fields=["id"], filters=[flt])

    expected = sql_ids(store, "contacts", where)
    assert ids(table) == expected
    if where != "1 = 0":
        assert 0 < len(expected) < 400, "the case should select some rows but not all"


@pytest.mark.parametrize("value", ["x'); DROP TABLE contacts; --", "O'Brien\\", "50%_off $1 %(ws)s ? :ws"])
def test_filter_values_stay_values_however_they_read_as_sql(store, value):
    """Filter values reach the store as quoted literals (COPY takes no parameters): text, never SQL."""
    table = export(resource="contacts", fields=["id"], filters=[{"field": "last_name", "op": "eq", "value": value}])

    assert ids(table) == []
    assert sql(store, "SELECT COUNT(*) FROM contacts")[0][0] > 0


def test_filters_combine_with_and(store):
    table = export(
        resource="contacts",
        fields=["id"],
        filters=[{"field": "lifecycle_stage", "op": "eq", "value": "customer"}, {"field": "email_consent", "op": "eq", "value": True}],
    )

    assert ids(table) == sql_ids(store, "contacts", "lifecycle_stage = 'customer' AND email_consent = TRUE")


def test_json_key_filter_compares_numbers_as_numbers(store):
    table = export(
        resource="events",
        fields=["id", "properties.amount"],
        filters=[{"field": "properties.amount", "op": "gt", "value": 90}],
        **OCTOBER,
    )

    raw = sql(
        store,
        "SELECT id, properties FROM events WHERE workspace_id = :ws AND occurred_at >= '2026-10-01' AND occurred_at < '2026-11-01'",
        ws=ws(store),
    )
    expected = sorted(i for i, p in raw if (json.loads(p) if isinstance(p, str) else p).get("amount", 0) > 90)
    assert ids(table) == expected and expected
    assert all(float(a) > 90 for a in column(table, "properties.amount"))


def test_json_key_filter_by_text(store):
    table = export(resource="events", fields=["id"], filters=[{"field": "properties.path", "op": "eq", "value": "/pricing"}], **OCTOBER)

    raw = sql(
        store,
        "SELECT id, properties FROM events WHERE workspace_id = :ws AND occurred_at >= '2026-10-01' AND occurred_at < '2026-11-01'",
        ws=ws(store),
    )
    expected = sorted(i for i, p in raw if (json.loads(p) if isinstance(p, str) else p).get("path") == "/pricing")
    assert ids(table) == expected and expected


def test_a_filter_matching_nothing_exports_no_rows_but_all_columns(store):
    table = export(
        resource="contacts",
        fields=["id", "email", "created_at"],
        filters=[{"field": "email", "op": "eq", "value": "nobody@nowhere"}],
    )

    assert table.num_rows == 0 and table.column_names == ["id", "email", "created_at"]


# --- sort and limit ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "order_by"),
    [
        ("lifetime_value:desc", "lifetime_value DESC, id"),
        ("lifetime_value", "lifetime_value ASC, id"),
        ("created_at:desc", "created_at DESC, id"),
        ("orders_count:asc", "orders_count ASC, id"),
    ],
)
def test_sort_field_and_direction(store, sort, order_by):
    table = export(resource="contacts", fields=["id"], sort=sort)

    assert ids(table) == [r[0] for r in sql(store, f"SELECT id FROM contacts WHERE workspace_id = :ws ORDER BY {order_by}", ws=ws(store))]


def test_limit_takes_the_first_rows_of_the_order(store):
    table = export(resource="contacts", fields=["id", "lifetime_value"], sort="lifetime_value:desc", limit=7)

    assert ids(table) == [
        r[0] for r in sql(store, "SELECT id FROM contacts WHERE workspace_id = :ws ORDER BY lifetime_value DESC, id LIMIT 7", ws=ws(store))
    ]


# --- analytics -----------------------------------------------------------------------------


def test_analytics_daily_aggregates_equal_a_group_by(store):
    table = export(resource="analytics", **OCTOBER)

    assert table.column_names == ["date", "event_type", "count", "unique_contacts"]
    expected = sql(
        store,
        f"""
        SELECT {day_sql(store)} AS day, type, COUNT(*), COUNT(DISTINCT contact_id) FROM events
        WHERE workspace_id = :ws AND occurred_at >= '2026-10-01' AND occurred_at < '2026-11-01'
        GROUP BY {day_sql(store)}, type ORDER BY 1, 2""",
        ws=ws(store),
    )
    got = [(r["date"].isoformat(), r["event_type"], r["count"], r["unique_contacts"]) for r in table.to_pylist()]
    assert got == [(str(d), t, c, u) for d, t, c, u in expected]
    assert sum(c for _, _, c, _ in got) == len(sql_ids(store, "events", "occurred_at >= '2026-10-01' AND occurred_at < '2026-11-01'"))
    assert any(c != u for _, _, c, u in got)  # the two measures are different things


def test_analytics_groups_by_the_shown_dimensions_and_filters_groups(store):
    daily = export(resource="analytics", fields=["date", "count"], activity_types=["page_view", "purchase"], **OCTOBER)
    expected = sql(
        store,
        f"""
        SELECT {day_sql(store)}, COUNT(*) FROM events WHERE workspace_id = :ws AND type IN ('page_view', 'purchase')
        AND occurred_at >= '2026-10-01' AND occurred_at < '2026-11-01' GROUP BY {day_sql(store)} ORDER BY 1""",
        ws=ws(store),
    )
    assert [(r["date"].isoformat(), r["count"]) for r in daily.to_pylist()] == [(str(d), c) for d, c in expected]

    busy = export(resource="analytics", filters=[{"field": "count", "op": "gte", "value": 12}], sort="count:desc", **OCTOBER)
    counts = column(busy, "count")
    everything = column(export(resource="analytics", **OCTOBER), "count")
    assert counts == sorted((c for c in everything if c >= 12), reverse=True) and counts


def test_analytics_date_filters_compare_days(store):
    table = export(
        resource="analytics",
        fields=["date", "unique_contacts"],
        filters=[{"field": "date", "op": "gte", "value": "2026-10-15"}, {"field": "date", "op": "lt", "value": "2026-10-20"}],
        **OCTOBER,
    )

    expected = sql(
        store,
        f"""
        SELECT {day_sql(store)}, COUNT(DISTINCT contact_id) FROM events WHERE workspace_id = :ws
        AND occurred_at >= '2026-10-15' AND occurred_at < '2026-10-20' GROUP BY {day_sql(store)} ORDER BY 1""",
        ws=ws(store),
    )
    assert [(r["date"].isoformat(), r["unique_contacts"]) for r in table.to_pylist()] == [(str(d), u) for d, u in expected]
    assert len(expected) == 5


# --- workspace isolation -----------------------------------------------------------------


# Resources with a maximum span are read window by window (the seed spreads them over 90 and 180 days).
WINDOWED = {
    "events": [("2026-08-01", "2026-08-31"), ("2026-09-01", "2026-09-30"), ("2026-10-01", "2026-10-31")],
    "survey_responses": [("2026-02-01", "2026-05-03"), ("2026-05-04", "2026-08-03"), ("2026-08-04", "2026-11-03")],
}
ISOLATED = ["contacts", "accounts", "events", "survey_responses", "lists", "segments", "catalogs", "schemas", "products", "variants"]


@pytest.mark.parametrize("resource", ISOLATED)
def test_an_export_never_contains_another_workspaces_rows(store, resource):
    got: list[int] = []
    for start, end in WINDOWED.get(resource, [(None, None)]):
        window = {"from": start, "to": end} if start else {}
        got += ids(export(resource=resource, **window))
    mine, theirs = set(sql_ids(store, resource)), set(sql_ids(store, resource, slug=GLOBEX))
    assert theirs and got and set(got) <= mine and not set(got) & theirs
    if resource != "events":  # (events outside the three windows exist; the rest is read completely)
        assert sorted(got) == sorted(mine)


def test_references_segments_and_lists_stay_in_the_workspace(store):
    emails = {r[0] for r in sql(store, "SELECT email FROM contacts WHERE workspace_id = :ws", ws=ws(store))}
    companies = {r[0] for r in sql(store, "SELECT name FROM accounts WHERE workspace_id = :ws", ws=ws(store))}

    contacts = export(resource="contacts", fields=["email", "company"], segment="customers", lists=["vip"])
    assert set(column(contacts, "email")) <= emails and set(column(contacts, "company")) - {None} <= companies
    events = export(resource="events", fields=["id", "contact"], segment="customers", **OCTOBER)
    assert set(column(events, "contact")) <= emails and set(ids(events)) <= set(sql_ids(store, "events"))
    memberships = export(resource="list_memberships")
    expected = sql(
        store,
        "SELECT l.key, c.email FROM list_memberships m JOIN lists l ON l.id = m.list_id JOIN contacts c ON c.id = m.contact_id "
        "WHERE m.workspace_id = :ws",
        ws=ws(store),
    )
    assert Counter(zip(column(memberships, "list"), column(memberships, "contact"))) == Counter(expected)
    globex = export(workspace=GLOBEX, resource="contacts", fields=["email"])
    assert set(column(globex, "email")) == {
        r[0] for r in sql(store, "SELECT email FROM contacts WHERE workspace_id = :ws", ws=ws(store, GLOBEX))
    }


def test_a_stray_reference_into_another_workspace_exports_empty(empty_store):
    from ferry.store.seed import SeedCounts, seed_workspace

    for slug, seed in ((ACME, 1), (GLOBEX, 2)):
        seed_workspace(empty_store.engine, slug, SeedCounts(contacts=20, events=30, products=2), seed=seed)
    acme, globex = ws(empty_store), ws(empty_store, GLOBEX)
    with empty_store.engine.begin() as conn:
        contact = conn.execute(text("SELECT min(id) FROM contacts WHERE workspace_id = :w"), {"w": acme}).scalar_one()
        foreign_account = conn.execute(text("SELECT min(id) FROM accounts WHERE workspace_id = :w"), {"w": globex}).scalar_one()
        foreign_contact = conn.execute(text("SELECT min(id) FROM contacts WHERE workspace_id = :w"), {"w": globex}).scalar_one()
        conn.execute(text("UPDATE contacts SET company_id = :a WHERE id = :c"), {"a": foreign_account, "c": contact})
        conn.execute(
            text(
                "UPDATE events SET contact_id = :c, occurred_at = '2026-10-10 10:00:00' WHERE id = "
                "(SELECT min(id) FROM events WHERE workspace_id = :w)"
            ),
            {"c": foreign_contact, "w": acme},
        )
        foreign_email = conn.execute(text("SELECT email FROM contacts WHERE id = :c"), {"c": foreign_contact}).scalar_one()
        foreign_name = conn.execute(text("SELECT name FROM accounts WHERE id = :a"), {"a": foreign_account}).scalar_one()

    contacts = export(resource="contacts", fields=["id", "company"])
    assert dict(zip(ids(contacts), column(contacts, "company")))[contact] is None
    assert foreign_name not in column(contacts, "company")
    events = export(resource="events", fields=["id", "contact"], **OCTOBER)
    assert foreign_email not in column(events, "contact") and None in column(events, "contact")


def test_a_segment_with_a_broken_saved_rule_names_the_segment_and_the_problem(empty_store):
    from ferry.errors import ParameterError
    from ferry.store.seed import SeedCounts, seed_workspace

    seed_workspace(empty_store.engine, ACME, SeedCounts(contacts=5, events=5, products=0), seed=3)
    with empty_store.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO segments (workspace_id, key, name, rule, created_at) VALUES (:w, 'broken', 'Broken', :r, '2026-01-01')"),
            {
                "w": ws(empty_store),
                "r": json.dumps([{"field": "shoe_size", "op": "eq", "value": 42}, {"field": "orders_count", "op": "gt", "value": "many"}]),
            },
        )

    with pytest.raises(ParameterError) as caught:
        export(resource="contacts", segment="broken")
    assert [(p.field, p.value) for p in caught.value.problems] == [
        ("segment 'broken' rule[0].field", "shoe_size"),
        ("segment 'broken' rule[1].value", "many"),
    ]


# --- the SQLite reader ---------------------------------------------------------------------


def test_sqlite_columns_that_start_with_a_batch_of_nulls_keep_their_type_and_order(tmp_path):
    """The ADBC reader settles column types on its first batch: NULLs there must not fix a wrong type."""
    import sqlalchemy as sa

    from ferry.store.engine import make_engine
    from tasks.export.extract import stream_batches

    engine = make_engine(f"sqlite:///{tmp_path / 'typed.db'}")
    rows = [(n, None, None, None, None) for n in range(1, 6)] + [
        (6, "text after nulls", 2.5, "2026-05-04 13:05:00.000000", 1),
        (7, "x", 3.0, "2026-05-05 00:00:00.000000", 0),
    ]
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER, label TEXT, amount REAL, at TEXT, flag INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (?, ?, ?, ?, ?)", list(reversed(rows)))
    t = sa.table("t", sa.column("n"), sa.column("label"), sa.column("amount"), sa.column("at"), sa.column("flag"))
    query = (
        sa.select(
            sa.cast(t.c.n, sa.Integer).label("n"),
            sa.cast(t.c.label, sa.String).label("label"),
            sa.cast(t.c.amount, sa.Float).label("amount"),
            sa.cast(t.c.at, sa.String).label("at"),
            sa.cast(t.c.flag, sa.Integer).label("flag"),
        )
        .where(t.c.n > sa.bindparam("low", 0))
        .order_by(t.c.n)
    )
    schema = pa.schema(
        [("n", pa.int64()), ("label", pa.string()), ("amount", pa.float64()), ("at", pa.timestamp("us", tz="UTC")), ("flag", pa.bool_())]
    )
    try:
        batches = list(stream_batches(engine, query, schema, batch_rows=2))  # the first two batches hold only NULLs
    finally:
        engine.dispose()

    table = pa.Table.from_batches(batches, schema=schema)
    assert table.column("n").to_pylist() == list(range(1, 8))
    assert table.column("label").to_pylist() == [None] * 5 + ["text after nulls", "x"]
    assert table.column("amount").to_pylist() == [None] * 5 + [2.5, 3.0]
    assert table.column("at").to_pylist()[5] == datetime(2026, 5, 4, 13, 5, tzinfo=UTC)
    assert table.column("flag").to_pylist() == [None] * 5 + [True, False]


# --- the progress total ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"resource": "contacts", "fields": ["email", "company"]},
        {"resource": "contacts", "fields": ["email"], "limit": 7, "filters": [{"field": "company", "op": "starts_with", "value": "L"}]},
        {"resource": "events", "fields": ["id", "contact"], **OCTOBER},
        {"resource": "products", "fields": ["sku", "variant.sku"], "include_variants": True},
        {"resource": "analytics", **OCTOBER},
    ],
    ids=["references", "limit-and-filter", "events", "variants", "analytics"],
)
def test_progress_total_counts_exactly_the_rows_exported(store, params):
    import warnings

    from sqlalchemy.exc import SAWarning

    from tasks.export.extract import count_rows

    request = parse_request({"workspace": ACME, **params})
    with store.engine.connect() as conn, warnings.catch_warnings():
        warnings.simplefilter("error", SAWarning)  # e.g. a cartesian product: a join the count needs was dropped
        total = count_rows(request, conn)

    assert total == export(**params).num_rows > 0
