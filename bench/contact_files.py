"""The import benchmarks' files: CRM contact exports with vendor headers, written once under ``bench/out/`` and reused.

HubSpot-style columns, ~1% invalid rows (bad e-mails, numbers, lifecycle
stages, phones) and ~2% rows that repeat an earlier row's e-mail, often in
another case: what a migration's file looks like.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"

HEADER = [
    "Record ID",
    "First Name",
    "Last Name",
    "Email",
    "Phone Number",
    "Mobile Phone Number",
    "Company Name",
    "Job Title",
    "Street Address",
    "City",
    "State/Region",
    "Postal Code",
    "Country/Region",
    "Lifecycle Stage",
    "Lead Status",
    "Total Revenue",
    "Number of Orders",
    "Create Date",
    "Contact owner",
    "IP Address",
]


def generate(path: Path, rows: int, seed: int = 11, chunk: int = 500_000) -> dict:
    """Write ``rows`` contacts as CSV; returns how many rows are invalid and how many repeat an e-mail."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from ferry.store.seed import CITIES, FIRST, LAST, STREETS

    rng = np.random.default_rng(seed)
    stage_ok = np.array(["subscriber", "lead", "Lead", "opportunity", "customer", "Customer", "evangelist", "other"])
    statuses = np.array(["New", "Open", "In progress", "Attempted to contact", ""])
    titles = np.array(["CEO", "CTO", "Marketing Manager", "Data Analyst", "Engineer", "Sales Lead", ""])
    owners = np.array(["alex@ferry.test", "sam@ferry.test", "kim@ferry.test"])
    companies = np.char.add(np.char.add(LAST, " "), np.array(["Labs", "GmbH", "Inc", "Studio", "Partners"] * 6)[: len(LAST)])
    invalid = dupes = 0
    tmp = path.with_suffix(".tmp")
    schema = pa.schema([(h, pa.string()) for h in HEADER])
    with pacsv.CSVWriter(str(tmp), schema) as writer:
        for start in range(0, rows, chunk):
            k = min(chunk, rows - start)
            idx = np.arange(start, start + k)
            first, last = rng.choice(FIRST, k), rng.choice(LAST, k)
            local = np.char.lower(np.char.add(np.char.add(first, "."), last))
            email = np.char.add(np.char.add(local, idx.astype(str)), "@example.com")
            # ~2%: repeat an earlier row's e-mail (same chunk, earlier index), half of them upper-cased
            dup = rng.random(k) < 0.02
            dup[0] = False
            src = (rng.random(k) * np.arange(k)).astype(np.int64)
            email = np.where(dup, email[src], email)
            upper = dup & (rng.random(k) < 0.5)
            email = np.where(upper, np.char.upper(email), email)
            dupes += int(dup.sum())
            city = CITIES[rng.integers(0, len(CITIES), k)]
            digits = rng.integers(1_000_000, 9_999_999, k).astype(str)
            revenue = np.char.mod("%.2f", np.round(rng.gamma(2.0, 150.0, k), 2))
            orders = rng.poisson(3, k).astype(str)
            stage = rng.choice(stage_ok, k)
            mobile = np.char.add("+1 555 ", digits)
            work = np.where(rng.random(k) < 0.3, np.char.add("(444) ", digits), "")
            # ~1% invalid rows, one defect each, spread over four kinds
            bad = rng.random(k) < 0.01
            kind = rng.integers(0, 4, k)
            email = np.where(bad & (kind == 0), np.char.replace(email, "@", " at "), email)
            revenue = np.where(bad & (kind == 1), "n/a", revenue)
            stage = np.where(bad & (kind == 2), "prospect", stage)
            mobile = np.where(bad & (kind == 3), "call me", mobile)
            invalid += int(bad.sum())
            created = np.datetime64("2026-11-01T00:00:00") - rng.integers(0, 730 * 86_400, k).astype("timedelta64[s]")
            table = pa.table(
                [
                    pa.array(np.char.add("10", idx.astype(str))),
                    pa.array(first),
                    pa.array(last),
                    pa.array(email),
                    pa.array(work),
                    pa.array(mobile),
                    pa.array(rng.choice(companies, k)),
                    pa.array(rng.choice(titles, k)),
                    pa.array(np.char.add(np.char.add(rng.integers(1, 300, k).astype(str), " "), rng.choice(STREETS, k))),
                    pa.array(city[:, 0]),
                    pa.array(city[:, 1]),
                    pa.array(city[:, 2]),
                    pa.array(city[:, 3]),
                    pa.array(stage),
                    pa.array(rng.choice(statuses, k)),
                    pa.array(revenue),
                    pa.array(orders),
                    pa.array(np.datetime_as_string(created, unit="m")),
                    pa.array(rng.choice(owners, k)),
                    pa.array(np.char.add("203.0.113.", rng.integers(1, 255, k).astype(str))),
                ],
                schema=schema,
            )
            writer.write_table(table)
    tmp.rename(path)
    meta = {"rows": rows, "invalid_rows": invalid, "duplicate_rows": dupes, "bytes": path.stat().st_size}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return meta


def contact_file(rows: int) -> tuple[Path, dict]:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"contacts_{rows}.csv"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        return path, json.loads(meta_path.read_text())
    started = time.monotonic()
    meta = generate(path, rows)
    print(f"generated {path.name}: {meta} in {time.monotonic() - started:.1f} s", flush=True)
    return path, meta


def changed_file(path: Path) -> Path:
    """``path`` with every row's job title changed (the file of a re-import that updates every valid row)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    changed = path.with_name(path.stem + "_changed.csv")
    if changed.exists():
        return changed
    tmp = changed.with_suffix(".tmp")
    schema = pa.schema([(h, pa.string()) for h in HEADER])
    options = pacsv.ConvertOptions(column_types=dict(zip(HEADER, [pa.string()] * len(HEADER))), strings_can_be_null=False)
    reader = pacsv.open_csv(path, convert_options=options)
    with pacsv.CSVWriter(str(tmp), schema) as writer:
        for batch in reader:
            at = HEADER.index("Job Title")
            titles = pc.binary_join_element_wise(batch.column(at), pa.scalar("(re-synced)"), " ")
            writer.write_batch(pa.RecordBatch.from_arrays([*batch.columns[:at], titles, *batch.columns[at + 1 :]], schema=schema))
    tmp.rename(changed)
    return changed
