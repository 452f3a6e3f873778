"""/compat/coherence against the live service (see conftest.py): Coherence's import steps, import and export jobs, exports, errors.

The seed's example requests are replayed as written, with module ``contacts``;
its e-mail values are redacted in the document ("[email protected]"), so real
addresses stand in for them (``john.smith.<tag>@example.com`` and so on), and its
``"rows": [...]`` placeholder is filled with rows. Every documented response
field is checked by name and type.
"""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pypdf import PdfReader
from servers.api import start_api
from servers.prefect import ferry_env
from sqlalchemy import text

from api.compat.coherence.exports import date_format
from api.compat.coherence.imports import processing_mode

BASE = "/compat/coherence"
RUN_TIMEOUT = 240
OPTIONAL_STR = (str, type(None))
PARSE_FIELDS = {"sourceColumns": list, "sampleRows": list, "totalRows": int, "fileType": str, "fileName": str, "encoding": str}
VALIDATE_FIELDS = {"isValid": bool, "totalRows": int, "validRows": int, "errorRows": int, "errors": list, "warnings": list}
EXECUTE_FIELDS = {
    "importJobId": str,
    "status": str,
    "processingMode": str,
    "successRows": int,
    "errorRows": int,
    "skippedRows": int,
    "createdRecordIds": list,
    "errors": list,
    "referenceWarnings": list,
}
JOB_FIELDS = {
    "importJobId": str,
    "accountId": str,
    "moduleId": str,
    "status": str,
    "processingMode": str,
    "fileName": OPTIONAL_STR,
    "fileType": OPTIONAL_STR,
    "totalRows": int,
    "processedRows": int,
    "successRows": int,
    "errorRows": int,
    "skippedRows": int,
    "aiMappingUsed": bool,
    "duplicateStrategy": str,
    "createdDateTime": str,
    "startedDateTime": OPTIONAL_STR,
    "completedDateTime": OPTIONAL_STR,
    "expiresDateTime": str,
}
EXPORT_JOB_FIELDS = {
    "exportJobId": str,
    "accountId": str,
    "sourceId": str,
    "sourceType": str,
    "format": str,
    "status": str,
    "progress": int,
    "fileName": OPTIONAL_STR,
    "fileUrl": OPTIONAL_STR,
    "fileSizeBytes": (int, type(None)),
    "contentType": str,
    "requestedDateTime": str,
    "completedDateTime": OPTIONAL_STR,
    "expiresDateTime": OPTIONAL_STR,
}
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def coherence(service, key: str, base: str | None = None) -> httpx.Client:
    """A client as Coherence's own: ``Authorization: Bearer KEY``."""
    return httpx.Client(base_url=(base or service.url) + BASE, headers={"Authorization": f"Bearer {service.keys[key]}"}, timeout=120)


def check(data: dict, fields: dict) -> None:
    for name, kind in fields.items():
        assert name in data, (name, data)
        assert isinstance(data[name], kind), (name, data[name])


