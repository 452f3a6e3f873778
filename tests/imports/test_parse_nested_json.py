"""Nested JSON and JSONL: keys flattened to dotted source columns; broken JSONL lines anywhere in the preview.

Case files: mailchimp_nested.jsonl (a Mailchimp API members export: merge_fields, an ADDRESS
object or "", stats, location, tags as objects), hubspot_nested.json (a HubSpot CRM API page:
records under "results" with their "properties"), jsonl_broken_lines.jsonl (broken lines
past the first rows a preview samples).
"""

from __future__ import annotations

from pathlib import Path

from deployments.service import check_import_file, suggest_file_mapping
from tasks.imports.parse import ERROR, ROW, iter_batches, preview, sniff

CASES = Path(__file__).parents[1] / "cases"


def rows_of(info, batch_rows: int = 65_536) -> list[dict]:
    return [r for b in iter_batches(info, batch_rows) for r in b.to_pylist()]


# --- flattening ----------------------------------------------------------------------------------


def test_nested_jsonl_keys_are_dotted_columns_objects_stay_whole_and_arrays_stay_one_cell():
    info = sniff(CASES / "mailchimp_nested.jsonl")
    assert info.columns[5:12] == [
        "status",
        "merge_fields",
        "merge_fields.FNAME",
        "merge_fields.LNAME",
        "merge_fields.ADDRESS",
        "merge_fields.ADDRESS.addr1",
        "merge_fields.ADDRESS.addr2",
    ]
    assert {"merge_fields.ADDRESS.city", "stats.avg_open_rate", "location.country_code", "tags"} <= set(info.columns)
    rows = rows_of(info, batch_rows=2)  # flattened per record, across batches
    ada, alan, grace = rows
    assert (ada["merge_fields.FNAME"], ada["merge_fields.ADDRESS.city"], ada["merge_fields.ADDRESS.addr2"]) == ("Ada", "London", None)
    assert ada["stats"] == '{"avg_open_rate":0.5,"avg_click_rate":0.25}'  # the object itself, as before flattening
    assert ada["tags"] == '[{"id":101,"name":"Customer"},{"id":102,"name":"Black Friday"}]'
    # Mailchimp writes "" for a member without an address: the same column, empty
    assert (alan["merge_fields.ADDRESS"], alan["merge_fields.ADDRESS.city"], alan["tags"]) == (None, None, "[]")
    assert (grace["merge_fields.ADDRESS.state"], grace["vip"], grace[ROW], grace[ERROR]) == ("VA", "true", 3, None)


def test_a_json_array_under_a_key_is_flattened_too():
    info = sniff(CASES / "hubspot_nested.json")
    assert info.json_path == "results.item"
    assert info.columns[:5] == ["id", "properties", "properties.createdate", "properties.email", "properties.firstname"]
    rows = rows_of(info)
    assert [(r["properties.email"], r["properties.lastname"]) for r in rows] == [
        ("ada@example.com", "Lovelace"),
        ("alan@example.org", None),
    ]
    assert rows[1]["associations.companies.results"] == '[{"id":"9001","type":"contact_to_company"}]'


def test_a_key_that_is_a_value_in_one_record_and_an_object_in_another_gives_both_columns(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        '{"email": "a@example.com", "address": "1 Main St", "extra": {}}\n{"email": "b@example.com", "address": {"city": "Oslo"}}\n'
    )
    info = sniff(path)
    assert info.columns == ["email", "address", "extra", "address.city"]
    assert [(r["address"], r["address.city"], r["extra"]) for r in rows_of(info)] == [
        ("1 Main St", None, "{}"),
        ('{"city":"Oslo"}', "Oslo", None),
    ]


def test_an_exported_json_field_still_imports_whole(tmp_path):
    """Ferry exports a JSON field (an event's properties) as a nested object: it must map back as it did."""
    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "page_view", "properties": {"path": "/pricing", "utm": {"source": "news"}}}\n')
    [row] = rows_of(sniff(path))
    assert row["properties"] == '{"path":"/pricing","utm":{"source":"news"}}'
    assert (row["properties.path"], row["properties.utm.source"]) == ("/pricing", "news")


def test_preview_suggest_and_validate_see_the_dotted_columns():
    path = CASES / "mailchimp_nested.jsonl"
    result = preview(path, sample_rows=1)
    assert result.sample_rows[0]["merge_fields.LNAME"] == "Lovelace" and result.total_rows == 3
    mapping, _ = suggest_file_mapping(path, "contacts")
    assert "merge_fields.FNAME" in [m.source_column for m in mapping]
    checked = check_import_file(
        path,
        "contacts",
        mapping=[
            {"sourceColumn": "email_address", "targetFieldSlug": "email"},
            {"sourceColumn": "merge_fields.FNAME", "targetFieldSlug": "first_name"},
            {"sourceColumn": "merge_fields.ADDRESS.city", "targetFieldSlug": "address", "addressPart": "city"},
        ],
    )
    assert (checked["totalRows"], checked["validRows"], checked["errors"]) == (3, 3, [])


# --- broken JSONL lines anywhere ---------------------------------------------------------------------


def test_the_preview_lists_broken_jsonl_lines_past_the_sample_and_their_total():
    result = preview(CASES / "jsonl_broken_lines.jsonl", sample_rows=3)
    assert result.sample_row_numbers == [1, 2, 3] and result.total_rows == 14
    assert [p.split(":")[0] for p in result.problems[:-1]] == ["row 5", "row 7", "row 9", "row 10", "row 11"]
    assert result.problems[1] == "row 7: not a JSON object (got list)"
    assert result.problems[-1] == "7 broken rows in the whole file, the first 5 listed; each is rejected on import."
    assert result.to_json()["brokenRows"] == 7


def test_broken_lines_in_the_sample_are_not_listed_twice():
    result = preview(CASES / "jsonl_broken_lines.jsonl", sample_rows=5)
    assert [p.split(":")[0] for p in result.problems[:-1]] == ["row 5", "row 7", "row 9", "row 10", "row 11", "row 12"]
    assert result.problems[-1].startswith("7 broken rows in the whole file, the first 6 listed")


def test_a_file_read_whole_by_the_sample_lists_every_broken_line_without_a_total_line():
    result = preview(CASES / "jsonl_broken_lines.jsonl")
    assert [p.split(":")[0] for p in result.problems] == ["row 5", "row 7", "row 9", "row 10", "row 11", "row 12", "row 14"]
    assert result.broken_rows == 7


def test_a_clean_jsonl_file_has_no_problems():
    result = preview(CASES / "mailchimp_nested.jsonl", sample_rows=1)
    assert (result.problems, result.broken_rows) == ([], 0)
