"""Imports from remote sources: an http(s) URL (SSRF guard, allow-list) and a saved SFTP block, with notices."""

from __future__ import annotations

import json
import uuid

import pytest
from servers.sftp import sftp_block
from typer.testing import CliRunner

from blocks.webhook import Webhook
from cli.main import app
from ferry.import_params import ImportRequest
from ferry.runs import run_result
from ferry.settings import reload_settings
from flows.import_ import import_data

CSV = b"Email,First Name\nada@example.com,Ada\nalan@example.com,Alan\n"
MAPPING = [{"sourceColumn": "Email", "targetFieldSlug": "email"}, {"sourceColumn": "First Name", "targetFieldSlug": "first_name"}]
sqlite_only = pytest.mark.parametrize("import_store", ["sqlite"], indirect=True)


@pytest.fixture
def allow_loopback(monkeypatch):
    monkeypatch.setenv("FERRY_IMPORT_URL_ALLOW", "127.0.0.1/32")
    reload_settings()
    yield
    monkeypatch.delenv("FERRY_IMPORT_URL_ALLOW")
    reload_settings()


@sqlite_only
def test_cli_imports_an_allowed_url_and_notifies(istore, allow_loopback, httpserver_ipv4, tmp_path):
    httpserver_ipv4.expect_request("/exports/contacts.csv").respond_with_data(CSV, content_type="text/csv")
    httpserver_ipv4.expect_request("/done", method="POST").respond_with_data("ok")
    hook = f"import-hook-{uuid.uuid4().hex[:6]}"
    Webhook(url=httpserver_ipv4.url_for("/done"), secret="k").save(hook)
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    ws = istore.workspace()

    result = CliRunner().invoke(
        app,
        [
            "import",
            "run",
            httpserver_ipv4.url_for("/exports/contacts.csv?signature=Url-Token-5"),
            "--resource",
            "contacts",
            "--workspace",
            ws,
            "--mapping",
            str(mapping),
            "--notify-webhook",
            hook,
            "--json",
        ],
    )

    assert result.exit_code == 0, result.output
    record, _ = json.JSONDecoder().raw_decode(result.output[result.output.index('{\n  "run_id"') :])
    assert record["status"] == "success" and record["created_rows"] == 2
    assert record["source"] == httpserver_ipv4.url_for("/exports/contacts.csv").split("?")[0]
    assert "Url-Token-5" not in result.output.split('"run_id"', 1)[1]
    from prefect import get_client

    with get_client(sync_client=True) as client:  # the token never reached the run's parameters; its sealed copy is gone
        source = client.read_flow_run(record["run_id"]).parameters["request"]["source"]
        assert "Url-Token-5" not in source and "?ferry-sealed=ferry-url-" in source
        sealed = source.split("ferry-sealed=")[1]
        assert not [b for b in client.read_block_documents() if b.name == sealed]
    result = CliRunner().invoke(
        app, ["import", "run", "https://ann:hunter2@example.com/x.csv", "--resource", "contacts", "--workspace", ws, "--auto-map"]
    )
    assert result.exit_code == 2 and "carries a user name or password" in result.stderr and "hunter2" not in result.output
    notice = json.loads([r for r, _ in httpserver_ipv4.log if r.path == "/done"][0].get_data())
    assert notice["event"] == "import.success" and notice["record"]["created_rows"] == 2
    assert istore.count("contacts", ws) == 2


@sqlite_only
def test_url_import_to_loopback_is_refused_without_the_allow_list(istore, httpserver_ipv4):
    httpserver_ipv4.expect_request("/contacts.csv").respond_with_data(CSV)

    state = import_data(
        ImportRequest(source=httpserver_ipv4.url_for("/contacts.csv"), resource="contacts", workspace=istore.workspace(), mapping=MAPPING),
        return_state=True,
    )
    record = run_result(state)

    assert state.is_failed() and record.status == "failed"
    assert "loopback address" in record.error and "FERRY_IMPORT_URL_ALLOW" in record.error
    assert httpserver_ipv4.log == []


@sqlite_only
def test_import_reads_through_a_saved_sftp_block(istore, sftp_server):
    folder, name = f"in-{uuid.uuid4().hex[:6]}", f"import-sftp-{uuid.uuid4().hex[:6]}"
    (sftp_server.root / folder).mkdir()
    (sftp_server.root / folder / "contacts.csv").write_bytes(CSV)
    sftp_block(sftp_server, folder=folder).save(name)
    ws = istore.workspace()

    state = import_data(
        ImportRequest(source=f"sftp://{name}/contacts.csv", resource="contacts", workspace=ws, mapping=MAPPING), return_state=True
    )
    record = run_result(state)

    assert state.is_completed(), record.error
    assert record.created_rows == 2 and record.source == f"sftp://{name}/contacts.csv"
    assert istore.count("contacts", ws) == 2


@sqlite_only
def test_unknown_source_schemes_are_parameter_problems(istore):
    state = import_data(
        ImportRequest(source="gopher://x/contacts.csv", resource="contacts", workspace=istore.workspace(), mapping=MAPPING),
        return_state=True,
    )
    record = run_result(state)
    assert state.is_failed() and "no block reads gopher:// sources" in record.error


@sqlite_only
def test_an_ftp_source_naming_no_saved_block_says_how_to_create_one(istore):
    state = import_data(
        ImportRequest(source="ftp://no-such-block/contacts.csv", resource="contacts", workspace=istore.workspace(), mapping=MAPPING),
        return_state=True,
    )
    record = run_result(state)
    assert state.is_failed() and "No saved ftp block named or pointing at 'no-such-block'" in record.error
    assert "ferry blocks create" in record.error and "PrefectHTTPStatusError" not in record.error and "block_types" not in record.error


@sqlite_only
def test_a_block_type_this_server_never_registered_is_no_saved_block(istore):
    """Prefect answers 404 for an unknown block type: that is 'no such block', not an HTTP error to show."""
    from prefect.blocks.core import Block

    from blocks.sources import _saved_block

    class NeverRegistered(Block):
        _block_type_slug = f"ferry-test-never-registered-{uuid.uuid4().hex[:8]}"
        host: str = "x"

    assert _saved_block(NeverRegistered, "anything") is None
