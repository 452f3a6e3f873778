"""Export parameters: every problem found up front, listed at once, before any data moves.

Pure logic: no store and no Prefect run is needed, so these run in milliseconds.
"""

from __future__ import annotations

import typing
from datetime import UTC, date, datetime, timedelta

import pytest

from ferry.columns import output_columns
from ferry.errors import ParameterError, Problem
from ferry.params import ExportRequest, parse_request


def problems_of(**params) -> list[Problem]:
    params.setdefault("workspace", "acme")
    with pytest.raises(ParameterError) as caught:
        parse_request(params)
    return caught.value.problems


def fields_of(problems: list[Problem]) -> list[str]:
    return [p.field for p in problems]


def ok(**params) -> ExportRequest:
    params.setdefault("workspace", "acme")
    return parse_request(params)


# --- every problem at once ----------------------------------------------------------


def test_every_problem_is_listed_at_once_with_field_value_and_reason():
    problems = problems_of(
        resource="events",
        fields=["type", "nope"],
        filters=[{"field": "missing", "op": "eq", "value": 1}, {"field": "type", "op": "in", "value": "purchase"}],
        sort="nowhere:desc",
        lists=["vip"],
        filename="{oops}.csv",
        date_format="YYYY",
        labels={"type": " "},
        **{"from": "2026-01-01", "to": "2026-03-01"},
    )

    by_field = {p.field: p for p in problems}
    assert set(by_field) >= {
        "fields[1]",
        "filters[0].field",
        "filters[1].value",
        "sort.field",
        "lists",
        "filename",
        "date_format",
        "labels.type",
        "to",
    }
    assert by_field["fields[1]"].value == "nope" and "not a field of events" in by_field["fields[1]"].reason
    assert by_field["filters[0].field"].value == "missing"
    assert by_field["filters[1].value"].value == "purchase" and "list" in by_field["filters[1].value"].reason
    assert by_field["sort.field"].value == "nowhere"
    assert by_field["lists"].value == ["vip"] and "contacts only" in by_field["lists"].reason
    assert "unknown placeholder {oops}" in by_field["filename"].reason
    assert by_field["date_format"].value == "YYYY"
    message = str(ParameterError(problems))
    assert f"{len(problems)} invalid parameter(s)" in message and "nothing was read or written" in message


def test_type_problems_from_pydantic_are_listed_together():
    problems = problems_of(resource="contacts", format="docx", limit=0, delimiter="#", surprise=True)

    assert set(fields_of(problems)) == {"format", "limit", "delimiter", "surprise"}
    assert next(p for p in problems if p.field == "format").value == "docx"


def test_type_problems_are_listed_with_the_catalog_problems_of_the_other_parameters():
    problems = problems_of(
        resource="events",
        format="xlsxx",
        limit="many",
        fields=["type", "nope"],
        filename="{oops}.csv",
        sort="nowhere",
        **{"from": "2026-01-01", "to": "2026-03-01"},
    )

    assert set(fields_of(problems)) == {"format", "limit", "fields[1]", "filename", "sort.field", "to"}


def test_a_parameter_of_the_wrong_type_is_not_checked_again_against_the_catalog():
    problems = problems_of(resource="contacts", fields=123, sort="email", filters="nope")

    assert set(fields_of(problems)) == {"fields", "filters"}  # no second problem for either, sort is fine
    assert fields_of(problems_of(resource=["contacts"], filename="{oops}")) == ["resource", "filename"]


@pytest.mark.parametrize(
    ("params", "field", "meant"),
    [
        ({"resource": "contcts"}, "resource", "contacts"),
        ({"resource": "profils"}, "resource", "contacts"),  # close to an alias: its resource
        ({"resource": "contacts", "format": "xlsxx"}, "format", "xlsx"),
        ({"resource": "contacts", "on_invalid": "wran"}, "on_invalid", "warn"),
        ({"resource": "contacts", "fields": ["emial"]}, "fields[0]", "email"),
        ({"resource": "contacts", "fields": ["firstname"]}, "fields[0]", "first_name"),  # an alias of the field
        ({"resource": "contacts", "fields": ["phone.mobil"]}, "fields[0]", "phone.mobile"),
        ({"resource": "contacts", "sort": "surname"}, "sort.field", "last_name"),
        ({"resource": "contacts", "filters": [{"field": "lifecycle", "op": "eq", "value": "lead"}]}, "filters[0].field", "lifecycle_stage"),
        ({"resource": "contacts", "filters": [{"field": "email", "op": "startswith", "value": "a"}]}, "filters.0.op", "starts_with"),
    ],
)
def test_a_misspelt_resource_field_column_or_value_gets_a_did_you_mean(params, field, meant):
    problem = next(p for p in problems_of(**params) if p.field == field)

    assert problem.reason.endswith(f"; did you mean {meant!r}?"), problem.reason


