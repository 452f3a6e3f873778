"""``/v1/reports`` against the live service (see conftest.py): CRUD, roles, every problem at once, export to CSV and PDF, isolation."""

from __future__ import annotations

import csv
import io
import uuid

import httpx
from pypdf import PdfReader
from sqlalchemy import text

RUN_TIMEOUT = 240
REPORT_FIELDS = {
    "id": str,
    "workspace": str,
    "name": str,
    "resource": str,
    "fields": (list, type(None)),
    "labels": dict,
    "filters": list,
    "sort": (dict, type(None)),
    "title": (str, type(None)),
    "description": (str, type(None)),
    "createdAt": str,
    "updatedAt": str,
}


def problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


def customers(service, workspace: str = "acme") -> list[str]:
    query = text(
        "SELECT c.email FROM contacts c JOIN workspaces w ON w.id = c.workspace_id "
        "WHERE w.slug = :ws AND c.lifecycle_stage = 'customer' ORDER BY c.email DESC"
    )
    with service.engine.connect() as conn:
        return [row[0] for row in conn.execute(query, {"ws": workspace})]


def definition(**overrides) -> dict:
    return {
        "name": f"Customers {uuid.uuid4().hex[:8]}",
        "resource": "contacts",
        "fields": ["email", "first_name", "lifecycle_stage"],
        "labels": {"email": "E-mail address"},
        "filters": [{"field": "lifecycle_stage", "op": "eq", "value": "customer"}],
        "sort": "email:desc",
        "title": "Q4 customers",
        "description": "Every customer, for the quarterly review.",
        **overrides,
    }


def test_crud_and_roles(service):
    body = definition()
    with service.client("acme-operator") as operator:  # operators write reports
        created = operator.post("/v1/reports", json=body)
        assert created.status_code == 201, created.text
        report = created.json()
        assert set(report) == set(REPORT_FIELDS)
        for name, kind in REPORT_FIELDS.items():
            assert isinstance(report[name], kind), (name, report[name])
        assert created.headers["Location"] == f"/v1/reports/{report['id']}" and report["id"].startswith("rpt_")
        assert report["workspace"] == "acme" and report["sort"] == {"field": "email", "direction": "desc"}

        assert operator.get(f"/v1/reports/{report['id']}").json() == report
        assert report in operator.get("/v1/reports").json()["reports"]

        changed = {**report, "fields": ["email", "first_name"], "description": "Shorter."}  # a GET's body, sent back changed
        replaced = operator.put(f"/v1/reports/{report['id']}", json=changed)
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["fields"] == ["email", "first_name"] and replaced.json()["createdAt"] == report["createdAt"]
        snake = operator.put(f"/v1/reports/{report['id']}", json={"name": body["name"], "resource": "contacts", "created_at": "x"})
        assert snake.status_code == 200 and snake.json()["fields"] is None  # snake_case accepted, read-only fields ignored

        assert "exports.create needs admin" in problem(operator.post(f"/v1/reports/{report['id']}/export", json={}), 403)["detail"]

    with service.client("acme-viewer") as viewer:  # viewers read
        assert viewer.get(f"/v1/reports/{report['id']}").status_code == 200
        assert any(r["id"] == report["id"] for r in viewer.get("/v1/reports").json()["reports"])
        assert "reports.write needs operator" in problem(viewer.post("/v1/reports", json=definition()), 403)["detail"]
        problem(viewer.put(f"/v1/reports/{report['id']}", json=body), 403)
        problem(viewer.delete(f"/v1/reports/{report['id']}"), 403)

    with service.client("acme-admin") as admin:
        deleted = admin.delete(f"/v1/reports/{report['id']}")
        assert deleted.status_code == 204 and deleted.content == b""
        problem(admin.get(f"/v1/reports/{report['id']}"), 404)
        problem(admin.delete(f"/v1/reports/{report['id']}"), 404)
        actions = {(e["action"], e["details"].get("reportId")) for e in admin.get("/v1/audit-events").json()["events"]}
        assert {("api.report.create", report["id"]), ("api.report.update", report["id"]), ("api.report.delete", report["id"])} <= actions


