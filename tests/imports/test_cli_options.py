"""``ferry import`` options that reach every step: a workbook's ``--sheet`` and a column's ``--value-map``."""

from __future__ import annotations

import json

import pytest
from openpyxl import Workbook
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def two_sheet_workbook(path):
    """A Mailchimp-style audience on the second sheet, behind a sheet of notes."""
    book = Workbook()
    notes = book.active
    notes.title = "Notes"
    notes.append(["Exported by marketing", "do not edit"])
    members = book.create_sheet("Members")
    members.append(["Email Address", "Status"])
    for row in (["ada@example.com", "Active"], ["alan@example.com", "bounced"], ["grace@example.com", "Transactional"]):
        members.append(row)
    book.save(path)
    return path


@pytest.mark.parametrize("import_store", ["sqlite"], indirect=True)
def test_sheet_and_value_map_reach_preview_validate_and_run(istore, tmp_path):
    book = two_sheet_workbook(tmp_path / "audience.xlsx")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(
        json.dumps(
            [
                {"sourceColumn": "Email Address", "targetFieldSlug": "email"},
                {"sourceColumn": "Status", "targetFieldSlug": "email_consent", "valueMap": {"transactional": False}},
            ]
        )
    )
    value_map = ["--value-map", 'Status={"active": true, "bounced": null}']

    result = runner.invoke(app, ["import", "preview", str(book), "--sheet", "Members", "--json"])
    assert result.exit_code == 0, result.output
    preview = json.loads(result.stdout)
    assert preview["columns"] == ["Email Address", "Status"] and preview["sheet"] == "Members"
    assert [(s["name"], s["read"]) for s in preview["sheets"]] == [("Notes", False), ("Members", True)]

    result = runner.invoke(app, ["import", "validate", str(book), "--resource", "contacts", "--mapping", str(mapping), "--sheet", "2"])
    assert result.exit_code == 1  # "Active" and "bounced" are no booleans without the value map
    result = runner.invoke(
        app, ["import", "validate", str(book), "--resource", "contacts", "--mapping", str(mapping), "--sheet", "2", *value_map, "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["errorRows"] == 0

    ws = istore.workspace()
    args = ["import", "run", str(book), "--resource", "contacts", "--workspace", ws, "--mapping", str(mapping), "--sheet", "Members"]
    result = runner.invoke(app, [*args, *value_map, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "success"
    assert {r["email"]: r["email_consent"] for r in istore.rows(ws)} == {
        "ada@example.com": True,
        "alan@example.com": None,
        "grace@example.com": False,
    }

    result = runner.invoke(app, [*args, "--value-map", "Status=active"])
    assert result.exit_code == 2 and "--value-map" in result.output
    result = runner.invoke(app, [*args, "--value-map", 'Status={"active": "sure"}'])
    assert result.exit_code == 1 and "valueMap['Status'].active='sure': not a boolean" in result.output