def test_no_suggestion_when_nothing_is_close():
    problem = next(p for p in problems_of(resource="contacts", fields=["zzzzqq"]) if p.field == "fields[0]")
    assert "did you mean" not in problem.reason


def test_unknown_resource_is_reported_with_the_known_ones_and_other_problems_too():
    problems = problems_of(resource="widgets", filename="/etc/{resource}", date_format="nope")

    resource = next(p for p in problems if p.field == "resource")
    assert resource.value == "widgets" and "contacts" in resource.reason and "analytics" in resource.reason
    assert {"filename", "date_format"} <= set(fields_of(problems))


def test_resource_aliases_resolve_to_the_catalog_slug():
    assert ok(resource="profiles").resource_def.slug == "contacts"
    assert ok(resource="Audiences").resource_def.slug == "segments"


# --- file name templates ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{oops}.csv", "unknown placeholder {oops}"),
        ("{date:%Y}.csv", "no format spec"),
        ("{resource!r}.csv", "no format spec"),
        ("{date.year}.csv", "unknown placeholder"),
        ("../x", "'..'"),
        ("a/../../x.csv", "'..'"),
        ("./x.csv", "'.'"),
        ("/abs/x.csv", "relative"),
        ("\\\\server\\share.csv", "relative"),
        ("C:\\x.csv", "relative"),
        ("exports/", "must name a file"),
        ("{resource", "not a valid template"),
    ],
)
def test_bad_filename_templates_are_refused(template, reason):
    problems = problems_of(resource="contacts", filename=template)

    assert any(p.field == "filename" and p.value == template and reason in p.reason for p in problems), problems


@pytest.mark.parametrize(
    "template",
    ["{workspace}/{date}/{resource}-{run_id}.{format}", "{workspace}/{resource}.{format}", "exports/{resource}..{format}", "x.y/{date}"],
)
def test_templates_with_folders_and_placeholders_are_accepted(template):
    ok(resource="contacts", filename=template)


# --- the 31-day rule and the window --------------------------------------------------------


def test_a_date_includes_that_whole_day():
    request = ok(resource="contacts", **{"from": "2026-10-01", "to": "2026-10-31"})

    assert request.date_to == date(2026, 10, 31)
    assert request.window() == (datetime(2026, 10, 1), datetime(2026, 11, 1))


def test_a_datetime_bound_is_exact_and_converted_to_utc():
    request = ok(resource="contacts", **{"from": "2026-10-01T02:00:00+02:00", "to": "2026-10-02T10:30:00Z"})

    assert request.window() == (datetime(2026, 10, 1, 0, 0), datetime(2026, 10, 2, 10, 30))


def test_events_may_span_exactly_31_days():
    request = ok(resource="events", **{"from": "2026-10-01", "to": "2026-10-31"})

    start, end = request.window()
    assert end - start == timedelta(days=31)


def test_days_count_from_date_to_date_as_the_seeds_do():
    ok(resource="events", **{"from": "2026-10-01", "to": "2026-11-01"})  # 31 days, the last one included

    (problem,) = problems_of(resource="events", **{"from": "2026-10-01", "to": "2026-11-02"})
    assert problem.field == "to" and problem.value == "2026-11-02"
    assert "from 2026-10-01 to 2026-11-02 is 32 days" in problem.reason
    assert "at most 31 days" in problem.reason and "Split" in problem.reason
    assert "datetime.date" not in str(ParameterError([problem]))


def test_a_problem_shows_dates_as_dates():
    assert str(Problem("from", date(2026, 10, 1), "x")) == "from=2026-10-01: x"
    (problem,) = problems_of(resource="contacts", **{"from": "2026-10-02", "to": "2026-10-01"})
    assert problem.reason == "must be before to=2026-10-01" and "datetime" not in str(problem)


def test_relative_windows_count_back_from_now():
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    request = ok(resource="events", **{"from": "-30d"})
    assert request.date_from == "-30d"  # kept as given: a scheduled job's window moves with each run
    assert request.window(now=now) == (datetime(2026, 10, 23, 12, 0), datetime(2026, 11, 23, 12, 0))
    assert ok(resource="contacts", **{"from": "24h", "to": "-1h"}).window(now=now) == (
        datetime(2026, 11, 21, 12),
        datetime(2026, 11, 22, 11),
    )
    assert ok(resource="contacts", since="90m").since == "90m"
    assert {p.field for p in problems_of(resource="events", **{"from": "-40d", "to": "-1d"})} == {"to"}  # 39 days
    assert {p.field for p in problems_of(resource="contacts", **{"from": "-30x"})} == {"from"}


