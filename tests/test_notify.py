"""Notifications of export runs (SMTP via aiosmtpd, webhook via a local HTTP receiver), and the secrets audit.

The secrets test runs real exports through blocks holding passwords, keys and
signing secrets (one run succeeds, one fails at the SFTP login) and then greps
everything Prefect kept about those runs - logs, artifacts, parameters, state
messages, results - and the notices sent, for every secret.
"""

from __future__ import annotations

import json
import logging
import re
import uuid

import pytest
from servers.sftp import sftp_block

from blocks.smtp import SmtpServer
from blocks.webhook import Webhook
from ferry.errors import ParameterError
from ferry.params import ExportRequest, parse_request
from ferry.runs import run_result
from flows.export import export_data
from tasks.notify import email_text, summary

sqlite_only = pytest.mark.parametrize("seeded_store", ["sqlite"], indirect=True)  # notices do not depend on the backend

WEBHOOK_SECRET = "whsec-Notify-Secret-55"


def smtp_block(server, **overrides) -> SmtpServer:
    values = dict(
        smtp_server=server.host,
        smtp_port=server.port,
        smtp_type="STARTTLS",
        username=server.username,
        password=server.password,
        ca_file=server.ca_file,
        sender="Ferry <ferry@example.com>",
        timeout=10,
    )
    return SmtpServer(**{**values, **overrides})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def run(tmp_path, **params):
    request = ExportRequest(workspace="acme", resource="contacts", fields=["email", "first_name"], limit=20, **params)
    state = export_data(request, return_state=True)
    return state, run_result(state)


@sqlite_only
def test_success_is_mailed_and_posted_with_the_run_record(store, smtp_server, mailbox, httpserver_ipv4, tmp_path):
    smtp_name, hook_name = unique("smtp"), unique("hook")
    smtp_block(smtp_server).save(smtp_name)
    Webhook(url=httpserver_ipv4.url_for("/notices"), secret=WEBHOOK_SECRET, backoff_seconds=0.01).save(hook_name)
    httpserver_ipv4.expect_request("/notices", method="POST").respond_with_data("ok")

    state, record = run(
        tmp_path,
        destination=str(tmp_path),
        notify_email="ops@example.com, owner@example.com",
        notify_smtp=f"smtp-server/{smtp_name}",
        notify_webhook=f"webhook/{hook_name}",
    )

    assert state.is_completed() and record.status == "success"
    [(sender, recipients, message)] = mailbox.messages
    assert sender == "ferry@example.com" and recipients == ["ops@example.com", "owner@example.com"]
    assert message["Subject"] == "Ferry export succeeded: contacts of workspace acme (20 records)"
    body = message.get_payload(decode=True).decode()
    for expected in (record.destination_path, record.sha256, record.run_id):
        assert expected in body
    assert re.search(r"record count +20\r?\n", body)
    request, _ = httpserver_ipv4.log[0]
    notice = json.loads(request.get_data())
    assert notice["event"] == "export.success"
    assert notice["record"]["record_count"] == 20 and notice["record"]["destination_path"] == record.destination_path
    assert request.headers["X-Ferry-Signature"].startswith("t=")


@sqlite_only
def test_failure_is_notified_with_the_error(store, smtp_server, mailbox, tmp_path):
    smtp_name = unique("smtp")
    smtp_block(smtp_server).save(smtp_name)

    state, record = run(tmp_path, destination=str(tmp_path), filename="{nope}.csv", notify_email="ops@example.com", notify_smtp=smtp_name)

    assert state.is_failed()
    [(_, _, message)] = mailbox.messages
    assert message["Subject"] == "Ferry export FAILED: contacts of workspace acme"
    assert "unknown placeholder {nope}" in message.get_payload(decode=True).decode()


@sqlite_only
def test_a_failing_notice_does_not_fail_the_export(store, httpserver_ipv4, tmp_path, caplog):
    hook_name = unique("hook")
    Webhook(url=httpserver_ipv4.url_for("/notices"), secret=WEBHOOK_SECRET).save(hook_name)
    httpserver_ipv4.expect_request("/notices").respond_with_data("nope", status=400)

    with caplog.at_level(logging.WARNING):
        state, record = run(tmp_path, destination=str(tmp_path), notify_webhook=hook_name)

    assert state.is_completed() and record.status == "success"
    assert len(httpserver_ipv4.log) == 1
    assert "Could not send the export notice by webhook" in caplog.text and "HTTP 400" in caplog.text


@sqlite_only
def test_prefect_email_credentials_block_can_send_notices(store, plain_smtp_server, tmp_path):
    from prefect_email import EmailServerCredentials

    name = unique("relay")
    EmailServerCredentials(smtp_server=plain_smtp_server.host, smtp_port=plain_smtp_server.port, smtp_type="INSECURE").save(name)
    plain_smtp_server.mailbox.messages.clear()

    state, _ = run(tmp_path, destination=str(tmp_path), notify_email="ops@example.com", notify_smtp=f"email-server-credentials/{name}")

    assert state.is_completed()
    assert [m[1] for m in plain_smtp_server.mailbox.messages] == [["ops@example.com"]]


