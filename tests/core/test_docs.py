"""The README's resource tables are generated from the catalog and must be current."""

from ferry.docs import README, render


def test_readme_resource_tables_match_the_catalog():
    current = README.read_text()
    assert render(current) == current, "README is out of date: run `.venv/bin/python -m ferry.docs`"