def test_one_second_past_31_days_is_refused():
    problems_of(resource="events", **{"from": "2026-10-01T00:00:00", "to": "2026-11-01T00:00:01"})


def test_other_resources_have_their_own_span_or_none():
    ok(resource="contacts", **{"from": "2020-01-01", "to": "2026-01-01"})
    ok(resource="survey_responses", **{"from": "2026-01-01", "to": "2026-04-03"})  # 92 days
    problems_of(resource="survey_responses", **{"from": "2026-01-01", "to": "2026-04-04"})


def test_events_get_a_default_31_day_window_ending_now():
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    request = ok(resource="events")

    assert request.window(now=now) == (datetime(2026, 10, 22, 12, 0), datetime(2026, 11, 22, 12, 0))


def test_a_single_bound_completes_the_window_to_the_maximum_span():
    assert ok(resource="events", **{"from": "2026-10-01"}).window() == (datetime(2026, 10, 1), datetime(2026, 11, 1))
    assert ok(resource="events", to="2026-10-31").window() == (datetime(2026, 10, 1), datetime(2026, 11, 1))
    assert ok(resource="contacts", **{"from": "2026-10-01"}).window() == (datetime(2026, 10, 1), None)


def test_from_after_to_and_windows_without_a_time_column_are_refused():
    assert fields_of(problems_of(resource="contacts", **{"from": "2026-10-02", "to": "2026-10-01"})) == ["from"]
    (problem,) = problems_of(resource="catalogs", **{"from": "2026-10-01"})
    assert "no time column" in problem.reason


# --- scope rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "params", "field"),
    [
        ("products", {"segment": "customers"}, "segment"),
        ("events", {"lists": ["vip"]}, "lists"),
        ("contacts", {"activity_types": ["purchase"]}, "activity_types"),
        ("contacts", {"catalog": "main"}, "catalog"),
        ("contacts", {"schema": "apparel"}, "schema"),
        ("events", {"include_variants": True}, "include_variants"),
        ("contacts", {"dimension_scope": {"language": "de"}}, "dimension_scope"),
        ("analytics", {"segment": "customers"}, "segment"),
        ("analytics", {"lists": ["vip"]}, "lists"),
    ],
)
def test_options_that_do_not_apply_to_the_resource_are_refused(resource, params, field):
    assert field in fields_of(problems_of(resource=resource, **params))


def test_analytics_rules():
    # A measure is required, and groups can only be sorted by what is shown.
    problems = problems_of(resource="analytics", fields=["date", "event_type"], sort="event_type")
    assert "fields" in fields_of(problems)
    problems = problems_of(resource="analytics", fields=["date", "count"], sort="event_type")
    assert fields_of(problems) == ["sort.field"]
    # Analytics spans at most 366 days; its columns are its own (no event ids or JSON keys).
    assert "to" in fields_of(problems_of(resource="analytics", **{"from": "2025-01-01", "to": "2026-01-03"}))  # 367 days
    assert "fields[0]" in fields_of(problems_of(resource="analytics", fields=["id"]))
    assert "fields[0]" in fields_of(problems_of(resource="analytics", fields=["properties.amount"]))
    # Filters on measures and dimensions are allowed; sorting by a measure is too.
    ok(
        resource="analytics",
        filters=[{"field": "count", "op": "gte", "value": 3}, {"field": "date", "op": "gte", "value": "2026-10-01"}],
        sort="count:desc",
        activity_types=["purchase"],
    )


