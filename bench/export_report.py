"""The export benchmark's report: its rows, the issue's targets met or not, and BENCHMARKS.md's export sections."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.benchmarks_file import sections_except

#: issue 14: CSV.gz at most 1.0x `psql \copy | gzip -6`, whole-process peak RSS of `ferry export` under 400 MB, flat
TARGET_GZ_RATIO = 1.0
TARGET_RSS_MB = 400
TARGET_FLAT_MB = 50
TARGET_PANDAS_SPEEDUP = 3.0
CLI_METHOD = "ferry export csv.gz (CLI)"
#: the sections this benchmark writes; BENCHMARKS.md's others belong to other benchmarks and are kept
OWNED = {"## Targets", "## Results", "## Seeding"}
EVENTS_WINDOW = {"from": "2026-10-01", "to": "2026-10-31"}


@dataclass
class Result:
    backend: str
    size: int  # seeded contacts (= events) of the store
    resource: str
    method: str  # e.g. "ferry csv.gz", "psql csv", "pandas csv"
    rows: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    file_mb: float
    stages: dict[str, float] = field(default_factory=dict)
    note: str = ""
    load: float = 0.0  # 1-minute load average when the measurement started
    runs: int = 1  # the figures are the fastest of this many runs

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import pyarrow

    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    sqlite = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout.split(" ")[0]
    return {
        "host": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{mem:.0f} GiB",
        "software": f"Python {platform.python_version()}, pyarrow {pyarrow.__version__}, {pg}, sqlite3 {sqlite}",
    }


def _find(results: list[Result], backend: str, size: int, resource_slug: str, method: str) -> Result | None:
    return next((r for r in results if (r.backend, r.size, r.resource, r.method) == (backend, size, resource_slug, method)), None)


METHOD_ORDER = (
    "psql csv",
    "psql csv.gz",
    "sqlite3 csv",
    "sqlite3 csv.gz",
    "ferry csv",
    "ferry csv.gz",
    "ferry parquet",
    CLI_METHOD,
    "pandas csv",
)


def method_rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


REFERENCE_OF = {"ferry csv": "csv", "ferry csv.gz": "csv.gz", "ferry parquet": "csv", CLI_METHOD: "csv.gz"}


def ratio_to_reference(results: list[Result], r: Result) -> str:
    tool = "psql" if r.backend == "postgresql" else "sqlite3"
    if r.method.startswith(tool):
        return "1.00"
    kind = REFERENCE_OF.get(r.method, "csv")
    ref = _find(results, r.backend, r.size, r.resource, f"{tool} {kind}")
    return f"{r.seconds / ref.seconds:.2f}" if ref and ref.seconds else "–"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def targets(results: list[Result]) -> list[str]:
    lines = []
    for size in sorted({r.size for r in results}):
        ref = _find(results, "postgresql", size, "contacts", "psql csv.gz")
        cli = _find(results, "postgresql", size, "contacts", CLI_METHOD)
        stages = _find(results, "postgresql", size, "contacts", "ferry csv.gz")
        if ref and (cli or stages):
            parts = []
            if cli:
                ratio = cli.seconds / ref.seconds
                parts.append(
                    f"whole `ferry export` process **{ratio:.2f}x** ({cli.seconds:.1f} s vs {ref.seconds:.1f} s) — {_met(ratio <= TARGET_GZ_RATIO)}"
                )
            if stages:
                parts.append(f"its stages alone {stages.seconds / ref.seconds:.2f}x ({stages.seconds:.1f} s)")
            lines.append(
                f"- CSV.gz at most {TARGET_GZ_RATIO}x `psql \\copy | gzip -6` (PostgreSQL, {size:,} contacts): " + "; ".join(parts) + "."
            )
    for label, rows in (
        ("whole `ferry export` process", [r for r in results if r.method == CLI_METHOD]),
        ("Ferry's stages in one process", [r for r in results if r.method.startswith("ferry") and r.method != CLI_METHOD]),
    ):
        if rows:
            worst = max(rows, key=lambda r: r.peak_rss_mb)
            lines.append(
                f"- Peak RSS under {TARGET_RSS_MB} MB, {label}: worst {worst.peak_rss_mb:.0f} MB "
                f"({worst.backend} {worst.size:,} {worst.resource} {worst.method}) — {_met(worst.peak_rss_mb < TARGET_RSS_MB)}."
            )
    lines += _flat(results)
    for r in results:
        if r.method != "pandas csv":
            continue
        ferry_csv = _find(results, r.backend, r.size, r.resource, "ferry csv")
        if ferry_csv:
            speedup = r.seconds / ferry_csv.seconds
            cpu = r.cpu_seconds / ferry_csv.cpu_seconds if ferry_csv.cpu_seconds else 0.0
            lines.append(
                f"- At least {TARGET_PANDAS_SPEEDUP:.0f}x faster than pandas ({r.backend} {r.size:,} {r.resource}, CSV): "
                f"**{speedup:.1f}x** wall — {_met(speedup >= TARGET_PANDAS_SPEEDUP)} "
                f"(CPU pandas / Ferry: {cpu:.1f}x; pandas peaks at {r.peak_rss_mb:,.0f} MB)."
            )
    return lines


def _flat(results: list[Result]) -> list[str]:
    """RSS growth of each Ferry measurement from the smallest store to the largest."""
    ferry = [r for r in results if r.method.startswith("ferry")]
    sizes = sorted({r.size for r in ferry})
    if len(sizes) < 2:
        return []
    growth = []
    for small in (r for r in ferry if r.size == sizes[0]):
        big = _find(results, small.backend, sizes[-1], small.resource, small.method)
        if big:
            growth.append((big.peak_rss_mb - small.peak_rss_mb, small, big))
    if not growth:
        return []
    most, small, big = max(growth, key=lambda g: g[0])
    return [
        f"- Flat from {sizes[0]:,} to {sizes[-1]:,} rows: largest growth {most:+.0f} MB "
        f"({small.backend} {small.resource} {small.method}: {small.peak_rss_mb:.0f} -> {big.peak_rss_mb:.0f} MB) — "
        f"{_met(most < TARGET_FLAT_MB)} (threshold +{TARGET_FLAT_MB} MB)."
    ]


def write_report(
    path: Path, results: list[Result], stores: list, args: argparse.Namespace, started: datetime, loads: tuple[str, str]
) -> None:
    info = machine()
    lines = [
        "# Benchmarks",
        "",
        "Written by `bench/export_bench.py` (`make bench`); do not edit by hand, re-run instead.",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC, took {(datetime.now(UTC) - started).total_seconds() / 60:.0f} min",
        f"- Machine: {info['host']}; {info['cpu']}; {info['memory']} RAM",
        f"- Software: {info['software']}",
        f"- Command: `{' '.join(['python', 'bench/export_bench.py', *sys.argv[1:]])}`"
        + (" (merged with the earlier results in the work folder: rows keep their own load figure)" if args.merge else ""),
        f"- Load average (1 min) at start / end: {loads[0]} / {loads[1]}; each row also shows the load when it started. "
        "On a shared machine wall times swing several-fold with load (the database server competes for the same cores); "
        "CPU seconds (client side only, the database server is not counted) are much steadier.",
        "",
        "## Targets",
        "",
        *(targets(results) or ["- (no comparable measurements in this run)"]),
        "",
        "## Results",
        "",
        "Each row is a run in a fresh process, the fastest of `runs`. `x ref` is wall time divided by the reference tool's "
        "(`psql \\copy` on PostgreSQL, `sqlite3 -csv` on SQLite) for the same rows: CSV.gz against the "
        "reference piped through `gzip -6`, everything else against its plain CSV. `ferry csv`, `ferry csv.gz` and "
        "`ferry parquet` time the stages (extract -> validate -> transform -> serialize, which run at the same time "
        "joined by pipes, as in the flow; imports and interpreter start excluded; the last column is how long each "
        f"stage ran, so the figures overlap); `{CLI_METHOD}` is the whole `ferry export` process a user runs (start, imports, the "
        "export_data flow run against a running Prefect server), its RSS the process's own (`/usr/bin/time -f %M`).",
        "",
        "| backend | store rows | resource | method | rows | seconds | rows/s | x ref | CPU s | peak RSS MB | file MB | load | runs | stages (s) |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r.stages.items()) or r.note
        lines.append(
            f"| {r.backend} | {r.size:,} | {r.resource} | {r.method} | {r.rows:,} | {r.seconds:.1f} | "
            f"{r.rows_per_s:,.0f} | {ratio_to_reference(results, r)} | {r.cpu_seconds:.1f} | {r.peak_rss_mb:.0f} | "
            f"{r.file_mb:.0f} | {r.load:.1f} | {r.runs} | {stages} |"
        )
    lines += ["", "## Seeding", "", "| backend | store rows | rows written | seconds | rows/s |", "| --- | ---: | ---: | ---: | ---: |"]
    for s in stores:
        if s.seed_seconds is None:
            lines.append(f"| {s.backend} | {s.size:,} | (reused, no seed log) | | |")
        else:
            total = sum(s.seeded_rows.values())
            reused = " (kept from an earlier run)" if s.reused else ""
            lines.append(f"| {s.backend} | {s.size:,} | {total:,} | {s.seed_seconds:.0f}{reused} | {total / s.seed_seconds:,.0f} |")
    lines += [
        "",
        "Notes:",
        "",
        f"- Events exports cover one 31-day window ({EVENTS_WINDOW['from']} .. {EVENTS_WINDOW['to']}), the longest the "
        "catalog allows, so they hold about a third of the seeded events.",
        "- Ferry's CSV is not byte-identical to the references: it writes ISO 8601 UTC timestamps and neutralises "
        "spreadsheet formulas; the row and column sets are the same.",
        "- Peak RSS of a reference is its largest process (psql, sqlite3 or gzip); of Ferry, the Python process "
        "including its imports (~100-150 MB before the first row, ~230 MB with Prefect's client in the CLI row).",
        "",
    ]
    path.write_text("\n".join(lines + sections_except(OWNED, path)))