def test_every_problem_at_once(service):
    with service.client("acme-admin") as http:
        taken = http.post("/v1/reports", json=definition()).json()
        bad = {
            "name": taken["name"],
            "resource": "contacts",
            "fields": ["email", "nope"],
            "filters": [{"field": "zz", "op": "eq", "value": 1}],
            "sort": "qq",
            "bogus": 1,
        }
        errors = problem(http.post("/v1/reports", json=bad), 422)["errors"]
        assert {e["field"] for e in errors} == {"name", "fields[1]", "filters[0].field", "sort.field", "bogus"}
        assert {e["field"] for e in problem(http.post("/v1/reports", json={"resource": "nope"}), 422)["errors"]} == {"name"}
        assert {e["field"] for e in problem(http.post("/v1/reports", json={"name": "x", "resource": "nope"}), 422)["errors"]} == {
            "resource"
        }
        exported = http.post(f"/v1/reports/{taken['id']}/export", json={"format": "docx", "colour": "red"})
        assert {e["field"] for e in problem(exported, 422)["errors"]} == {"format", "colour"}
        problem(http.post("/v1/reports", content=b"name=x", headers={"content-type": "text/plain"}), 415)
        problem(http.post(f"/v1/reports/{taken['id']}/export", content=b"{", headers={"content-type": "application/json"}), 400)


def test_export_to_csv_as_a_run_and_in_the_response(service):
    expected = customers(service)
    assert expected  # the seed has customers
    with service.client("acme-admin") as http:
        report = http.post("/v1/reports", json=definition()).json()

        started = http.post(f"/v1/reports/{report['id']}/export", json={"format": "csv"})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        assert started.headers["Location"] == f"/v1/runs/{run_id}" and started.json()["links"]["report"] == f"/v1/reports/{report['id']}"
        run = service.poll(http, run_id, RUN_TIMEOUT)
        assert run["status"] == "succeeded" and run["kind"] == "export" and run["recordCount"] == len(expected), run
        link = http.get(f"/v1/runs/{run_id}/download", params={"redirect": "false"}).json()
        rows = list(csv.reader(io.StringIO(httpx.get(link["url"], timeout=60).text)))
        assert rows[0] == ["E-mail address", "first_name", "lifecycle_stage"]
        assert [r[0] for r in rows[1:]] == expected and {r[2] for r in rows[1:]} == {"customer"}

        sync = http.post(f"/v1/reports/{report['id']}/export", json={"format": "csv", "delimiter": ";"}, headers={"Prefer": "respond=sync"})
        assert sync.status_code == 200, sync.text
        assert sync.headers["Preference-Applied"] == "respond=sync" and sync.headers["content-type"].startswith("text/csv")
        assert "attachment" in sync.headers["content-disposition"] and ".csv" in sync.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(sync.text), delimiter=";"))
        assert rows[0][0] == "E-mail address" and [r[0] for r in rows[1:]] == expected
        events = [e for e in http.get("/v1/audit-events").json()["events"] if e["details"].get("reportId") == report["id"]]
        assert {"api.export.start", "api.export.sync"} <= {e["action"] for e in events}
        assert any(e["runId"] == run_id for e in events)


def test_export_to_pdf_carries_title_and_description(service):
    expected = customers(service)
    with service.client("acme-admin") as http:
        report = http.post("/v1/reports", json=definition()).json()
        answer = http.post(f"/v1/reports/{report['id']}/export", json={"format": "pdf"}, headers={"Prefer": "respond=sync"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/pdf"
        pages = [p.extract_text() for p in PdfReader(io.BytesIO(answer.content)).pages]
        assert "Q4 customers" in pages[0] and "Every customer, for the quarterly review." in pages[0]
        assert "E-mail address" in pages[0] and expected[0] in pages[0]

        other = http.post(
            f"/v1/reports/{report['id']}/export",
            json={"format": "pdf", "title": "Q4 Sales Report", "description": "Generated for quarterly review"},
            headers={"Prefer": "respond=sync"},
        )
        text_ = PdfReader(io.BytesIO(other.content)).pages[0].extract_text()
        assert "Q4 Sales Report" in text_ and "Generated for quarterly review" in text_  # overridden for one export
        assert http.get(f"/v1/reports/{report['id']}").json()["title"] == "Q4 customers"  # the report is unchanged


def test_another_workspace_sees_nothing(service):
    with service.client("acme-admin") as http:
        report = http.post("/v1/reports", json=definition()).json()
    with service.client("globex-admin") as other:
        for response in (
            other.get(f"/v1/reports/{report['id']}"),
            other.put(f"/v1/reports/{report['id']}", json=definition()),
            other.delete(f"/v1/reports/{report['id']}"),
            other.post(f"/v1/reports/{report['id']}/export", json={"format": "csv"}),
        ):
            assert "acme" not in problem(response, 404)["detail"]
        assert report["id"] not in {r["id"] for r in other.get("/v1/reports").json()["reports"]}
        assert "No workspace 'acme'" in problem(other.post("/v1/reports", json={**definition(), "workspace": "acme"}), 404)["detail"]
        same_name = other.post("/v1/reports", json={**definition(), "name": report["name"]})  # names are per workspace
        assert same_name.status_code == 201 and same_name.json()["workspace"] == "globex"
    with service.client("acme-admin") as http:
        assert http.get(f"/v1/reports/{report['id']}").json() == report