# --- filters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flt", "field", "reason"),
    [
        ({"field": "nope", "op": "eq", "value": 1}, "filters[0].field", "not a column"),
        ({"field": "lifecycle_stage", "op": "eq"}, "filters[0].value", "needs a value"),
        ({"field": "lifecycle_stage", "op": "in", "value": "lead"}, "filters[0].value", "list"),
        ({"field": "lifecycle_stage", "op": "eq", "value": ["lead"]}, "filters[0].value", "one value"),
        ({"field": "orders_count", "op": "eq", "value": "many"}, "filters[0].value", "not a valid integer"),
        ({"field": "orders_count", "op": "eq", "value": 2.5}, "filters[0].value", "not a valid integer"),
        ({"field": "lifetime_value", "op": "gt", "value": "lots"}, "filters[0].value", "not a valid number"),
        ({"field": "email_consent", "op": "eq", "value": "maybe"}, "filters[0].value", "not a valid boolean"),
        ({"field": "created_at", "op": "gte", "value": "last tuesday"}, "filters[0].value", "not a valid datetime"),
        ({"field": "orders_count", "op": "contains", "value": "3"}, "filters[0].op", "applies to text"),
        ({"field": "email_consent", "op": "gt", "value": True}, "filters[0].op", "does not apply"),
        ({"field": "tags", "op": "lt", "value": "x"}, "filters[0].op", "does not apply"),
        ({"field": "list.vip", "op": "eq", "value": 1}, "filters[0].field", "not a column"),  # list not requested
    ],
)
def test_bad_filters_are_refused_up_front(flt, field, reason):
    problems = problems_of(resource="contacts", filters=[flt])

    assert any(p.field == field and reason in p.reason for p in problems), problems


def test_bad_op_is_a_type_problem():
    assert "filters.0.op" in fields_of(problems_of(resource="contacts", filters=[{"field": "email", "op": "like", "value": "x"}]))


def test_valid_filters_of_every_kind_are_accepted():
    ok(
        resource="contacts",
        lists=["vip"],
        filters=[
            {"field": "lifecycle_stage", "op": "in", "value": ["lead", "customer"]},
            {"field": "email", "op": "contains", "value": "@example"},
            {"field": "address.city", "op": "starts_with", "value": "Ber"},
            {"field": "notes", "op": "is_null"},
            {"field": "company", "op": "not_null"},
            {"field": "email_consent", "op": "eq", "value": "true"},
            {"field": "created_at", "op": "lt", "value": "2026-10-01T00:00:00+02:00"},
            {"field": "orders_count", "op": "not_in", "value": [0, "1"]},
            {"field": "tags", "op": "contains", "value": "vip"},
            {"field": "list.vip", "op": "eq", "value": 1},
        ],
    )
    ok(resource="events", filters=[{"field": "properties.amount", "op": "gt", "value": 100}])


# --- columns ----------------------------------------------------------------------------


def test_fields_keep_their_order_and_field_slugs_expand_to_their_columns():
    columns = output_columns(ok(resource="contacts", fields=["phone", "email", "address.city"]))

    assert [c.key for c in columns] == ["phone.mobile", "phone.work", "phone.home", "phone.fax", "email", "address.city"]


def test_comma_separated_fields_are_split():
    assert [c.key for c in output_columns(ok(resource="contacts", fields="email, last_name"))] == ["email", "last_name"]


def test_default_columns_are_every_catalog_column_plus_one_per_list():
    from ferry.catalog import CONTACTS

    columns = output_columns(ok(resource="contacts", lists=["vip", "beta"]))
    assert [c.key for c in columns] == CONTACTS.default_export_keys() + ["list.vip", "list.beta"]


def test_json_keys_become_text_columns():
    (column,) = output_columns(ok(resource="events", fields=["properties.amount"]))

    assert column.json_path == ("properties", "amount") and column.type.value == "text"
    assert "fields[0]" in fields_of(problems_of(resource="events", fields=["properties.a b"]))
    assert "fields[0]" in fields_of(problems_of(resource="events", fields=["type.x"]))  # not a JSON column


def test_include_variants_adds_variant_columns_even_with_explicit_fields():
    keys = [c.key for c in output_columns(ok(resource="products", fields=["sku"], include_variants=True))]
    assert keys == ["sku", "variant.sku", "variant.name", "variant.price", "variant.stock"]
    keys = [c.key for c in output_columns(ok(resource="products", fields=["variant.sku", "sku"], include_variants=True))]
    assert keys == ["variant.sku", "sku"]
    assert "fields[0]" in fields_of(problems_of(resource="products", fields=["variant.sku"]))


def test_a_column_selected_twice_is_refused():
    assert "fields" in fields_of(problems_of(resource="contacts", fields=["phone", "phone.mobile"]))


def test_custom_labels_rename_headers_and_must_be_sensible():
    columns = output_columns(ok(resource="contacts", fields=["email", "first_name"], labels={"email": "E-Mail-Adresse"}))
    assert [c.label for c in columns] == ["E-Mail-Adresse", "first_name"]

    problems = problems_of(resource="contacts", fields=["email", "first_name"], labels={"last_name": "Surname", "email": "first_name"})
    assert "labels.last_name" in fields_of(problems)
    assert any(p.field == "labels" and p.value == "first_name" for p in problems)


