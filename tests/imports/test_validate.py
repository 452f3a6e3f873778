"""Validation and transform checks, one per error kind, on Arrow batches (no store, no server)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from imports.stages import validated_rows

from ferry.catalog import FieldType as T
from ferry.errors import ParameterError
from ferry.import_params import ColumnMapping, ImportRequest
from ferry.import_plan import PlannedColumn, build_plan
from tasks.imports.quality import expectation_specs
from tasks.imports.transform import stage_schema, static_scalars, transform_batch
from tasks.imports.validate import check_batch, coerce_column


def coerce(type_, values, **kw):
    resource = kw.pop("resource", "contacts")
    col = PlannedColumn(key="x", store_column="x", type=type_, field_slug=kw.pop("slug", "x"), source="x", **kw)
    result = coerce_column(pa.array(values, pa.string()), col, resource)
    return result.values.to_pylist(), result.invalid.to_pylist(), result.message


@pytest.mark.parametrize(
    ("type_", "good", "normalised", "bad", "message"),
    [
        (
            T.EMAIL,
            [" Ada@Example.COM ", "Jörg@Müller.de", "jörg@xn--mller-kva.de", "用户@例子.广告"],  # internationalised too (RFC 6531)
            ["ada@example.com", "jörg@müller.de", "jörg@xn--mller-kva.de", "用户@例子.广告"],
            ["ada@", "a b@x.com", "no-at.example.com", "jörg@-müller.de"],
            "not a valid e-mail address",
        ),
        (
            T.PHONE,
            ["+44 20 7946 0018", "(555) 010-0200", "0049 30 1234"],
            ["+442079460018", "5550100200", "+49301234"],
            ["12", "call me"],
            "not a valid phone number",
        ),
        (
            T.URL,
            ["https://acme.example.com/x?y=1", "acme.com"],
            ["https://acme.example.com/x?y=1", "acme.com"],
            ["not a url", "http://"],
            "not a valid URL",
        ),
        (T.INTEGER, ["12", "1,234", "-7", "3.0"], [12, 1234, -7, 3], ["1.5", "x", "99999999999999999999"], "not a whole number"),
        (T.NUMBER, ["1.5", "$1,250.50", "1e3", "-.5"], [1.5, 1250.5, 1000.0, -0.5], ["abc", "1e999", "1,2"], "not a number"),
        (T.BOOLEAN, ["Yes", "no", "TRUE", "0", "x"], [True, False, True, False, True], ["maybe", "2"], "not a boolean"),
        (
            T.DATE,
            ["2024-01-05", "01/05/2024", "5.1.2024", "Jan 5, 2024", "5 January 2024", "2024/1/5"],
            [date(2024, 1, 5)] * 6,
            ["2024-02-30", "2023-02-29", "13/45/2024", "yesterday"],
            "not a date",
        ),
        (
            T.DATETIME,
            ["2024-01-05T10:11:12Z", "2024-01-05 10:11", "2024-01-05T12:11:12.5+02:00", "2024-01-05"],
            [
                datetime(2024, 1, 5, 10, 11, 12),
                datetime(2024, 1, 5, 10, 11),
                datetime(2024, 1, 5, 10, 11, 12, 500000),
                datetime(2024, 1, 5),
            ],
            ["2024-02-30T10:00:00Z", "10:11", "soon"],
            "not a date-time",
        ),
    ],
)
def test_type_checks_normalise_good_values_and_flag_bad_ones(type_, good, normalised, bad, message):
    values, invalid, msg = coerce(type_, good + bad + [None, "   "])
    assert values[: len(good)] == normalised
    assert invalid == [False] * len(good) + [True] * len(bad) + [False, False]  # empty is not invalid (required is its own check)
    assert values[len(good) :] == [None] * (len(bad) + 2)
    assert msg.startswith(message)


def test_enum_is_case_insensitive_and_names_the_allowed_values():
    values, invalid, msg = coerce(T.ENUM, ["Lead", "customer", "boss"], enum=("lead", "customer"))
    assert (values, invalid, msg) == (["lead", "customer", None], [False, False, True], "not one of: lead, customer")


def test_json_columns_accept_json_and_tag_lists():
    values, invalid, _ = coerce(T.JSON, ['["vip"]', "vip, beta; churn", '{"a": 1', 'say "hi"'], slug="tags")
    assert values == ['["vip"]', '["vip", "beta", "churn"]', None, '["say \\"hi\\""]']
    assert invalid == [False, False, True, False]
    values, invalid, _ = coerce(T.JSON, ['{"a": 1}', "plain text"], slug="rule", resource="segments")
    assert invalid == [False, True]


def test_tags_come_in_every_shape_vendors_write_them():
    cells = ['"Black Friday","Customer"', '"Black Friday, 2024", VIP', "vip|beta", "vip; beta", '["vip", "beta"]', "", "[broken"]
    values, invalid, message = coerce(T.JSON, cells, slug="tags")
    assert values == [
        '["Black Friday", "Customer"]',
        '["Black Friday, 2024", "VIP"]',
        '["vip", "beta"]',
        '["vip", "beta"]',
        '["vip", "beta"]',
        None,  # an empty cell is no value
        None,
    ]
    assert invalid == [False] * 6 + [True]
    assert "JSON array" in message and ", ; or |" in message  # which shapes are accepted


def test_booleans_in_vendor_words():
    words = ["subscribed", "UNSUBSCRIBED", "NEVER_SUBSCRIBED", "Opted in", "opted-out", "yes", "0", "pending", "cleaned", "maybe"]
    values, invalid, message = coerce(T.BOOLEAN, words)
    assert values == [True, False, False, True, False, True, False, None, None, None]
    assert invalid == [False] * 9 + [True]
    assert "subscribed/unsubscribed" in message


def test_a_value_map_reads_vendor_values_before_the_check(tmp_path):
    plan = plan_for(
        {"Status": "email_consent", "Stage": "lifecycle_stage"},
        tmp_path,
        value_maps={"Status": {"Subscribed": True, "transactional": False, "pending": None}, "Stage": {"Hot Lead": "opportunity"}},
    )
    batch = pa.record_batch(
        {
            "Status": [" subscribed ", "TRANSACTIONAL", "pending", "yes", "archived"],
            "Stage": ["hot lead", "lead", "HOT LEAD", "customer", "lead"],
            "Extra": [None] * 5,
            "__row__": pa.array([2, 3, 4, 5, 6], pa.int64()),
            "__error__": [None] * 5,
        }
    )
    checked = check_batch(batch, plan)
    assert checked.values["email_consent"].to_pylist() == [True, False, None, True, None]  # unlisted cells read as usual
    assert checked.values["lifecycle_stage"].to_pylist() == ["opportunity", "lead", "opportunity", "customer", "lead"]
    assert [(e["row"], e["value"]) for e in checked.errors.to_pylist()] == [(6, "archived")]


def test_value_map_values_and_columns_are_checked_up_front_all_at_once(tmp_path):
    from tasks.imports.validate import value_map_problems

    entries = [
        ColumnMapping.from_json({"sourceColumn": "Status", "targetFieldSlug": "email_consent", "valueMap": {"on": "sure", "off": False}}),
        ColumnMapping.from_json({"sourceColumn": "Stage", "targetFieldSlug": "lifecycle_stage", "valueMap": {"hot": "boiling"}}),
    ]
    source = tmp_path / "f.csv"
    source.write_text("x\n")
    request = ImportRequest(source=str(source), resource="contacts", workspace="w", mapping=entries, value_maps={"Nope": {"a": 1}})
    with pytest.raises(ParameterError, match="value_maps.Nope=.*no such column in the file"):
        build_plan(request, ["Status", "Stage"], entries)
    plan = build_plan(request.model_copy(update={"value_maps": {}}), ["Status", "Stage"], entries)
    assert sorted((p.field, p.value) for p in value_map_problems(plan)) == [
        ("valueMap['Stage'].hot", "boiling"),
        ("valueMap['Status'].on", "sure"),
    ]
    assert entries[0].to_json()["valueMap"] == {"on": "sure", "off": False} and "valueMap" not in ColumnMapping("x").to_json()


def test_an_address_in_one_cell_is_split_into_its_parts_or_kept_whole_with_a_warning(tmp_path):
    from ferry.spool import write_spool
    from tasks.imports.parse import iter_batches, sniff

    case = Path(__file__).parents[1] / "cases" / "mailchimp_address_one_cell.csv"
    plan = plan_for({"Email Address": "email", "Address": "address"}, tmp_path)
    info = sniff(case)
    spool = tmp_path / "source.arrow"
    write_spool(spool, info.schema(), iter_batches(info, 1000))
    result, rows = validated_rows(spool, plan, tmp_path)
    parts = [tuple(r[f"address.{p}"] for p in ("street", "street2", "city", "state", "zip", "country")) for r in rows]
    assert parts == [
        ("123 Main St", "Apt 4", "Atlanta", "GA", "30301", "US"),  # Mailchimp: parts two spaces apart
        ("9 Elm Rd", None, "Boston", "MA", "02101", "US"),
        ("1 Main St", None, "Springfield", "IL", "62704", "USA"),
        ("Hauptstr. 5", None, "Berlin", None, "10115", "Germany"),  # line breaks, zip before the city
        ("10 Downing St", None, "London", None, "SW1A 2AA", "UK"),
        ("behind the old mill", None, None, None, None, None),  # no known shape: whole, in street
    ]
    assert result.error_rows == 0
    assert result.warnings == [
        "1 of the addresses in column 'Address' fit no shape Ferry splits (parts two spaces apart, or comma or "
        "line separated with a zip code); each is kept whole in address.street."
    ]


def plan_for(mapping: dict[str, str], tmp_path, **options):
    source = tmp_path / "f.csv"
    source.write_text("x\n")
    entries = [ColumnMapping.from_json({"sourceColumn": s, "targetFieldSlug": t}) for s, t in mapping.items()]
    request = ImportRequest(source=str(source), resource="contacts", workspace="w", mapping=entries, **options).validated()
    return build_plan(request, list(mapping) + ["Extra"], entries)


def test_check_batch_reports_row_field_value_error_for_every_kind(tmp_path):
    plan = plan_for({"Mail": "email", "Stage": "lifecycle_stage", "Orders": "orders_count", "Opt": "email_consent"}, tmp_path)
    batch = pa.record_batch(
        {
            "Mail": ["ok@example.com", "broken", None, "x@example.com", "y@example.com"],
            "Stage": ["lead", "lead", "lead", "chief", "lead"],
            "Orders": ["1", "1", "1", "1", "many"],
            "Opt": ["yes", "yes", "yes", "yes", "yes"],
            "Extra": ["", "", "", "", ""],
            "__row__": pa.array([2, 3, 5, 6, 7], pa.int64()),  # line 4 was a blank line the reader skipped
            "__error__": [None, None, None, None, None],
        }
    )
    checked = check_batch(batch, plan)

    assert checked.errors.to_pylist() == [
        {"row": 3, "field": "email", "value": "broken", "error": "not a valid e-mail address", "check": "email"},
        {"row": 5, "field": "email", "value": None, "error": "required; the value is empty", "check": "required"},
        {
            "row": 6,
            "field": "lifecycle_stage",
            "value": "chief",
            "error": "not one of: subscriber, lead, opportunity, customer, evangelist, other",
            "check": "enum",
        },
        {"row": 7, "field": "orders_count", "value": "many", "error": "not a whole number", "check": "integer"},
    ]
    assert checked.ok.to_pylist() == [True, False, False, False, False]


def test_ragged_rows_are_one_row_error_and_nothing_else(tmp_path):
    plan = plan_for({"Mail": "email"}, tmp_path)
    batch = pa.record_batch(
        {
            "Mail": ["nope", "a@example.com"],
            "Extra": [None, None],
            "__row__": pa.array([2, 3], pa.int64()),
            "__error__": ["ragged row: 3 values, the header has 2", None],
        }
    )
    checked = check_batch(batch, plan)
    assert checked.errors.to_pylist() == [
        {"row": 2, "field": "", "value": None, "error": "ragged row: 3 values, the header has 2", "check": "row"}
    ]
    assert checked.ok.to_pylist() == [False, True]


def test_plan_warnings_name_unmapped_required_fields_and_ignored_columns(tmp_path):
    plan = plan_for({"Name": "first_name"}, tmp_path, skip_validation=True)
    assert any("Required field 'email' is not mapped" in w for w in plan.warnings)
    assert "Column 'Extra' is not mapped and is ignored." in plan.warnings
    assert any("skip_validation is on" in w for w in plan.warnings)


def test_static_values_are_checked_up_front_and_applied_to_every_row(tmp_path):
    plan = plan_for({"Mail": "email"}, tmp_path, static_values={"lifecycle_stage": "Customer", "email_consent": True})
    statics = static_scalars(plan)
    checked = check_batch(
        pa.record_batch(
            {
                "Mail": ["a@example.com", "b@example.com"],
                "Extra": [None, None],
                "__row__": pa.array([2, 3], pa.int64()),
                "__error__": [None, None],
            }
        ),
        plan,
    )
    names = ["__row__", "__ok__", "email"]
    batch = pa.record_batch([pa.array([2, 3], pa.int64()), checked.ok, checked.values["email"]], names=names)
    out = transform_batch(batch, plan, stage_schema(plan), statics)
    assert out.to_pylist() == [
        {"__row__": 2, "email": "a@example.com", "lifecycle_stage": "customer", "email_consent": True},
        {"__row__": 3, "email": "b@example.com", "lifecycle_stage": "customer", "email_consent": True},
    ]
    bad = plan_for({"Mail": "email"}, tmp_path, static_values={"lifecycle_stage": "boss"})
    with pytest.raises(ParameterError, match="static_values.lifecycle_stage='boss': not one of"):
        static_scalars(bad)


def test_mapping_problems_are_listed_together(tmp_path):
    source = tmp_path / "f.csv"
    source.write_text("x\n")
    with pytest.raises(ParameterError) as raised:
        ImportRequest(
            source=str(source),
            resource="contacts",
            workspace="w",
            match=["phone", "nope"],
            mapping=[
                {"sourceColumn": "A", "targetFieldSlug": "email"},
                {"sourceColumn": "B", "targetFieldSlug": "email"},
                {"sourceColumn": "C", "targetFieldSlug": "phone", "valueType": "pager"},
                {"sourceColumn": "D", "targetFieldSlug": "id"},
            ],
        ).validated()
    text = str(raised.value)
    for expected in (
        "match[0]='phone'",
        "match[1]='nope'",
        "mapping[1].targetFieldSlug='email': already mapped from column 'A'",
        "mapping[2].valueType='pager'",
        "mapping[3].targetFieldSlug='id': is set by Ferry",
    ):
        assert expected in text


def test_gx_suite_is_generated_from_the_catalog(tmp_path):
    plan = plan_for({"Mail": "email", "Stage": "lifecycle_stage", "Ext": "external_id"}, tmp_path)
    specs = {(s["type"], s["kwargs"]["column"]) for s in expectation_specs(plan)}
    assert specs == {
        ("expect_column_values_to_not_be_null", "email"),
        ("expect_column_values_to_be_unique", "email"),
        ("expect_column_values_to_match_regex", "email"),
        ("expect_column_values_to_be_in_set", "lifecycle_stage"),
        ("expect_column_values_to_be_unique", "external_id"),
    }


def test_integer_parameters_are_bounded_before_a_run_exists(tmp_path):
    from ferry.import_params import parse_request

    source = tmp_path / "f.csv"
    source.write_text("Email\na@example.com\n")
    huge = 100_000_000_000_000_000_000  # more than Prefect's database keeps in a run's parameters without breaking listings
    with pytest.raises(ParameterError) as refused:
        parse_request(
            {
                "source": str(source),
                "resource": "contacts",
                "workspace": "w",
                "auto_map": True,
                "inline_max_bytes": huge,
                "max_errors": huge,
            }
        )
    assert sorted(p.field for p in refused.value.problems) == ["inline_max_bytes", "max_errors"]
