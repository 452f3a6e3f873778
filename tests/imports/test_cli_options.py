"""``ferry import`` options that reach every step: a workbook's ``--sheet`` and a column's ``--value-map``."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_unmapped_columns_are_kept_as_attributes_merged_on_update_and_exported_and_filtered_by_key(istore, tmp_path):
    ws = istore.workspace()
    first = tmp_path / "crm.csv"
    first.write_text(
        'Email,Shoe Size,Favourite Colour,Notes From Sales\nada@example.com,42,"blue, ""navy""",vip\nalan@example.com,,green,\n'
    )
    mapping = tmp_path / "mapping.json"
    mapping.write_text(
        json.dumps(
            [{"sourceColumn": "Email", "targetFieldSlug": "email"}, {"sourceColumn": "Shoe Size", "targetFieldSlug": "attributes.shoe"}]
        )
    )
    base = ["import", "run", "--resource", "contacts", "--workspace", ws, "--mapping", str(mapping), "--json"]

    result = runner.invoke(app, [*base[:2], str(first), *base[2:], "--keep-unmapped"])
    assert result.exit_code == 0, result.output
    attributes = {r["email"]: r["attributes"] for r in istore.rows(ws)}
    assert attributes == {
        "ada@example.com": {"shoe": "42", "favourite_colour": 'blue, "navy"', "notes_from_sales": "vip"},
        "alan@example.com": {"favourite_colour": "green"},
    }

    second = tmp_path / "crm-update.csv"  # a later file: one key changes, one is new, the others stay
    second.write_text("Email,Shoe Size,Loyalty Tier\nada@example.com,43,gold\n")
    result = runner.invoke(app, [*base[:2], str(second), *base[2:], "--keep-unmapped", "--duplicates", "update"])
    assert result.exit_code == 0, result.output
    ada = next(r for r in istore.rows(ws) if r["email"] == "ada@example.com")
    assert ada["attributes"] == {"shoe": "43", "favourite_colour": 'blue, "navy"', "notes_from_sales": "vip", "loyalty_tier": "gold"}

    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["export", "contacts", "--workspace", ws, "--dest", str(out), "--json"]
        + ["--fields", "email,attributes.shoe,attributes.favourite_colour", "--filter", "attributes.favourite_colour:eq:green"],
    )
    assert result.exit_code == 0, result.output
    exported = (out / Path(json.loads(result.stdout)["destination_path"]).name).read_text()
    assert exported.splitlines() == ['"email","attributes.shoe","attributes.favourite_colour"', '"alan@example.com",,"green"']

    clash = tmp_path / "clash.csv"
    clash.write_text("Email,Shoe Size,shoe size\nx@example.com,1,2\n")
    result = runner.invoke(app, ["import", "run", str(clash), "--resource", "contacts", "--workspace", ws, "--auto-map", "--keep-unmapped"])
    assert result.exit_code == 1 and "the attribute name is also taken by column 'Shoe Size'" in result.output