def test_format_options():
    assert "delimiter" in fields_of(problems_of(resource="contacts", format="tsv", delimiter=";"))
    assert "header" in fields_of(problems_of(resource="contacts", format="json", header=False))
    assert "date_format" in fields_of(problems_of(resource="contacts", date_format="DD.MM.YYYY"))
    ok(resource="contacts", format="csv", delimiter=";", header=False, date_format="%d.%m.%Y")
    assert ok(resource="contacts", format="csv", gzip=True).extension() == "csv.gz"


def test_sort_accepts_field_colon_direction():
    request = ok(resource="contacts", sort="created_at:DESC")

    assert (request.sort.field, request.sort.direction) == ("created_at", "desc")
    assert ok(resource="contacts", sort="email").sort.direction == "asc"


def test_datetime_filter_values_are_converted_to_utc_whatever_the_machine_zone(monkeypatch):
    import time

    from ferry.catalog import FieldType
    from ferry.columns import FieldFilter, coerce_filter_value

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        value = coerce_filter_value(
            FieldType.DATETIME, FieldFilter(field="created_at", op="gte", value="2026-06-01T02:00:00+02:00"), "filters[0]"
        )
        naive = coerce_filter_value(
            FieldType.DATETIME, FieldFilter(field="created_at", op="gte", value="2026-06-01T02:00:00"), "filters[0]"
        )
    finally:
        monkeypatch.undo()
        time.tzset()
    assert value == datetime(2026, 6, 1, 0, 0)  # the store keeps naive UTC
    assert naive == datetime(2026, 6, 1, 2, 0)  # a value without an offset is taken as UTC


# --- issue 15: patterns that write garbage, names no destination holds, numbers Prefect cannot list -------------


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("%Q %", "not a strftime directive: %Q, % at the end"),
        ("%Y-%m-%", "% at the end"),
        ("%d.%m.%Y %s", "%s"),
        ("%Ek", "%Ek"),
        ("%%", "names no date or time part"),
        ("%Y%n%m", "%n"),
        ("%Y\n%m", "control characters"),
    ],
)
def test_strftime_patterns_are_checked_directive_by_directive(pattern, reason):
    problems = [p for p in problems_of(resource="contacts", date_format=pattern) if p.field == "date_format"]

    assert problems and all(p.value == pattern for p in problems)
    assert any(reason in p.reason for p in problems), problems


@pytest.mark.parametrize("pattern", ["%d.%m.%Y", "%Y-%m-%dT%H:%M:%S%z", "%G-W%V-%u", "%Ec", "%Oy", "100%% on %a %e %b", "%I:%M %p %Z"])
def test_valid_strftime_patterns_are_accepted(pattern):
    ok(resource="contacts", date_format=pattern)


@pytest.mark.parametrize("template", ["a\nb.csv", "{resource}\t{date}.csv", "x\x00.csv", "x\x1b[31m.csv", "x\x85.csv", "x\x7f.csv"])
def test_control_characters_in_file_names_are_refused(template):
    problems = problems_of(resource="contacts", filename=template)

    assert any(p.field == "filename" and "control characters" in p.reason for p in problems), problems


@pytest.mark.parametrize("limit", [2**53, 10**20, "100000000000000000000"])
def test_limit_is_bounded_to_what_prefect_and_the_store_hold(limit):
    problems = problems_of(resource="contacts", limit=limit)

    assert [p.field for p in problems] == ["limit"]
    assert "9007199254740991" in problems[0].reason


def test_the_largest_limit_is_accepted():
    assert ok(resource="contacts", limit=2**53 - 1).limit == 2**53 - 1


def test_integer_fields_of_the_request_are_all_bounded():
    """A new integer parameter must get an upper bound too (a run with a larger one breaks Prefect's listings)."""
    for name, field in ExportRequest.model_fields.items():
        if field.annotation is int or int in typing.get_args(field.annotation):
            assert any(getattr(m, "le", None) is not None or getattr(m, "lt", None) is not None for m in field.metadata), name


@pytest.mark.parametrize(("name", "value"), [("from", "-99999999999999999999d"), ("to", "-9999999d"), ("since", "500000w")])
def test_relative_times_are_bounded_before_they_overflow(name, value):
    problems = problems_of(resource="contacts", **{name: value})

    assert [p.field for p in problems] == [name] and "100 years" in problems[0].reason


def test_a_century_back_is_accepted():
    assert ok(resource="contacts", **{"from": "-36500d"}).window()[0].year < 1930
