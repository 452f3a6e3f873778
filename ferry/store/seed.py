"""Deterministic, realistic demo data, generated column-wise with numpy.

The same arguments always produce the same rows (a seeded generator and a
fixed anchor date), and rows are generated and bulk-written in chunks, so
seeding millions of contacts or events takes seconds, not hours.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine, func, select

from ferry.store import schema
from ferry.store.engine import ensure_workspace
from ferry.store.fast_load import bigger_sqlite_cache, bulk_insert

ANCHOR = datetime(2026, 11, 1)
CHUNK = 100_000

FIRST = np.array(
    "Ada Alan Amara Ana Ben Chen Chloe Dara Diego Elif Emma Farah Felix Grace Hana Ivan Jonas Kai Lea Liam Lina Luca Maya Mia Noah Nora Omar Priya Rosa Sami Sara Theo Yara Yusuf Zoe".split()
)
LAST = np.array(
    "Abe Baker Costa Dubois Evans Fischer Garcia Haddad Ito Jensen Kowalski Lopez Martin Nakamura Novak Okafor Patel Quinn Rossi Schmidt Silva Tanaka Usman Varga Weber Young Zhang".split()
)
DOMAINS = np.array(["example.com", "example.org", "mail.test", "inbox.test", "corp.example"])
CITIES = np.array(
    [
        ("Berlin", "BE", "10115", "DE"),
        ("Paris", "IDF", "75001", "FR"),
        ("Austin", "TX", "73301", "US"),
        ("Lisbon", "LX", "1100-148", "PT"),
        ("Osaka", "27", "530-0001", "JP"),
        ("Toronto", "ON", "M5H 2N2", "CA"),
    ]
)
STREETS = np.array(["Main St", "Market St", "Rue de Rivoli", "Hauptstrasse", "Avenida da Liberdade", "King St W"])
STAGES = np.array(["subscriber", "lead", "opportunity", "customer", "evangelist"])
SOURCES = np.array(["mailchimp", "hubspot", "salesforce", "shopify", "web form", "import"])
OWNERS = np.array(["alex@ferry.test", "sam@ferry.test", "kim@ferry.test"])
TIMEZONES = np.array(["Europe/Berlin", "Europe/Paris", "America/Chicago", "Europe/Lisbon", "Asia/Tokyo", "America/Toronto"])
TAGS = np.array(['["vip"]', '["newsletter"]', '["vip", "beta"]', "[]", '["churn-risk"]'])
TITLES = np.array(["CEO", "CTO", "Marketing Manager", "Data Analyst", "Engineer", "Sales Lead", None], dtype=object)
INDUSTRIES = np.array(["Retail", "Software", "Finance", "Health", "Media"])
EVENT_TYPES = np.array(["page_view", "email_open", "email_click", "purchase", "signup", "form_submit"])
PATHS = np.array(["/", "/pricing", "/blog/launch", "/docs", "/checkout"])
SURVEYS = [
    ("nps", "How likely are you to recommend us?", [str(i) for i in range(11)]),
    ("onboarding", "How easy was it to get started?", ["very easy", "easy", "neutral", "hard"]),
]
A_FIRST, A_LAST, A_DOMAINS, A_STREETS = (pa.array(a.tolist()) for a in (FIRST, LAST, DOMAINS, STREETS))
A_CITY_COLUMNS = [pa.array(CITIES[:, i].tolist()) for i in range(CITIES.shape[1])]
A_STAGES, A_SOURCES, A_OWNERS, A_TIMEZONES, A_TAGS = (pa.array(a.tolist()) for a in (STAGES, SOURCES, OWNERS, TIMEZONES, TAGS))
A_TITLES = pa.array(TITLES.tolist(), pa.string())
A_INDUSTRIES, A_EVENT_TYPES, A_PATHS = (pa.array(a.tolist()) for a in (INDUSTRIES, EVENT_TYPES, PATHS))
A_SUFFIXES = pa.array(["Labs", "GmbH", "Inc", "Studio", "Partners"])
LANGUAGES = {"en": ("{}", "A fine {}."), "de": ("{} (DE)", "Ein feines {}."), "fr": ("{} (FR)", "Un beau {}.")}


@dataclass(frozen=True)
class SeedCounts:
    contacts: int = 1_000
    events: int = 5_000
    accounts: int | None = None  # default: one per 20 contacts
    survey_responses: int | None = None  # default: one per 10 contacts
    products: int = 50


def seed_workspace(engine: Engine, workspace: str, counts: SeedCounts, seed: int = 7) -> dict[str, int]:
    """Add demo data to ``workspace`` (created if missing). Returns rows added per table."""
    rng = np.random.default_rng(seed)
    added: dict[str, int] = {}
    with engine.begin() as conn, bigger_sqlite_cache(conn):
        ws = ensure_workspace(conn, workspace)
        n_accounts = counts.accounts if counts.accounts is not None else max(1, counts.contacts // 20)
        added["accounts"] = bulk_insert(conn, schema.accounts, _accounts(rng, ws, n_accounts, workspace), n_accounts)
        account_ids = _ids(conn, schema.accounts, ws)
        added["contacts"] = bulk_insert(conn, schema.contacts, _contacts(rng, ws, counts.contacts, account_ids, workspace), counts.contacts)
        contact_ids = _ids(conn, schema.contacts, ws)
        added["events"] = bulk_insert(conn, schema.events, _events(rng, ws, counts.events, contact_ids), counts.events)
        n_responses = counts.survey_responses if counts.survey_responses is not None else counts.contacts // 10
        added["survey_responses"] = bulk_insert(conn, schema.survey_responses, _responses(rng, ws, n_responses, contact_ids), n_responses)
        added.update(_lists_and_segments(conn, rng, ws, contact_ids))
        added.update(_workflows(conn, ws))
        added.update(_products(conn, rng, ws, counts.products))
    return added


def _ids(conn: Connection, table, ws: int) -> np.ndarray:
    result = conn.execute(
        select(table.c.id).where(table.c.workspace_id == ws).order_by(table.c.id),
        execution_options={"stream_results": True, "yield_per": CHUNK},
    )
    return np.fromiter(result.scalars(), dtype=np.int64)


# --- bulk loading -----------------------------------------------------------------


#: From this many new rows on, a table's secondary indexes and constraints are
#: dropped before the load and rebuilt once after it (inside the same
#: transaction): one sort per index instead of a B-tree insert and a foreign-key
#: trigger per row, ~3.5x faster on PostgreSQL.
def _chunks(total: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, CHUNK):
        yield start, min(total, start + CHUNK)


def _times(rng: np.random.Generator, n: int, days: int) -> pa.Array:
    """Timestamps spread over the ``days`` before the anchor, to the second."""
    offsets = rng.integers(0, days * 86_400, n)
    anchor = np.datetime64(ANCHOR, "s")
    return pa.array((anchor - offsets.astype("timedelta64[s]")).astype("datetime64[us]"), pa.timestamp("us"))


def _pick(rng: np.random.Generator, values: pa.Array, k: int, p: list[float] | None = None) -> pa.Array:
    """``rng.choice(values, k, p=p)`` as an Arrow array: the same draws, without numpy strings.

    Drawing indices and taking from a small Arrow array is ~10x faster than
    numpy unicode arrays (UTF-32, converted again to UTF-8 for Arrow).
    """
    return values.take(rng.choice(len(values), k, p=p))


def _text(values: np.ndarray) -> pa.Array:
    """Integers as decimal strings (what ``np.ndarray.astype(str)`` gives)."""
    return pc.cast(pa.array(values), pa.string())


def _concat(*parts: pa.Array | str) -> pa.Array:
    """Element-wise string concatenation; plain ``str`` parts are broadcast."""
    return pc.binary_join_element_wise(*parts, "")


def _accounts(rng, ws: int, n: int, workspace: str) -> Iterator[pa.Table]:
    for start, stop in _chunks(n):
        idx = _text(np.arange(start, stop))
        k = len(idx)
        last = _pick(rng, A_LAST, k)
        names = _concat(last, " ", _pick(rng, A_SUFFIXES, k), " ", idx)
        yield pa.table(
            {
                "workspace_id": pa.array(np.full(k, ws)),
                "external_id": _concat(f"{workspace}-acc-", idx),
                "name": names,
                "domain": _concat("https://acct", idx, ".example.com"),
                "industry": _pick(rng, A_INDUSTRIES, k),
                "employees": pa.array(rng.integers(1, 5_000, k)),
                "created_at": _times(rng, k, 1_000),
                "updated_at": _times(rng, k, 100),
            }
        )


def _contacts(rng, ws: int, n: int, account_ids: np.ndarray, workspace: str) -> Iterator[pa.Table]:
    for start, stop in _chunks(n):
        idx = _text(np.arange(start, stop))
        k = len(idx)
        first = _pick(rng, A_FIRST, k)
        last = _pick(rng, A_LAST, k)
        local = pc.utf8_lower(_concat(first, ".", last))
        emails = _concat(local, idx, "@", _pick(rng, A_DOMAINS, k))
        city = rng.integers(0, len(CITIES), k)
        digits = _text(rng.integers(1_000_000, 9_999_999, k))
        has_work = rng.random(k) < 0.3
        created = _times(rng, k, 730)
        if len(account_ids):
            linked = rng.random(k) < 0.8
            company = pa.array(account_ids[rng.choice(len(account_ids), k)], pa.int64(), mask=~linked)
        else:
            company = pa.nulls(k, pa.int64())
        yield pa.table(
            {
                "workspace_id": pa.array(np.full(k, ws)),
                "external_id": _concat(f"{workspace}-c-", idx),
                "email": emails,
                "first_name": first,
                "last_name": last,
                "full_name": _concat(first, " ", last),
                "phone_mobile": _concat("+1555", digits),
                "phone_work": pc.if_else(pa.array(has_work), _concat("+1444", digits), pa.scalar(None, pa.string())),
                "company_id": company,
                "job_title": _pick(rng, A_TITLES, k),
                "address_street": _concat(_text(rng.integers(1, 300, k)), " ", _pick(rng, A_STREETS, k)),
                "address_city": A_CITY_COLUMNS[0].take(city),
                "address_state": A_CITY_COLUMNS[1].take(city),
                "address_zip": A_CITY_COLUMNS[2].take(city),
                "address_country": A_CITY_COLUMNS[3].take(city),
                "lifecycle_stage": _pick(rng, A_STAGES, k, p=[0.3, 0.3, 0.1, 0.25, 0.05]),
                "email_consent": pa.array(rng.random(k) < 0.7),
                "sms_consent": pa.array(rng.random(k) < 0.3),
                "tags": _pick(rng, A_TAGS, k),
                "notes": pc.if_else(pa.array(rng.random(k) < 0.05), "Met at the Berlin meetup", pa.scalar(None, pa.string())),
                "source": _pick(rng, A_SOURCES, k),
                "owner": _pick(rng, A_OWNERS, k),
                "ip_address": _concat("203.0.113.", _text(rng.integers(1, 255, k))),
                "timezone": A_TIMEZONES.take(rng.integers(0, len(TIMEZONES), k)),
                "latitude": pa.array(np.round(rng.uniform(-60, 70, k), 5)),
                "longitude": pa.array(np.round(rng.uniform(-180, 180, k), 5)),
                "lifetime_value": pa.array(np.round(rng.gamma(2.0, 150.0, k), 2)),
                "orders_count": pa.array(rng.poisson(3, k)),
                "created_at": created,
                "updated_at": created,
            }
        )


def _events(rng, ws: int, n: int, contact_ids: np.ndarray) -> Iterator[pa.Table]:
    for start, stop in _chunks(n):
        k = stop - start
        types = _pick(rng, A_EVENT_TYPES, k, p=[0.45, 0.2, 0.1, 0.1, 0.05, 0.1])
        amounts = np.round(rng.gamma(2.0, 30.0, k), 2)
        paths = _pick(rng, A_PATHS, k)
        # numpy's float-to-text is the shortest round-trip form, like f"{amount}" ("60.0", not Arrow's "60").
        purchase = _concat('{"amount": ', pa.array(amounts.astype(str)), ', "currency": "EUR"}')
        visit = _concat('{"path": "', paths, '"}')
        yield pa.table(
            {
                "workspace_id": pa.array(np.full(k, ws)),
                "external_id": _concat(f"{ws}-e-", _text(np.arange(start, stop))),
                "type": types,
                "occurred_at": _times(rng, k, 90),
                "contact_id": pa.array(contact_ids[rng.choice(len(contact_ids), k)], pa.int64())
                if len(contact_ids)
                else pa.nulls(k, pa.int64()),
                "properties": pc.if_else(pc.equal(types, "purchase"), purchase, visit),
            }
        )


def _responses(rng, ws: int, n: int, contact_ids: np.ndarray) -> Iterator[pa.Table]:
    for start, stop in _chunks(n):
        k = stop - start
        which = rng.integers(0, len(SURVEYS), k)
        yield pa.table(
            {
                "workspace_id": pa.array(np.full(k, ws)),
                "external_id": pa.array(np.char.add(f"{ws}-r-", np.arange(start, stop).astype(str))),
                "survey": pa.array([SURVEYS[w][0] for w in which]),
                "question": pa.array([SURVEYS[w][1] for w in which]),
                "answer": pa.array([SURVEYS[w][2][rng.integers(0, len(SURVEYS[w][2]))] for w in which]),
                "contact_id": pa.array(rng.choice(contact_ids, k) if len(contact_ids) else [None] * k, pa.int64()),
                "submitted_at": _times(rng, k, 180),
            }
        )


def _lists_and_segments(conn: Connection, rng, ws: int, contact_ids: np.ndarray) -> dict[str, int]:
    existing = conn.execute(select(func.count()).select_from(schema.lists).where(schema.lists.c.workspace_id == ws)).scalar_one()
    if existing:
        return {}
    specs = [("newsletter", "Newsletter", 0.5), ("vip", "VIP customers", 0.05), ("beta", "Beta testers", 0.1)]
    list_ids = (
        conn.execute(
            schema.lists.insert().returning(schema.lists.c.id),
            [{"workspace_id": ws, "key": key, "name": name} for key, name, _ in specs],
        )
        .scalars()
        .all()
    )
    chosen = [contact_ids[rng.random(len(contact_ids)) < share] for _, _, share in specs]
    members = sum(len(c) for c in chosen)
    memberships = (
        batch
        for list_id, ids in zip(list_ids, chosen)
        for batch in pa.table(
            {
                "workspace_id": pa.array(np.full(len(ids), ws)),
                "list_id": pa.array(np.full(len(ids), list_id)),
                "contact_id": pa.array(ids),
            }
        ).to_batches(max_chunksize=CHUNK)
    )
    bulk_insert(conn, schema.list_memberships, memberships, members)
    conn.execute(
        schema.segments.insert(),
        [
            {
                "workspace_id": ws,
                "key": "customers",
                "name": "Customers",
                "rule": [{"field": "lifecycle_stage", "op": "eq", "value": "customer"}],
            },
            {
                "workspace_id": ws,
                "key": "high-value",
                "name": "High value",
                "rule": [{"field": "lifetime_value", "op": "gte", "value": 500}],
            },
        ],
    )
    return {"lists": len(list_ids), "list_memberships": members, "segments": 2}


_WORKFLOWS = (
    ("welcome", "Welcome series", "active", "event:signup", [{"type": "email", "template": "welcome"}, {"type": "wait", "days": 2}]),
    ("win-back", "Win back", "paused", "segment:customers", [{"type": "email", "template": "we-miss-you"}]),
    ("nps", "NPS survey", "draft", "event:purchase", [{"type": "wait", "days": 14}, {"type": "survey", "survey": "nps"}]),
)


def _workflows(conn: Connection, ws: int) -> dict[str, int]:
    if conn.execute(select(func.count()).select_from(schema.workflows).where(schema.workflows.c.workspace_id == ws)).scalar_one():
        return {}
    rows = [{"workspace_id": ws, "key": k, "name": n, "status": s, "trigger": t, "steps": steps} for k, n, s, t, steps in _WORKFLOWS]
    conn.execute(schema.workflows.insert(), rows)
    return {"workflows": len(rows)}


def _products(conn: Connection, rng, ws: int, n: int) -> dict[str, int]:
    if n <= 0:
        return {}
    catalog_ids = (
        conn.execute(
            schema.catalogs.insert().returning(schema.catalogs.c.id),
            [
                {"workspace_id": ws, "key": "main", "name": "Main catalog"},
                {"workspace_id": ws, "key": "outlet", "name": "Outlet"},
            ],
        )
        .scalars()
        .all()
    )
    schema_ids = (
        conn.execute(
            schema.schemas.insert().returning(schema.schemas.c.id),
            [
                {"workspace_id": ws, "key": "apparel", "name": "Apparel", "attributes": ["size", "colour"]},
                {"workspace_id": ws, "key": "gear", "name": "Gear", "attributes": ["weight"]},
            ],
        )
        .scalars()
        .all()
    )
    kinds = ["Jacket", "Backpack", "T-shirt", "Tent", "Bottle"]
    rows = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        rows.append(
            {
                "workspace_id": ws,
                "sku": f"SKU-{i:05d}",
                "name": f"{kind} {i}",
                "description": f"A fine {kind.lower()}.",
                "catalog_id": catalog_ids[i % 5 == 4],
                "schema_id": schema_ids[kind in ("Tent", "Bottle", "Backpack")],
                "price": float(np.round(rng.uniform(5, 400), 2)),
                "currency": "EUR",
                "active": bool(i % 7),
                "attributes": {"colour": ["red", "blue", "green"][i % 3]},
                "created_at": ANCHOR,
                "updated_at": ANCHOR,
            }
        )
    product_ids = conn.execute(schema.products.insert().returning(schema.products.c.id), rows).scalars().all()
    variants, localized = [], []
    for pid, row in zip(product_ids, rows):
        for size in ["S", "M", "L"][: int(rng.integers(0, 4))]:
            variants.append(
                {
                    "workspace_id": ws,
                    "sku": f"{row['sku']}-{size}",
                    "product_id": pid,
                    "name": f"{row['name']} / {size}",
                    "price": row["price"],
                    "stock": int(rng.integers(0, 100)),
                }
            )
        for lang, (name_t, desc_t) in LANGUAGES.items():
            localized.append(
                {
                    "workspace_id": ws,
                    "resource": "products",
                    "record_id": pid,
                    "field": "name",
                    "dimension": "language",
                    "dimension_value": lang,
                    "value": name_t.format(row["name"]),
                }
            )
            localized.append(
                {
                    "workspace_id": ws,
                    "resource": "products",
                    "record_id": pid,
                    "field": "description",
                    "dimension": "language",
                    "dimension_value": lang,
                    "value": desc_t.format(row["name"].lower()),
                }
            )
    if variants:
        conn.execute(schema.variants.insert(), variants)
    conn.execute(schema.localized_values.insert(), localized)
    return {"catalogs": 2, "schemas": 2, "products": n, "variants": len(variants), "localized_values": len(localized)}
