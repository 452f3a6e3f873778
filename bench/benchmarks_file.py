"""BENCHMARKS.md is shared: each benchmark owns its own ``## `` sections and rewrites only those."""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def _section(heading: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)


def write_section(heading: str, text: str, path: Path = BENCHMARKS) -> None:
    """Replace the section under ``heading`` (e.g. ``## Import``) with ``text``, or add it at the end; the rest stays."""
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = _section(heading)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text.rstrip("\n") + "\n\n", current).rstrip("\n") + "\n"
    else:
        updated = current.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    path.write_text(updated)


def sections_except(owned: set[str], path: Path = BENCHMARKS) -> list[str]:
    """Every ``## `` section of ``path`` whose heading is not in ``owned``, as it stands (for a writer of the whole file)."""
    if not path.exists():
        return []
    found = re.finditer(r"^(## [^\n]*)\n.*?(?=^## |\Z)", path.read_text(), re.S | re.M)
    return [m.group(0).rstrip() + "\n" for m in found if m.group(1) not in owned]
