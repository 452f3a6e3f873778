"""Import step 2: mapping suggestions on real vendor exports, the safety rules, and remembered mappings."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ferry.errors import ParameterError, SourceFileError
from tasks.imports.map import (
    THRESHOLD,
    ColumnMapping,
    columns_key,
    normalize,
    remember_mapping,
    remembered_mapping,
    suggest_mapping,
    target_fields,
    validate_mapping,
)
from tasks.imports.parse import preview

CASES = Path(__file__).parents[1] / "cases"


def suggested(case: str, resource: str = "contacts") -> dict[str, str | None]:
    result = preview(CASES / case)
    mapping = suggest_mapping(result.columns, result.sample_rows, resource)
    assert [m.source_column for m in mapping] == result.columns  # one per column, in file order
    keys = [m.target_key for m in mapping if m.target_key]
    assert len(keys) == len(set(keys)), "two source columns mapped to the same target"
    for m in mapping:
        assert 0.0 <= m.confidence <= 1.0 and m.reason
        assert (m.target_field_slug is None) == (m.confidence == 0.0)
        assert m.target_field_slug is None or m.confidence >= THRESHOLD
    return {m.source_column: m.target_key for m in mapping}


# --- vendor exports ---------------------------------------------------------------------------------


def test_hubspot_contacts():
    assert suggested("hubspot_contacts.csv") == {
        "Record ID": "external_id",
        "First Name": "first_name",
        "Last Name": "last_name",
        "Email": "email",
        "Phone Number": "phone.work",
        "Mobile Phone Number": "phone.mobile",
        "Company Name": "company",
        "Job Title": "job_title",
        "Lifecycle Stage": "lifecycle_stage",
        "Lead Status": None,
        "Contact owner": "owner",
        "Create Date": "created_at",
        "Last Activity Date": None,
        "Street Address": "address.street",
        "City": "address.city",
        "State/Region": "address.state",
        "Postal Code": "address.zip",
        "Country/Region": "address.country",
        "Marketing contact status": None,
    }


def test_mailchimp_audience_export():
    assert suggested("mailchimp_members.csv") == {
        "Email Address": "email",
        "First Name": "first_name",
        "Last Name": "last_name",
        "Address": "address.street",
        "Phone Number": "phone.mobile",
        "Birthday": None,
        "MEMBER_RATING": None,
        "OPTIN_TIME": None,
        "OPTIN_IP": "ip_address",
        "CONFIRM_TIME": None,
        "CONFIRM_IP": None,
        "LATITUDE": "latitude",
        "LONGITUDE": "longitude",
        "GMTOFF": None,
        "DSTOFF": None,
        "TIMEZONE": "timezone",
        "CC": "address.country",
        "REGION": "address.state",
        "LAST_CHANGED": "updated_at",
        "LEID": None,
        "EUID": "external_id",
        "NOTES": "notes",
        "TAGS": "tags",
    }


def test_salesforce_contacts_api_names():
    assert suggested("salesforce_contacts.csv") == {
        "Id": "external_id",
        "AccountId": None,
        "Salutation": None,
        "FirstName": "first_name",
        "LastName": "last_name",
        "Title": "job_title",
        "Email": "email",
        "Phone": "phone.work",
        "MobilePhone": "phone.mobile",
        "HomePhone": "phone.home",
        "Fax": "phone.fax",
        "MailingStreet": "address.street",
        "MailingCity": "address.city",
        "MailingState": "address.state",
        "MailingPostalCode": "address.zip",
        "MailingCountry": "address.country",
        "LeadSource": "source",
        "OwnerId": None,
        "HasOptedOutOfEmail": None,
        "Description": "notes",
        "CreatedDate": "created_at",
        "LastModifiedDate": "updated_at",
    }


def test_klaviyo_profiles():
    assert suggested("klaviyo_profiles.csv") == {
        "Email": "email",
        "Phone Number": "phone.mobile",
        "First Name": "first_name",
        "Last Name": "last_name",
        "Organization": "company",
        "Title": "job_title",
        "Address": "address.street",
        "Address 2": "address.street2",
        "City": "address.city",
        "State / Region": "address.state",
        "Country": "address.country",
        "Zip Code": "address.zip",
        "Latitude": "latitude",
        "Longitude": "longitude",
        "Source": "source",
        "IP Address": "ip_address",
        "Email Marketing Consent": "email_consent",
        "SMS Marketing Consent": "sms_consent",
        "Klaviyo ID": "external_id",
        "Profile Created On": "created_at",
        "Timezone": "timezone",
        "Total Customer Lifetime Value": "lifetime_value",
    }


def test_shopify_customers():
    assert suggested("shopify_customers.csv") == {
        "Customer ID": "external_id",
        "First Name": "first_name",
        "Last Name": "last_name",
        "Email": "email",
        "Accepts Email Marketing": "email_consent",
        "Default Address Company": "company",
        "Default Address Address1": "address.street",
        "Default Address Address2": "address.street2",
        "Default Address City": "address.city",
        "Default Address Province Code": "address.state",
        "Default Address Country Code": "address.country",
        "Default Address Zip": "address.zip",
        "Default Address Phone": "phone.work",
        "Phone": "phone.mobile",
        "Accepts SMS Marketing": "sms_consent",
        "Total Spent": "lifetime_value",
        "Total Orders": "orders_count",
        "Note": "notes",
        "Tax Exempt": None,
        "Tags": "tags",
    }


def test_stripe_customers():
    mapping = suggested("stripe_customers.csv")
    assert {k: v for k, v in mapping.items() if v} == {
        "id": "external_id",
        "Description": "notes",
        "Email": "email",
        "Name": "full_name",
        "Total Spend": "lifetime_value",
        "Payment Count": "orders_count",  # a count of payments is the orders count (issue 13)
        "Phone": "phone.mobile",
        "Address Line1": "address.street",
        "Address Line2": "address.street2",
        "Address City": "address.city",
        "Address State": "address.state",
        "Address Country": "address.country",
        "Address Zip": "address.zip",
        "Created (UTC)": "created_at",  # the customer's own creation date survives a migration (issue 13)
    }
    # the card's own id, name and billing address lose to the customer's; "Status" (active/canceled) is no lifecycle stage
    assert mapping["Card ID"] is None and mapping["Card Name"] is None and mapping["Card Address City"] is None
    assert mapping["Status"] is None


def test_german_semicolon_export_maps_by_aliases():
    mapping = suggested("semicolon_decimal_comma.csv")
    assert mapping == {"E-Mail": "email", "Vorname": "first_name", "Nachname": "last_name", "Umsatz": None, "Ort": None}


# --- rules ------------------------------------------------------------------------------------------------


def _rows(**columns: list[str]) -> list[dict]:
    n = len(next(iter(columns.values())))
    return [{c: values[i] for c, values in columns.items()} for i in range(n)]


def test_a_column_full_of_email_addresses_is_the_email_field_whatever_its_header():
    rows = _rows(MMERGE3=["ada@example.com", "alan@example.org", "grace@example.net"], Name=["Ada", "Alan", "Grace"])
    mapping = suggest_mapping(["MMERGE3", "Name"], rows, "contacts")
    assert mapping[0].target_key == "email" and "e-mail addresses" in mapping[0].reason
    assert mapping[1].target_key == "full_name"


def test_vendor_ids_go_to_external_id_never_to_email():
    rows = _rows(
        **{
            "Email ID": ["4f8a9c1e2b7d", "9a8b7c6d5e4f", "0a1b2c3d4e5f"],
            "Subscriber ID": ["1001", "1002", "1003"],
            "Email": ["a@x.com", "b@x.com", "c@x.com"],
        }
    )
    mapping = {m.source_column: m.target_key for m in suggest_mapping(list(rows[0]), rows, "contacts")}
    assert mapping == {"Email ID": None, "Subscriber ID": "external_id", "Email": "email"}
    # without sample values the header alone still keeps an id column off the e-mail field
    alone = suggest_mapping(["Email ID"], [], "contacts")[0]
    assert alone.target_key != "email"


def test_an_email_field_refuses_values_that_are_not_email_addresses():
    rows = _rows(Email=["cus_NffrFeUfNV2Hib", "cus_NffrFeUfNV2Hic", "cus_NffrFeUfNV2Hid"])
    mapping = suggest_mapping(["Email"], rows, "contacts")[0]
    assert mapping.target_key is None and "0% of the values are e-mail addresses" in mapping.reason


def test_negated_consent_never_maps_to_a_consent_flag():
    rows = _rows(**{"Unsubscribed": ["true", "false", "true"], "Email Opt Out": ["yes", "no", "no"]})
    assert [m.target_key for m in suggest_mapping(list(rows[0]), rows, "contacts")] == [None, None]


def test_columns_with_no_good_match_stay_unmapped_with_the_best_guess_in_the_reason():
    rows = _rows(**{"Favourite Colour": ["blue", "red", "green"], "Last Activity Date": ["2024-01-01"] * 3})
    mapping = suggest_mapping(list(rows[0]), rows, "contacts")
    assert [m.target_key for m in mapping] == [None, None]
    assert all(m.confidence == 0.0 for m in mapping)
    assert mapping[1].reason.startswith("unmapped: best: updated_at")  # an activity date is no change of the record


def test_two_columns_never_share_a_target():
    rows = _rows(**{"Email": ["a@x.com"] * 3, "E-mail address": ["b@x.com"] * 3, "Contact": ["c@x.com"] * 3})
    mapping = suggest_mapping(list(rows[0]), rows, "contacts")
    assert [m.target_key for m in mapping] == ["email", None, None]
    assert "taken by a better match" in mapping[1].reason


def test_phone_columns_without_a_type_take_the_first_free_type_in_order():
    columns = ["Telephone", "Cell", "Work Phone", "Phone 2"]
    mapping = suggest_mapping(columns, [], "contacts")
    assert [m.target_key for m in mapping] == ["phone.home", "phone.mobile", "phone.work", None]
    assert mapping[0].value_type == "home" and mapping[0].target_field_slug == "phone"


def test_phone_values_map_an_unnamed_column_but_ip_addresses_do_not():
    rows = _rows(MMERGE5=["+1 415 555 0100", "(212) 555-0142", "+44 20 7946 0018"], MMERGE6=["203.0.113.5", "198.51.100.7", "192.0.2.44"])
    assert [m.target_key for m in suggest_mapping(["MMERGE5", "MMERGE6"], rows, "contacts")] == ["phone.mobile", None]


def test_number_fields_refuse_words():
    rows = _rows(**{"Total Orders": ["many", "few", "none"]})
    assert suggest_mapping(["Total Orders"], rows, "contacts")[0].target_key is None


def test_other_resources():
    rows = _rows(
        **{
            "Event ID": ["e1", "e2", "e3"],
            "Event Type": ["purchase", "signup", "page_view"],
            "Timestamp": ["2024-01-01T10:00:00Z"] * 3,
            "Email": ["a@x.com", "b@x.com", "c@x.com"],
        }
    )
    assert [m.target_key for m in suggest_mapping(list(rows[0]), rows, "events")] == ["external_id", "type", "occurred_at", "contact"]
    assert [m.target_key for m in suggest_mapping(["Company Name", "Website", "Number of Employees"], [], "accounts")] == [
        "name",
        "domain",
        "employees",
    ]
    assert [m.target_key for m in suggest_mapping(["Handle", "Title", "Body (HTML)", "Published"], [], "products")] == [
        "sku",
        "name",
        "description",
        "active",
    ]


def test_export_only_resources_cannot_be_mapped():
    with pytest.raises(ParameterError, match="export-only"):
        suggest_mapping(["date"], [], "analytics")


def test_suggestions_are_deterministic():
    result = preview(CASES / "hubspot_contacts.csv")
    first = suggest_mapping(result.columns, result.sample_rows, "contacts")
    assert all(suggest_mapping(result.columns, result.sample_rows, "contacts") == first for _ in range(3))


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("MailingPostalCode", "mailing postal code"),
        ("E-Mail Address", "email address"),
        ("State/Region", "state region"),
        ("Default Address Address1", "default address address 1"),
        ("Prénom", "prenom"),
        ("IPAddress", "ip address"),
    ],
)
def test_normalize(raw, norm):
    assert normalize(raw) == norm


def test_target_fields_list_phone_types_and_address_parts_and_skip_read_only_fields():
    fields = {f["slug"]: f for f in target_fields("contacts")}
    assert "id" not in fields and "created_at" in fields  # a record's timestamps may come from its source (on create)
    assert fields["phone"]["valueTypes"] == ["mobile", "work", "home", "fax"]
    assert fields["address"]["addressParts"] == ["street", "street2", "city", "state", "zip", "country"]
    assert fields["email"]["required"] is True and fields["email"]["type"] == "email"


# --- JSON contract and validation --------------------------------------------------------------------------


def test_json_round_trip_and_field_names():
    m = ColumnMapping("Mobile", "phone", "mobile", None, 0.93, "why")
    data = m.to_json()
    assert list(data)[:5] == ["sourceColumn", "targetFieldSlug", "valueType", "addressPart", "confidence"]
    assert ColumnMapping.from_json(data) == m
    assert (
        ColumnMapping.from_json({"source_column": "City", "target_field_slug": "address", "address_part": "city"}).target_key
        == "address.city"
    )
    with pytest.raises(ParameterError):
        ColumnMapping.from_json({"targetFieldSlug": "email"})


def test_validate_mapping_lists_every_problem():
    bad = [
        ColumnMapping("A", "nope"),
        ColumnMapping("B", "phone"),
        ColumnMapping("C", "address", address_part="moon"),
        ColumnMapping("D", "email"),
        ColumnMapping("E", "email"),
        ColumnMapping("F", "id"),
        ColumnMapping("G", "first_name", value_type="mobile"),
    ]
    with pytest.raises(ParameterError) as info:
        validate_mapping("contacts", bad, columns=["A", "B", "C", "D", "E", "F"])
    fields = [p.field for p in info.value.problems]
    assert fields == ["mapping['A']", "mapping['B']", "mapping['C']", "mapping['E']", "mapping['F']", "mapping['G']", "mapping['G']"]


# --- remembered mappings (a real store on each backend) -------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def writable(request, tmp_path):
    """A migrated store on each backend and a fresh workspace in it."""
    from ferry.store.engine import ensure_workspace, get_engine
    from ferry.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'ferry.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = get_engine(url)
    upgrade(engine)
    workspace = f"mapping-{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        ensure_workspace(conn, workspace)
    return engine, workspace, url


def test_accepted_mappings_are_proposed_first_next_time(writable):
    engine, workspace, _ = writable
    result = preview(CASES / "hubspot_contacts.csv")
    columns = result.columns
    assert remembered_mapping(engine, workspace, "contacts", columns) is None
    accepted = [
        ColumnMapping(m.source_column, m.target_field_slug, m.value_type, m.address_part, m.confidence)
        for m in suggest_mapping(columns, result.sample_rows, "contacts")
    ]
    accepted[columns.index("Lead Status")] = ColumnMapping("Lead Status", "lifecycle_stage")  # a user's correction
    accepted[columns.index("Lifecycle Stage")] = ColumnMapping("Lifecycle Stage", None)
    remember_mapping(engine, workspace, "contacts", accepted)

    shuffled = list(reversed(columns))  # same set, other order
    again = suggest_mapping(shuffled, [], "contacts", engine=engine, workspace=workspace)
    assert [m.source_column for m in again] == shuffled
    assert {m.source_column: m.target_key for m in again} == {m.source_column: m.target_key for m in accepted}
    assert all(m.confidence == 1.0 for m in again)
    # another resource, another workspace or another column set is not remembered
    assert suggest_mapping(columns[:-1], [], "contacts", engine=engine, workspace=workspace)[0].confidence < 1.0
    from ferry.store.engine import ensure_workspace

    with engine.begin() as conn:
        ensure_workspace(conn, workspace + "-other")
    assert remembered_mapping(engine, workspace + "-other", "contacts", columns) is None
    # remembering again replaces
    remember_mapping(engine, workspace, "contacts", [ColumnMapping(c, None) for c in columns])
    assert all(m.target_key is None for m in remembered_mapping(engine, workspace, "contacts", columns))


def test_column_keys_are_accepted_as_targets_and_unknown_workspaces_remember_nothing(writable):
    engine, workspace, _ = writable
    m = ColumnMapping.from_json({"sourceColumn": "Mobile", "targetFieldSlug": "phone.mobile"})
    assert (m.target_field_slug, m.value_type, m.target_key) == ("phone", "mobile", "phone.mobile")
    remember_mapping(
        engine, workspace, "contacts", [m, ColumnMapping.from_json({"sourceColumn": "Town", "targetFieldSlug": "address.city"})]
    )
    assert [x.target_key for x in remembered_mapping(engine, workspace, "contacts", ["Town", "Mobile"])] == ["address.city", "phone.mobile"]
    assert remembered_mapping(engine, "no-such-workspace", "contacts", ["Town", "Mobile"]) is None
    with pytest.raises(Exception, match="does not exist"):
        remember_mapping(engine, "no-such-workspace", "contacts", [m])


def test_an_invalid_mapping_is_not_remembered(writable):
    engine, workspace, _ = writable
    with pytest.raises(ParameterError):
        remember_mapping(engine, workspace, "contacts", [ColumnMapping("Email", "email"), ColumnMapping("Mail", "email")])
    assert remembered_mapping(engine, workspace, "contacts", ["Email", "Mail"]) is None


def test_columns_key_ignores_order_not_spelling():
    assert columns_key(["a", "b"]) == columns_key(["b", "a"]) != columns_key(["a", "B"])


# --- CLI ----------------------------------------------------------------------------------------------------


def test_cli_preview_json():
    from cli.main import app

    result = CliRunner().invoke(app, ["import", "preview", str(CASES / "ragged_rows.csv"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["fileType"] == "csv" and payload["delimiter"] == "," and payload["encoding"] == "utf-8"
    assert payload["columns"] == ["email", "first_name", "last_name"]
    assert payload["totalRows"] == 5 and payload["totalRowsEstimated"] is False
    assert payload["sampleRows"][1] == {"email": "alan@example.org", "first_name": "Alan", "last_name": None}
    assert payload["problems"] == ["row 3: ragged row: 2 values, header has 3", "row 4: ragged row: 5 values, header has 3"]


def test_cli_suggest_mapping_json_contract_and_memory(tmp_path):
    from cli.main import app
    from ferry.settings import reload_settings
    from ferry.store.engine import ensure_workspace, get_engine
    from ferry.store.migrate import upgrade

    runner = CliRunner()
    args = ["import", "suggest-mapping", str(CASES / "shopify_customers.csv"), "--resource", "contacts", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert isinstance(payload, list) and len(payload) == 20
    assert {"sourceColumn", "targetFieldSlug", "valueType", "addressPart", "confidence"} <= set(payload[0])
    by_source = {p["sourceColumn"]: p for p in payload}
    assert by_source["Phone"]["targetFieldSlug"] == "phone" and by_source["Phone"]["valueType"] == "mobile"
    assert by_source["Default Address City"]["addressPart"] == "city"

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    import os

    old = os.environ.get("FERRY_DATABASE_URL")
    os.environ["FERRY_DATABASE_URL"] = url
    reload_settings()
    try:
        engine = get_engine(url)
        upgrade(engine)
        with engine.begin() as conn:
            ensure_workspace(conn, "acme")
        remember_mapping(engine, "acme", "contacts", [ColumnMapping.from_json(p) for p in payload])
        remembered = json.loads(runner.invoke(app, args + ["--workspace", "acme"]).stdout)
        assert [p["targetFieldSlug"] for p in remembered] == [p["targetFieldSlug"] for p in payload]
        assert {p["confidence"] for p in remembered} == {1.0}
    finally:
        if old is None:
            os.environ.pop("FERRY_DATABASE_URL", None)
        else:
            os.environ["FERRY_DATABASE_URL"] = old
        reload_settings()


def test_cli_reports_unreadable_files_and_unknown_resources(tmp_path):
    from cli.main import app

    runner = CliRunner()
    bad = runner.invoke(app, ["import", "preview", str(CASES / "single_object.json")])
    assert bad.exit_code == 2 and "one JSON object" in bad.output
    unknown = runner.invoke(app, ["import", "suggest-mapping", str(CASES / "crlf.csv"), "--resource", "planets"])
    assert unknown.exit_code == 2 and "Unknown resource 'planets'" in unknown.output
    human = runner.invoke(app, ["import", "suggest-mapping", str(CASES / "crlf.csv"), "--resource", "contacts"])
    assert human.exit_code == 0 and "Target fields" in human.output


def test_source_file_errors_are_ferry_errors():
    with pytest.raises(SourceFileError):
        preview(CASES / "single_object.json")


def test_imports_that_finish_together_both_remember_their_mapping(writable):
    """Two auto-mapped imports of the same columns finishing at once: saving the mapping is one upsert, never a race."""
    from concurrent.futures import ThreadPoolExecutor

    engine, workspace, _ = writable
    mapping = [ColumnMapping("Email", "email"), ColumnMapping("First", "first_name")]

    def remember(_: int) -> None:
        remember_mapping(engine, workspace, "contacts", mapping)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(remember, range(80)))  # raised IntegrityError on PostgreSQL about half the time (DELETE, then INSERT)
    assert [m.target_key for m in remembered_mapping(engine, workspace, "contacts", ["First", "Email"])] == ["first_name", "email"]