@sqlite_only
def test_notification_parameters_are_checked_up_front(store):
    with pytest.raises(ParameterError) as caught:
        parse_request(
            {
                "workspace": "acme",
                "resource": "contacts",
                "notify_email": "ops@example.com, not-an-address",
                "notify_webhook": "s3-bucket/x",
                "notify_smtp": "Bad Name",
            }
        )
    text = str(caught.value)
    assert "notify_email='not-an-address': is not an e-mail address" in text
    assert "notify_webhook='s3-bucket/x'" in text and "notify_smtp='Bad Name'" in text
    with pytest.raises(ParameterError, match="no SMTP block"):
        parse_request({"workspace": "acme", "resource": "contacts", "notify_email": "ops@example.com"})


def test_smtp_login_over_plain_text_is_refused(plain_smtp_server):
    from blocks.smtp import send_email
    from ferry.errors import NotificationError

    block = SmtpServer(
        smtp_server=plain_smtp_server.host,
        smtp_port=plain_smtp_server.port,
        smtp_type="INSECURE",
        username="u",
        password="Plain-Text-Pw",
        sender="f@example.com",
    )
    with pytest.raises(NotificationError, match="refusing to send the SMTP password") as caught:
        send_email(block, ["a@example.com"], "s", "t")
    assert "Plain-Text-Pw" not in str(caught.value)


def test_notices_leave_out_lists_and_signed_url_queries():
    from ferry.records import ImportRecord

    record = ImportRecord(
        run_id="r1",
        status="failed",
        resource="contacts",
        workspace="acme",
        source="https://h/x.csv?X-Amz-Signature=abc",
        errors=[{"row": 2, "field": "email", "value": "secret@customer.example", "error": "bad"}],
        started_at="2026-01-01T00:00:00Z",
        error="boom",
    )
    facts = summary(record)
    assert facts["source"] == "https://h/x.csv"
    assert "errors" not in facts and "customer.example" not in json.dumps(facts)
    subject, text = email_text("import", facts)
    assert subject == "Ferry import FAILED: contacts of workspace acme" and "boom" in text


@sqlite_only
def test_secrets_never_reach_logs_artifacts_results_or_parameters(store, sftp_server, smtp_server, mailbox, httpserver_ipv4, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    sftp_name, wrong_name, smtp_name, hook_name = unique("sftp"), unique("sftp-wrong"), unique("smtp"), unique("hook")
    sftp_block(sftp_server, folder=unique("out"), key_login=True).save(sftp_name)
    sftp_block(sftp_server, password="Wrong-Sftp-Secret-77").save(wrong_name)
    smtp_block(smtp_server).save(smtp_name)
    Webhook(
        url=httpserver_ipv4.url_for(
            "/notices",
        )
        + "?token=Query-Token-31",
        secret=WEBHOOK_SECRET,
        bearer_token="Bearer-Secret-13",
    ).save(hook_name)
    httpserver_ipv4.expect_request("/notices").respond_with_data("ok")
    key_lines = [line for line in sftp_server.client_key_pem.splitlines() if line and not line.startswith("-----")]
    secrets = [
        sftp_server.password,
        "Wrong-Sftp-Secret-77",
        smtp_server.password,
        WEBHOOK_SECRET,
        "Bearer-Secret-13",
        "Query-Token-31",
        *key_lines,
    ]

    levels = {name: logging.getLogger(name).level for name in ("prefect.flow_runs", "prefect.task_runs")}
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)  # the harness keeps only warnings; look at everything here
    try:
        runs = [
            run(tmp_path, destination=f"sftp/{sftp_name}", notify_email="ops@example.com", notify_smtp=smtp_name, notify_webhook=hook_name),
            run(
                tmp_path, destination=f"sftp/{wrong_name}", notify_email="ops@example.com", notify_smtp=smtp_name, notify_webhook=hook_name
            ),
        ]
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    APILogHandler().flush()
    (ok_state, ok_record), (bad_state, bad_record) = runs
    assert ok_state.is_completed() and bad_state.is_failed()
    assert "refused the login" in bad_record.error and wrong_name in bad_record.error

    ids = [ok_state.state_details.flow_run_id, bad_state.state_details.flow_run_id]
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        flow_runs = [client.read_flow_run(i) for i in ids]
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
    assert any("Exporting contacts" in log.message for log in logs), "INFO logs were captured"
    assert artifacts, "the ledger's artifacts were found"
    haystack = "\n".join(
        [
            *(log.message for log in logs),
            *(json.dumps([a.key, a.description, a.data], default=str) for a in artifacts),
            *(json.dumps(fr.parameters, default=str) + str(fr.state.message) for fr in flow_runs),
            *(json.dumps(tr.task_inputs, default=str) + str(tr.state.message if tr.state else "") for tr in task_runs),
            ok_record.model_dump_json(),
            bad_record.model_dump_json(),
            *(m.as_string() for _, _, m in mailbox.messages),
            *(r.get_data(as_text=True) + json.dumps(dict(r.headers)) for r, _ in httpserver_ipv4.log if "Authorization" not in r.headers),
        ]
    )
    leaked = [s for s in secrets if s in haystack]
    assert not leaked, f"secrets found in run output: {leaked}"
    assert len(mailbox.messages) == 2 and len(httpserver_ipv4.log) == 2
