"""``ferry resources``: the catalog, and the ``--scope`` dimensions and values the store holds for localized fields."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def resources(*args: str):
    return runner.invoke(app, ["resources", *args], catch_exceptions=False)


@pytest.mark.parametrize("seeded_store", ["sqlite"], indirect=True)
def test_json_lists_each_resources_scope_dimensions_and_values(store):
    from ferry.catalog import RESOURCES
    from ferry.store.seed import LANGUAGES

    result = resources("--json")

    assert result.exit_code == 0, result.output
    catalog = json.loads(result.stdout)
    assert set(catalog) == set(RESOURCES)
    products = catalog["products"]
    assert products["scope"] == {"fields": ["name", "description"], "dimensions": {"language": sorted(LANGUAGES)}}
    assert "profiles" in catalog["contacts"]["aliases"] and "email" in catalog["contacts"]["columns"]
    assert catalog["contacts"]["scope"] == {"fields": [], "dimensions": {}}  # contacts take no --scope

    one = json.loads(resources("--json", "--workspace", "acme").stdout)
    assert one["products"]["scope"]["dimensions"] == {"language": sorted(LANGUAGES)}
    assert f"--scope language={'|'.join(sorted(LANGUAGES))}" in resources().stdout

    missing = resources("--json", "--workspace", "no-such-workspace")
    assert missing.exit_code == 2 and "no-such-workspace" in missing.stderr


def test_without_a_readable_store_the_catalog_is_listed_and_the_values_are_null(tmp_path, monkeypatch):
    from ferry.settings import reload_settings

    monkeypatch.setenv("FERRY_DATABASE_URL", f"sqlite:///{tmp_path / 'never-initialised.db'}")
    reload_settings()
    try:
        result = resources("--json")
    finally:
        monkeypatch.undo()
        reload_settings()

    assert result.exit_code == 0, result.output
    catalog = json.loads(result.stdout)
    assert catalog["products"]["scope"] == {"fields": ["name", "description"], "dimensions": None}
    assert "ferry db init" in result.stderr