def success(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True
    return body["data"]


def failure(response: httpx.Response, status: int, message: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == status and isinstance(body["error"]["details"], list)
    if message is not None:
        assert body["error"]["message"] == message, body
    return body["error"]


def tag() -> str:
    return uuid.uuid4().hex[:8]


def contacts_csv(t: str) -> bytes:
    """The seed's sample file: Name, Email, Phone, Company."""
    rows = [
        "Name,Email,Phone,Company",
        f"John Smith,john.smith.{t}@example.com,555-0100,Acme Corp {t}",
        f"Jane Doe,jane.doe.{t}@example.com,555-0101,TechStart Inc {t}",
        f"Ada Lovelace,ada.{t}@example.com,555-0102,",
    ]
    return ("\n".join(rows) + "\n").encode()


def stored(service, emails: list[str], columns: str = "c.email") -> dict[str, tuple]:
    query = text(
        f"SELECT c.email, {columns} FROM contacts c JOIN workspaces w ON w.id = c.workspace_id "
        "LEFT JOIN accounts a ON a.id = c.company_id WHERE w.slug = 'acme' AND c.email = ANY(:emails)"
    )
    with service.engine.connect() as conn:
        return {row[0]: tuple(row[1:]) for row in conn.execute(query, {"emails": emails})}


def test_processing_mode_by_row_count():
    assert [processing_mode(n) for n in (0, 1, 5_000)] == ["sync"] * 3
    assert [processing_mode(n) for n in (5_001, 50_000)] == ["stream"] * 2
    assert [processing_mode(n) for n in (50_001, 1_000_000)] == ["background"] * 2


def test_date_formats():
    assert date_format(None) == "iso" and date_format("L") == "L" and date_format("%d.%m.%Y") == "%d.%m.%Y"
    assert date_format("YYYY-MM-DD") == "%Y-%m-%d" and date_format("DD/MM/YYYY HH:mm") == "%d/%m/%Y %H:%M"


def test_the_documented_import_workflow(service):
    """The seed's steps 1-4, job status, history and rollback, its example bodies as written."""
    t = tag()
    john, jane = f"john.smith.{t}@example.com", f"jane.doe.{t}@example.com"
    with coherence(service, "acme-admin") as http:
        # Step 1: curl -F "file=@contacts.csv"
        parsed = success(http.post("/v1/modules/contacts/import/parse", files={"file": ("contacts.csv", contacts_csv(t), "text/csv")}))
        check(parsed, PARSE_FIELDS | {"fileId": str})
        assert parsed["sourceColumns"] == ["Name", "Email", "Phone", "Company"]
        assert parsed["sampleRows"][0] == {"Name": "John Smith", "Email": john, "Phone": "555-0100", "Company": f"Acme Corp {t}"}
        assert parsed["totalRows"] == 3 and parsed["fileType"] == "csv" and parsed["fileName"] == "contacts.csv"
        assert parsed["encoding"] in ("utf-8", "ascii")

        # Step 2: the seed's body
        body = {
            "sourceColumns": ["Name", "Email", "Phone", "Company"],
            "sampleData": [{"Name": "John Smith", "Email": john, "Phone": "555-0100", "Company": "Acme Corp"}],
        }
        suggested = success(http.post("/v1/modules/contacts/import/suggest-mapping", json=body))
        assert isinstance(suggested["aiUsed"], bool)
        for s in suggested["suggestions"]:
            check(s, {"sourceColumn": str, "targetFieldSlug": OPTIONAL_STR, "confidence": (int, float)})
        targets = {s["sourceColumn"]: s["targetFieldSlug"] for s in suggested["suggestions"]}
        assert targets == {"Name": "fullName", "Email": "email", "Phone": "phone", "Company": "company"}
        for f in suggested["targetFields"]:
            check(f, {"fieldSlug": str, "label": str, "dataType": str})
        types = {f["fieldSlug"]: f["dataType"] for f in suggested["targetFields"]}
        assert types["email"] == "email" and types["phone"] == "phone" and types["company"] == "reference" and types["fullName"] == "text"
        from_file = success(http.post("/v1/modules/contacts/import/suggest-mapping", json={"fileId": parsed["fileId"]}))
        assert {s["sourceColumn"]: s["targetFieldSlug"] for s in from_file["suggestions"]} == targets

        # Step 3: the seed's body (displayName and email)
        body = {
            "rows": [{"Name": "John Smith", "Email": john}, {"Name": "Jane Doe", "Email": "invalid-email"}],
            "columnMapping": [
                {"sourceColumn": "Name", "targetFieldSlug": "displayName"},
                {"sourceColumn": "Email", "targetFieldSlug": "email"},
            ],
        }
        report = success(http.post("/v1/modules/contacts/import/validate", json=body))
        check(report, VALIDATE_FIELDS)
        assert (report["isValid"], report["totalRows"], report["validRows"], report["errorRows"]) == (False, 2, 1, 1)
        (error,) = report["errors"]
        check(error, {"row": int, "field": str, "value": str, "error": str})
        assert (error["row"], error["field"], error["value"]) == (2, "email", "invalid-email")
        for w in report["warnings"]:
            check(w, {"row": (int, type(None)), "field": OPTIONAL_STR, "message": str})
        assert not stored(service, [john])  # validating writes nothing

        # Step 4: the seed's body, its "rows": [...] filled in
        body = {
            "rows": [{"Name": "John Smith", "Email": john}, {"Name": "Jane Doe", "Email": jane}],
            "columnMapping": [
                {"sourceColumn": "Name", "targetFieldSlug": "displayName"},
                {"sourceColumn": "Email", "targetFieldSlug": "email"},
            ],
            "duplicateStrategy": "update",
            "duplicateMatchFields": ["email"],
            "mergeMode": "prefer_import",
        }
        done = success(http.post("/v1/modules/contacts/import/execute", json=body))
        check(done, EXECUTE_FIELDS)
        assert (done["status"], done["processingMode"], done["successRows"], done["errorRows"], done["skippedRows"]) == (
            "completed",
            "sync",
            2,
            0,
            0,
        )
        assert all(isinstance(i, str) for i in done["createdRecordIds"]) and len(done["createdRecordIds"]) == 2
        assert {str(row[1]) for row in stored(service, [john, jane], "c.full_name, c.id").values()} == set(done["createdRecordIds"])
        job_id = done["importJobId"]

        # Import job status, as documented
        job = success(http.get(f"/v1/modules/contacts/import/jobs/{job_id}"))
        check(job, JOB_FIELDS)
        assert (job["importJobId"], job["accountId"], job["moduleId"], job["status"]) == (job_id, "acme", "contacts", "completed")
        assert (job["processingMode"], job["totalRows"], job["processedRows"], job["successRows"]) == ("sync", 2, 2, 2)
        assert job["duplicateStrategy"] == "update" and job["aiMappingUsed"] is False and job["fileType"] == "jsonl"
        for name in ("createdDateTime", "startedDateTime", "completedDateTime", "expiresDateTime"):
            assert ISO.fullmatch(job[name]), (name, job[name])
        created = datetime.fromisoformat(job["createdDateTime"].replace("Z", "+00:00"))
        assert datetime.fromisoformat(job["expiresDateTime"].replace("Z", "+00:00")) - created == timedelta(days=7)

        # List import history: ?limit=25
        history = success(http.get("/v1/modules/contacts/import/jobs", params={"limit": 25}))
        assert isinstance(history, list) and 1 <= len(history) <= 25
        assert history[0]["importJobId"] == job_id  # newest first
        for j in history:
            check(j, JOB_FIELDS)
        assert len(success(http.get("/v1/modules/contacts/import/jobs", params={"limit": 1}))) == 1
        assert success(http.get("/v1/modules/accounts/import/jobs")) == [] or all(
            j["moduleId"] == "accounts" for j in success(http.get("/v1/modules/accounts/import/jobs"))
        )

        # Rollback: deletes what the import created
        rolled = http.delete(f"/v1/modules/contacts/import/jobs/{job_id}")
        assert rolled.status_code == 200, rolled.text
        assert rolled.json() == {"success": True, "data": {"deletedCount": 2}}
        assert not stored(service, [john, jane])
        assert success(http.get(f"/v1/modules/contacts/import/jobs/{job_id}"))["status"] == "cancelled"
        failure(http.delete(f"/v1/modules/contacts/import/jobs/{job_id}"), 409)  # undone already

        # duplicateStrategy update: a second import of the same e-mail updates the record
        assert success(http.post("/v1/modules/contacts/import/execute", json=body))["successRows"] == 2
        again = success(http.post("/v1/modules/contacts/import/execute", json=body | {"rows": [{"Name": "Johnny", "Email": john}]}))
        assert again["successRows"] == 1 and again["createdRecordIds"] == []  # updated, not created
        assert stored(service, [john], "c.full_name")[john] == ("Johnny",)
        assert success(http.get("/v1/modules/contacts/import/jobs", params={"limit": 1}))[0]["importJobId"] == again["importJobId"]


def excel_files(tmp_path, t: str) -> dict[str, bytes]:
    import openpyxl
    import xlwt

    rows = [["Name", "Email"], ["John Smith", f"john.smith.{t}@example.com"], ["Jane Doe", f"jane.doe.{t}@example.com"]]
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.save(tmp_path / "contacts.xlsx")
    legacy = xlwt.Workbook()
    sheet = legacy.add_sheet("Contacts")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    legacy.save(str(tmp_path / "contacts.xls"))
    return {name: (tmp_path / name).read_bytes() for name in ("contacts.xlsx", "contacts.xls")}


def test_excel_files_and_mime_types(service, tmp_path):
    t = tag()
    mime = {
        "contacts.xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "contacts.xls": "application/vnd.ms-excel",
    }
    with coherence(service, "acme-admin") as http:
        for name, content in excel_files(tmp_path, t).items():
            parsed = success(http.post("/v1/modules/contacts/import/parse", files={"file": (name, content, mime[name])}))
            check(parsed, PARSE_FIELDS | {"encoding": type(None), "fileId": str})  # a workbook has no text encoding
            assert parsed["fileType"] == name.rsplit(".", 1)[1] and parsed["fileName"] == name and parsed["totalRows"] == 2
            assert parsed["sourceColumns"] == ["Name", "Email"] and parsed["sampleRows"][1]["Email"] == f"jane.doe.{t}@example.com"
            report = success(
                http.post(
                    "/v1/modules/contacts/import/validate",
                    json={"fileId": parsed["fileId"], "columnMapping": [{"sourceColumn": "Email", "targetFieldSlug": "email"}]},
                )
            )
            assert report["isValid"] is True and report["totalRows"] == 2
        unnamed = success(http.post("/v1/modules/contacts/import/parse", files={"file": ("export", contacts_csv(t), "text/csv")}))
        assert (unnamed["fileName"], unnamed["fileType"], unnamed["totalRows"]) == ("export.csv", "csv", 3)  # named by its MIME type


def test_the_documented_error_handling_flow_with_a_file(service):
    """The seed's "Error Handling" sequence: parse, suggest from 5 sample rows, validate all rows with the suggestions, execute."""
    t = tag()
    emails = [f"ada.{t}@example.com", f"john.smith.{t}@example.com", f"jane.doe.{t}@example.com"]
    with coherence(service, "acme-admin") as http:
        parse_result = success(http.post("/v1/modules/contacts/import/parse", files={"file": ("contacts.csv", contacts_csv(t))}))
        mappings = success(
            http.post(
                "/v1/modules/contacts/import/suggest-mapping",
                json={"sourceColumns": parse_result["sourceColumns"], "sampleData": parse_result["sampleRows"][:5]},
            )
        )
        validation = success(
            http.post(
                "/v1/modules/contacts/import/validate",
                json={"fileId": parse_result["fileId"], "columnMapping": mappings["suggestions"]},
            )
        )
        assert validation["isValid"] is True and validation["totalRows"] == 3, validation
        result = success(
            http.post(
                "/v1/modules/contacts/import/execute",
                json={
                    "fileId": parse_result["fileId"],
                    "columnMapping": mappings["suggestions"],
                    "duplicateStrategy": "update",
                    "duplicateMatchFields": ["email"],
                    "aiMappingUsed": True,
                },
            )
        )
        assert result["processingMode"] == "sync" and result["status"] == "completed" and result["successRows"] == 3
        (warning,) = result["referenceWarnings"]  # the two companies are no accounts of acme
        check(warning, {"fieldSlug": str, "fieldLabel": str, "unresolvedValues": list, "targetModuleSlug": str})
        assert (warning["fieldSlug"], warning["fieldLabel"], warning["targetModuleSlug"]) == ("company", "Company", "accounts")
        assert sorted(warning["unresolvedValues"]) == [f"Acme Corp {t}", f"TechStart Inc {t}"]
        job = success(http.get(f"/v1/modules/contacts/import/jobs/{result['importJobId']}"))
        assert job["aiMappingUsed"] is True and job["fileName"] == "contacts.csv" and job["fileType"] == "csv" and job["totalRows"] == 3
        phones = stored(service, emails, "c.phone_mobile")
        assert phones[emails[1]] == ("5550100",)  # separators stripped, as natively


def test_reference_multi_value_and_address_fields(service):
    """The seed's three mapping examples: createMissingReferences, multi-value phone fields, address parts."""
    t = tag()
    company = f"Unknown Company {t}"
    with coherence(service, "acme-admin") as http:
        referenced = success(
            http.post(
                "/v1/modules/contacts/import/execute",
                json={
                    "rows": [{"Email": f"ref.{t}@example.com", "Company Name": company}],
                    "columnMapping": [
                        {"sourceColumn": "Email", "targetFieldSlug": "email"},
                        {"sourceColumn": "Company Name", "targetFieldSlug": "account"},
                    ],
                    "createMissingReferences": True,
                },
            )
        )
        assert referenced["status"] == "completed" and referenced["referenceWarnings"] == [], referenced
        assert stored(service, [f"ref.{t}@example.com"], "a.name")[f"ref.{t}@example.com"] == (company,)

        phones = success(
            http.post(
                "/v1/modules/contacts/import/execute",
                json={
                    "rows": [{"Email": f"phones.{t}@example.com", "Mobile Phone": "555-0200", "Work Phone": "555-0201"}],
                    "columnMapping": [
                        {"sourceColumn": "Email", "targetFieldSlug": "email"},
                        {"sourceColumn": "Mobile Phone", "targetFieldSlug": "phone", "valueType": "Mobile"},
                        {"sourceColumn": "Work Phone", "targetFieldSlug": "phone", "valueType": "Work"},
                    ],
                },
            )
        )
        assert phones["successRows"] == 1, phones
        assert stored(service, [f"phones.{t}@example.com"], "c.phone_mobile, c.phone_work")[f"phones.{t}@example.com"] == (
            "5550200",
            "5550201",
        )

        address = {"Street Address": "1 Main St", "City": "Springfield", "State": "IL", "Postal Code": "62701"}
        located = success(
            http.post(
                "/v1/modules/contacts/import/execute",
                json={
                    "rows": [{"Email": f"addr.{t}@example.com", **address}],
                    "columnMapping": [
                        {"sourceColumn": "Email", "targetFieldSlug": "email"},
                        {"sourceColumn": "Street Address", "targetFieldSlug": "address", "addressPart": "street"},
                        {"sourceColumn": "City", "targetFieldSlug": "address", "addressPart": "city"},
                        {"sourceColumn": "State", "targetFieldSlug": "address", "addressPart": "state"},
                        {"sourceColumn": "Postal Code", "targetFieldSlug": "address", "addressPart": "zip"},
                    ],
                    "staticValues": {"source": "coherence"},
                    "skipValidation": False,
                },
            )
        )
        assert located["successRows"] == 1, located
        columns = "c.address_street, c.address_city, c.address_state, c.address_zip, c.source"
        assert stored(service, [f"addr.{t}@example.com"], columns)[f"addr.{t}@example.com"] == (*address.values(), "coherence")


def test_the_documented_error_codes(service, tmp_path):
    with coherence(service, "acme-admin") as http:
        parse = "/v1/modules/contacts/import/parse"
        failure(http.post(parse, files={"other": ("contacts.csv", b"a\n1\n")}), 400, "No file uploaded")
        failure(http.post(parse, content=b"email\n", headers={"content-type": "text/csv"}), 400, "No file uploaded")
        failure(http.post(parse, files={"file": ("", b"")}), 400, "No file uploaded")
        failure(http.post(parse, files={"file": ("contacts.json", b'[{"a": 1}]', "application/json")}), 400, "Unsupported file type")
        failure(http.post(parse, files={"file": ("contacts.txt", b"a\n1\n", "text/plain")}), 400, "Unsupported file type")
        failure(http.post("/v1/modules/nope/import/parse", files={"file": ("c.csv", b"a\n1\n")}), 404, "Module not found")
        for path in ("suggest-mapping", "validate", "execute"):
            failure(http.post(f"/v1/modules/nope/import/{path}", json={"sourceColumns": ["a"]}), 404, "Module not found")
        failure(http.get("/v1/modules/nope/import/jobs"), 404, "Module not found")
        failure(http.post("/v1/modules/nope/export", json={"format": "csv"}), 404, "Module not found")
        failure(http.get(f"/v1/modules/contacts/import/jobs/{uuid.uuid4()}"), 404, "Import job not found")
        failure(http.get("/v1/modules/contacts/import/jobs/job_abc123"), 404, "Import job not found")
        failure(http.delete(f"/v1/modules/contacts/import/jobs/{uuid.uuid4()}"), 404, "Import job not found")
        failure(http.get(f"/v1/export-jobs/{uuid.uuid4()}"), 404, "Export job not found")
        failure(http.post("/v1/reports/rpt_abc123/export", json={"format": "pdf"}), 404, "Report not found")
        job_id = success(
            http.post(
                "/v1/modules/contacts/import/execute",
                json={
                    "rows": [{"Email": f"mod.{tag()}@example.com"}],
                    "columnMapping": [{"sourceColumn": "Email", "targetFieldSlug": "email"}],
                },
            )
        )["importJobId"]
        failure(http.get(f"/v1/modules/accounts/import/jobs/{job_id}"), 404, "Import job not found")  # another module's job

        invalid = failure(
            http.post(
                "/v1/modules/contacts/import/execute",
                json={"rows": [{"a": 1}], "columnMapping": [{"sourceColumn": "a", "targetFieldSlug": "nope"}], "duplicateStrategy": "x"},
            ),
            422,
        )
        assert {d["field"] for d in invalid["details"]} == {"duplicateStrategy"}
        invalid = failure(
            http.post(
                "/v1/modules/contacts/import/execute",
                json={
                    "rows": [{"a": 1}],
                    "columnMapping": [{"sourceColumn": "a", "targetFieldSlug": "nope"}],
                    "duplicateMatchFields": ["zz"],
                },
            ),
            422,
        )
        assert {d["field"] for d in invalid["details"]} == {"columnMapping[0].targetFieldSlug", "duplicateMatchFields[0]"}
        assert {d["field"] for d in failure(http.post("/v1/modules/contacts/import/validate", json={}), 422)["details"]} == {"rows"}
        failure(http.get("/v1/modules/contacts/import/jobs", params={"limit": 101}), 422)
        failure(http.get("/v1/export-jobs", params={"limit": 0}), 422)
        config = {"columns": ["email", "nope"], "sortField": "zz", "limit": 100_001}
        assert {
            d["field"] for d in failure(http.post("/v1/modules/contacts/export", json={"format": "xml", "config": config}), 422)["details"]
        } == {
            "format",
            "config.limit",
        }
        config = {"columns": ["email", "nope"], "sortField": "zz"}
        details = failure(http.post("/v1/modules/contacts/export", json={"format": "csv", "config": config}), 422)["details"]
        assert {d["field"] for d in details} == {"config.columns[1]", "config.sortField"}

    with coherence(service, "acme-viewer") as viewer:
        for response in (
            viewer.post("/v1/modules/contacts/import/parse", files={"file": ("c.csv", b"a\n1\n")}),
            viewer.post("/v1/modules/contacts/import/execute", json={"rows": [{"a": 1}]}),
            viewer.delete(f"/v1/modules/contacts/import/jobs/{job_id}"),
            viewer.post("/v1/modules/contacts/export", json={"format": "csv"}),
        ):
            assert "needs admin" in failure(response, 403, "Access denied")["details"][0]["reason"]
        assert success(viewer.get(f"/v1/modules/contacts/import/jobs/{job_id}"))["status"] == "completed"  # but reads jobs
    failure(httpx.get(f"{service.url}{BASE}/v1/export-jobs", timeout=30), 401)

    env = ferry_env(service.env["PREFECT_API_URL"], service.data_dir, service.store_url, FERRY_API_MAX_UPLOAD_BYTES="2000")
    process, url = start_api(tmp_path, env, name="ferry-api-coherence-small")
    try:
        with coherence(service, "acme-admin", base=url) as small:
            big = b"email\n" + b"".join(f"big-{n}@example.com\n".encode() for n in range(200))
            failure(small.post("/v1/modules/contacts/import/parse", files={"file": ("big.csv", big)}), 400, "File too large")
            failure(
                small.post("/v1/modules/contacts/import/validate", json={"rows": [{"email": f"r{n}@example.com"} for n in range(200)]}),
                400,
                "File too large",
            )
    finally:
        process.stop()


def acme_contacts(service) -> list[tuple]:
    query = text(
        "SELECT c.full_name, c.email, c.created_at FROM contacts c JOIN workspaces w ON w.id = c.workspace_id "
        "WHERE w.slug = 'acme' ORDER BY c.created_at DESC, c.id"
    )
    with service.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


def test_the_documented_module_export_in_the_response(service):
    body = {
        "format": "csv",
        "config": {
            "columns": ["displayName", "email", "phone", "createdDateTime"],
            "includeHeaders": True,
            "sortField": "createdDateTime",
            "sortDirection": "desc",
            "limit": 1000,
        },
    }
    with coherence(service, "acme-admin") as http:
        expected = acme_contacts(service)
        answer = http.post("/v1/modules/contacts/export", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "text/csv; charset=utf-8"
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        assert answer.headers["content-disposition"] == f'attachment; filename="contacts-export-{today}.csv"'
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        assert list(rows[0]) == ["Full name", "E-mail", "Phone (mobile)", "Phone (work)", "Phone (home)", "Phone (fax)", "Created at"]
        assert len(rows) == len(expected)
        assert sorted(r["E-mail"] for r in rows) == sorted(e for _, e, _ in expected)
        stamps = [r["Created at"] for r in rows]
        assert stamps == sorted(stamps, reverse=True)

        labelled = http.post(
            "/v1/modules/contacts/export",
            json={
                "format": "csv",
                "config": {"columns": ["email"], "columnLabels": {"email": "Work e-mail"}, "includeHeaders": False, "limit": 3},
            },
        )
        assert labelled.status_code == 200 and len(labelled.text.splitlines()) == 3 and "@" in labelled.text.splitlines()[0]
        dated = http.post(
            "/v1/modules/contacts/export",
            json={
                "format": "csv",
                "config": {"columns": ["email", "createdDateTime"], "columnLabels": {"email": "Mail"}, "dateFormat": "YYYY-MM-DD"},
            },
        )
        first = next(csv.DictReader(io.StringIO(dated.text)))
        assert set(first) == {"Mail", "Created at"} and re.fullmatch(r"\d{4}-\d\d-\d\d", first["Created at"])
        default = next(csv.DictReader(io.StringIO(http.post("/v1/modules/contacts/export", json={"format": "csv"}).text)))
        assert list(default) == ["Full name", "Owner", "Created at", "Updated at"]  # name, owner, dates

        pdf = http.post(
            "/v1/modules/contacts/export", json={"format": "pdf", "config": {"title": "All contacts", "description": "For review"}}
        )
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert pdf.headers["content-disposition"] == f'attachment; filename="contacts-export-{today}.pdf"'
        page = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
        assert "All contacts" in page and "For review" in page and "Full name" in page


def test_the_documented_report_export(service):
    with service.client("acme-admin") as native:
        report = native.post(
            "/v1/reports",
            json={"name": f"Sales {tag()}", "resource": "contacts", "fields": ["email", "lifecycle_stage"], "title": "Own title"},
        ).json()
    with coherence(service, "acme-admin") as http:
        body = {"format": "pdf", "config": {"title": "Q4 Sales Report", "description": "Generated for quarterly review"}}
        answer = http.post(f"/v1/reports/{report['id']}/export", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/pdf" and "filename=" in answer.headers["content-disposition"]
        page = PdfReader(io.BytesIO(answer.content)).pages[0].extract_text()
        assert "Q4 Sales Report" in page and "Generated for quarterly review" in page
        as_csv = http.post(f"/v1/reports/{report['id']}/export", json={"format": "csv"})
        rows = list(csv.reader(io.StringIO(as_csv.text)))
        assert rows[0] == ["email", "lifecycle_stage"] and len(rows) - 1 == len(acme_contacts(service))
        refused = failure(http.post(f"/v1/reports/{report['id']}/export", json={"format": "csv", "config": {"columns": ["email"]}}), 422)
        assert [d["field"] for d in refused["details"]] == ["config.columns"]


def finished(http: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        job = success(http.get(f"/v1/export-jobs/{job_id}"))
        if job["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(1)


@pytest.fixture(scope="module")
def small_sync_api(service, tmp_path_factory):
    """An API that answers at most 5 rows in the response: larger exports become export jobs."""
    env = ferry_env(service.env["PREFECT_API_URL"], service.data_dir, service.store_url, FERRY_API_SYNC_MAX_ROWS="5")
    process, url = start_api(tmp_path_factory.mktemp("coherence-jobs"), env, name="ferry-api-coherence-jobs")
    yield url
    process.stop()


def test_large_exports_become_export_jobs(service, small_sync_api):
    with coherence(service, "acme-admin", base=small_sync_api) as http:
        started = http.post("/v1/modules/contacts/export", json={"format": "csv", "config": {"columns": ["email"], "limit": 50}})
        job = success(started, 202)
        check(job, EXPORT_JOB_FIELDS)
        assert started.headers["Location"] == f"{BASE}/v1/export-jobs/{job['exportJobId']}"
        assert (job["sourceType"], job["sourceId"], job["format"], job["contentType"]) == ("module", "contacts", "csv", "text/csv")
        assert job["status"] in ("pending", "processing", "completed")
        done = finished(http, job["exportJobId"])
        check(done, EXPORT_JOB_FIELDS)
        assert done["status"] == "completed" and done["progress"] == 100, done
        assert done["fileName"].startswith("contacts-export-") and done["fileName"].endswith(".csv") and done["fileSizeBytes"] > 0
        completed = datetime.fromisoformat(done["completedDateTime"].replace("Z", "+00:00"))
        assert datetime.fromisoformat(done["expiresDateTime"].replace("Z", "+00:00")) - completed == timedelta(hours=24)
        assert ISO.fullmatch(done["requestedDateTime"])
        rows = list(csv.reader(io.StringIO(httpx.get(done["fileUrl"], timeout=60).text)))
        assert rows[0] == ["E-mail"] and len(rows) == 51

        small = http.post("/v1/modules/contacts/export", json={"format": "csv", "config": {"limit": 5}})
        assert small.status_code == 200 and small.headers["content-type"].startswith("text/csv")

        with service.client("acme-admin") as native:
            report = native.post("/v1/reports", json={"name": f"Big {tag()}", "resource": "contacts", "fields": ["email"]}).json()
        report_job = success(http.post(f"/v1/reports/{report['id']}/export", json={"format": "csv"}), 202)
        assert (report_job["sourceType"], report_job["sourceId"]) == ("report", report["id"])

        listed = http.get("/v1/export-jobs", params={"limit": 25})
        assert listed.status_code == 200 and isinstance(listed.json()["jobs"], list)
        jobs = {j["exportJobId"]: j for j in listed.json()["jobs"]}
        assert job["exportJobId"] in jobs and report_job["exportJobId"] in jobs and len(jobs) <= 25
        for j in jobs.values():
            check(j, EXPORT_JOB_FIELDS)
        assert small.headers["x-ferry-run-id"] not in jobs  # answered in its response: no job
    with coherence(service, "acme-viewer", base=small_sync_api) as viewer:
        seen = success(viewer.get(f"/v1/export-jobs/{job['exportJobId']}"))
        assert seen["status"] == "completed" and seen["fileUrl"] is None  # file URLs are for admin keys


def test_another_workspace_sees_nothing(service, small_sync_api):
    with coherence(service, "acme-admin", base=small_sync_api) as http:
        parsed = success(http.post("/v1/modules/contacts/import/parse", files={"file": ("contacts.csv", contacts_csv(tag()))}))
        job_id = success(
            http.post(
                "/v1/modules/contacts/import/execute",
                json={"fileId": parsed["fileId"], "columnMapping": [{"sourceColumn": "Email", "targetFieldSlug": "email"}]},
            )
        )["importJobId"]
        export_id = success(http.post("/v1/modules/contacts/export", json={"format": "csv", "config": {"columns": ["email"]}}), 202)[
            "exportJobId"
        ]
    with service.client("acme-admin") as native:
        report = native.post("/v1/reports", json={"name": f"Mine {tag()}", "resource": "contacts"}).json()
    with coherence(service, "globex-admin", base=small_sync_api) as other:
        failure(other.get(f"/v1/modules/contacts/import/jobs/{job_id}"), 404, "Import job not found")
        failure(other.delete(f"/v1/modules/contacts/import/jobs/{job_id}"), 404, "Import job not found")
        assert job_id not in {j["importJobId"] for j in success(other.get("/v1/modules/contacts/import/jobs"))}
        failure(other.get(f"/v1/export-jobs/{export_id}"), 404, "Export job not found")
        assert export_id not in {j["exportJobId"] for j in other.get("/v1/export-jobs").json()["jobs"]}
        failure(other.post(f"/v1/reports/{report['id']}/export", json={"format": "csv"}), 404, "Report not found")
        failure(other.post("/v1/modules/contacts/import/validate", json={"fileId": parsed["fileId"]}), 404)
        failure(other.post("/v1/modules/contacts/import/suggest-mapping", json={"fileId": parsed["fileId"]}), 404)
    with service.client("acme-admin") as native:  # the same runs, natively
        assert native.get(f"/v1/runs/{job_id}").json()["kind"] == "import"
        events = [e for e in native.get("/v1/audit-events").json()["events"] if e["runId"] in (job_id, export_id)]
        started = [e for e in events if e["action"] in ("api.import.sync", "api.export.start")]
        assert {e["action"] for e in started} == {"api.import.sync", "api.export.start"}
        assert all(e["details"]["adapter"] == "coherence" for e in started)


def test_more_than_5000_rows_stream_as_a_job_with_processed_rows(service):
    """The table's second mode: 5,001 inline rows answer at once (``stream``); the job's processedRows reach totalRows."""
    t = tag()
    rows = [{"Name": f"Stream {n}", "Email": f"stream.{t}.{n}@example.com"} for n in range(5_001)]
    mapping = [{"sourceColumn": "Name", "targetFieldSlug": "displayName"}, {"sourceColumn": "Email", "targetFieldSlug": "email"}]
    with coherence(service, "acme-admin") as http:
        started = http.post("/v1/modules/contacts/import/execute", json={"rows": rows, "columnMapping": mapping})
        assert started.status_code in (200, 202), started.text
        data = started.json()["data"]
        assert data["processingMode"] == "stream" and data["status"] in ("pending", "processing")
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            job = success(http.get(f"/v1/modules/contacts/import/jobs/{data['importJobId']}"))
            if job["status"] in ("completed", "failed") or time.monotonic() > deadline:
                break
            assert 0 <= job["processedRows"] <= job["totalRows"]
            time.sleep(1)
    check(job, JOB_FIELDS)
    assert job["status"] == "completed" and job["processingMode"] == "stream", job
    assert job["totalRows"] == job["processedRows"] == job["successRows"] == 5_001
    emails = [r["Email"] for r in rows]
    assert len(stored(service, emails)) == 5_001
