"""Mapping suggestions over the real export header sets of 15 products (issue 13, "Mapping suggestions reach further").

Each ``tests/cases/vendor_headers/<vendor>.json`` holds one product's export headers, where
they come from (``source``, ``evidence``) and the target each header should get: a column
key of the catalog (``email``, ``phone.mobile``, ``address.city``, ``created_at``...) or
``null`` when the catalog has no field for it. The suggester runs for real, on the headers
alone (no sample values: the harder case, and the one a mapping file is written from).

What the expected targets follow, so that a new case is written the same way:

* the record's own identifier is ``external_id`` (a bare ``id`` column first); ids of other
  objects (company, owner, organization, creator) map to nothing;
* the first e-mail column is ``email``; further ones (secondary, home, other) stay unmapped;
* a typed phone goes to its type; one phone column of no type to the first free type
  (mobile, work, home, fax); numbered or "other" phones stay unmapped;
* a contact's own address parts go to ``address.<part>``; a one-cell address to ``street``;
  a second address (billing, other, work when home is there) stays unmapped;
* creation and modification times go to ``created_at`` / ``updated_at``. While the catalog
  keeps those read-only (not importable), such an expectation counts as ``None``: a column
  the suggester may not map must stay unmapped.

Correct means: the suggestion equals the expected target (``None`` included), phone type and
address part included.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ferry.catalog import get_resource
from tasks.imports.map import suggest_mapping
from tasks.imports.map.names import resource_slots

CASES = Path(__file__).parents[1] / "cases" / "vendor_headers"
OVERALL_FLOOR = 0.97  # the issue's bar over all vendors' columns
VENDOR_FLOOR = 0.90  # no single product may fall far behind the others


@dataclasses.dataclass(frozen=True)
class Case:
    slug: str
    vendor: str
    source: str
    resource: str
    columns: dict[str, str | None]


def load_cases() -> list[Case]:
    cases = []
    for path in sorted(CASES.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        cases.append(Case(path.stem, doc["vendor"], doc["source"], doc.get("resource", "contacts"), doc["columns"]))
    return cases


def expected_now(case: Case) -> dict[str, str | None]:
    """The expected targets, with those the catalog does not let an import set (read-only fields) counted as None."""
    mappable = {s.key for s in resource_slots(get_resource(case.resource)) if not s.generic}
    return {header: (target if target in mappable else None) for header, target in case.columns.items()}


def score(case: Case) -> tuple[int, list[str]]:
    """Correct suggestions, and one line per wrong one."""
    mapping = suggest_mapping(list(case.columns), [], case.resource)
    got = {m.source_column: m.target_key for m in mapping}
    wrong = [f"{case.slug}: {h!r} -> {got[h]} (want {want})" for h, want in expected_now(case).items() if got[h] != want]
    return len(case.columns) - len(wrong), wrong


ALL = load_cases()


def test_at_least_fifteen_products_each_with_a_source():
    assert len(ALL) >= 15
    for case in ALL:
        assert case.source.startswith("https://"), case.slug
        assert len(case.columns) >= 5, case.slug


@pytest.mark.parametrize("case", ALL, ids=[c.slug for c in ALL])
def test_expected_targets_are_real_column_keys(case):
    """A typo in a case file must fail here, not count as a wrong suggestion."""
    resource = get_resource(case.resource)
    keys = {c.key for c in resource.columns()}
    assert not [t for t in case.columns.values() if t is not None and t not in keys]


def test_accuracy_over_all_vendors():
    total = correct = 0
    lines, wrong_all = [], []
    for case in ALL:
        ok, wrong = score(case)
        total += len(case.columns)
        correct += ok
        wrong_all += wrong
        lines.append(f"{case.vendor:<18} {ok:>3}/{len(case.columns):<3} {ok / len(case.columns):6.1%}")
    report = "\n".join(lines + [f"{'overall':<18} {correct:>3}/{total:<3} {correct / total:6.1%}"] + wrong_all)
    print("\n" + report)
    assert correct / total >= OVERALL_FLOOR, report


@pytest.mark.parametrize("case", ALL, ids=[c.slug for c in ALL])
def test_each_vendor_stays_above_its_floor(case):
    ok, wrong = score(case)
    assert ok / len(case.columns) >= VENDOR_FLOOR, "\n".join(wrong)
