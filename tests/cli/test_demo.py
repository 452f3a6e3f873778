"""The README's demo (`make demo` runs `ferry demo`) works on a machine with nothing configured.

It runs as a user would: a separate process, no Prefect API configured (so Prefect
starts a temporary server), no store URL (so the embedded SQLite store under
FERRY_DATA_DIR is created, migrated and seeded).
"""

from __future__ import annotations

import csv
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path


def test_ferry_demo_seeds_exports_and_prints_the_file(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FERRY_"))}
    env.update(
        {
            "FERRY_DATA_DIR": str(tmp_path / "data"),
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
            "COLUMNS": "500",  # rich wraps long paths at the terminal width otherwise
        }
    )
    ferry = Path(sys.executable).with_name("ferry")

    done = subprocess.run([str(ferry), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Seeded workspace demo: 5,000 contacts, 20,000 events" in done.stdout
    match = re.search(r"Your export: (\S+)", done.stdout)
    assert match, done.stdout
    path = Path(match.group(1))
    assert path.is_file() and path.is_relative_to((tmp_path / "data" / "exports").resolve())
    assert re.search(r"http://127\.0\.0\.1:4200/runs/flow-run/[0-9a-f-]{36}", done.stdout)

    rows = list(csv.DictReader(path.open(newline="")))
    assert len(rows) == 5_000
    assert list(rows[0])[:3] == ["id", "external_id", "email"] and list(rows[0])[-2:] == ["list.vip", "list.newsletter"]
    with sqlite3.connect(tmp_path / "data" / "ferry.db") as db:
        emails = {e for (e,) in db.execute("SELECT email FROM contacts")}
        vip = db.execute("SELECT count(*) FROM list_memberships m JOIN lists l ON l.id = m.list_id WHERE l.key = 'vip'").fetchone()[0]
        audit = db.execute("SELECT action, actor FROM audit_log").fetchall()
    assert {r["email"] for r in rows} == emails
    assert sum(int(r["list.vip"]) for r in rows) == vip > 0
    assert audit == [("export.success", "demo")]
