"""``ferry blocks`` (create, list, delete, register) and ``ferry export --dest KIND/NAME`` through a created block."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def invoke(*args: str, input: str | None = None, env: dict | None = None):
    result = runner.invoke(app, list(args), input=input, env=env)
    return result


def test_create_sftp_block_with_a_password_from_the_environment(sftp_server):
    from blocks.sftp import SftpServer

    block_name = name("partner")
    result = invoke(
        "blocks",
        "create",
        "sftp",
        block_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(sftp_server.port),
        "--username",
        sftp_server.username,
        "--password-env",
        "PARTNER_SFTP_PW",
        "--host-key",
        sftp_server.host_key_line,
        "--folder",
        "from-cli",
        env={"PARTNER_SFTP_PW": sftp_server.password},
    )

    assert result.exit_code == 0, result.output
    assert f"sftp/{block_name}" in result.output and sftp_server.password not in result.output
    block = SftpServer.load(block_name)
    assert block.password.get_secret_value() == sftp_server.password and block.folder == "from-cli"


def test_create_reads_files_and_stdin_for_secrets(sftp_server, tmp_path):
    from blocks.sftp import SftpServer
    from blocks.webhook import Webhook

    key_file = tmp_path / "id_ed25519"
    key_file.write_text(sftp_server.client_key_pem)
    sftp_name, hook_name = name("keyed"), name("hook")
    result = invoke(
        "blocks",
        "create",
        "sftp",
        sftp_name,
        "--host=127.0.0.1",
        f"--port={sftp_server.port}",
        "--username",
        "ferry",
        "--private-key-file",
        str(key_file),
        "--host-key",
        sftp_server.host_key_fingerprint,
    )
    assert result.exit_code == 0, result.output
    assert SftpServer.load(sftp_name).private_key.get_secret_value() == sftp_server.client_key_pem

    result = invoke(
        "blocks",
        "create",
        "webhook",
        hook_name,
        "--url",
        "https://hooks.example.com/ferry",
        "--secret",
        "-",
        "--max-attempts",
        "3",
        input="Stdin-Hook-Secret\n",
    )
    assert result.exit_code == 0, result.output
    hook = Webhook.load(hook_name)
    assert hook.secret.get_secret_value() == "Stdin-Hook-Secret" and hook.max_attempts == 3
    assert "Stdin-Hook-Secret" not in result.output


def test_invalid_blocks_list_every_problem():
    result = invoke("blocks", "create", "sftp", name("bad"), "--host", "h", "--port", "not-a-port")
    assert result.exit_code == 2
    for expected in ("port", "username", "host_key"):
        assert expected in result.output

    result = invoke("blocks", "create", "sftp", name("bad"), "--hots", "h")
    assert result.exit_code == 2 and "no field 'hots'" in result.output and "--host" in result.output

    result = invoke("blocks", "create", "teleport", name("bad"))
    assert result.exit_code == 2 and "unknown block kind 'teleport'" in result.output


def test_ftps_kind_turns_tls_on_and_flags_parse(tmp_path):
    from blocks.ftp import FtpServer

    plain, secure = name("ftp"), name("ftps")
    assert invoke("blocks", "create", "ftp", plain, "--host", "h", "--no-tls").exit_code == 0
    assert invoke("blocks", "create", "ftps", secure, "--host", "h", "--ca-file", str(tmp_path / "ca.pem")).exit_code == 0
    assert FtpServer.load(plain).tls is False
    assert FtpServer.load(secure).tls is True


def test_collection_kinds_with_nested_credentials_come_from_the_registry():
    from prefect_aws import S3Bucket

    bucket = name("bucket")
    result = invoke(
        "blocks",
        "create",
        "s3",
        bucket,
        "--bucket-name",
        "exports",
        "--credentials.aws-access-key-id",
        "AKIATEST",
        "--credentials.aws-secret-access-key-env",
        "S3_SECRET_FOR_TEST",
        "--credentials.aws-client-parameters",
        '{"endpoint_url": "http://127.0.0.1:9"}',
        env={"S3_SECRET_FOR_TEST": "S3-Secret-Value-9"},
    )

    assert result.exit_code == 0, result.output
    assert f"s3-bucket/{bucket}" in result.output and "S3-Secret-Value-9" not in result.output
    loaded = S3Bucket.load(bucket)
    assert loaded.bucket_name == "exports"
    assert loaded.credentials.aws_secret_access_key.get_secret_value() == "S3-Secret-Value-9"
    assert loaded.credentials.aws_client_parameters.endpoint_url == "http://127.0.0.1:9"


def test_list_masks_secrets_and_delete_removes(sftp_server):
    block_name = name("listed")
    assert (
        invoke(
            "blocks",
            "create",
            "sftp",
            block_name,
            "--host",
            "127.0.0.1",
            "--username",
            "u",
            "--password",
            "Listed-Pw-1",
            "--host-key",
            sftp_server.host_key_line,
        ).exit_code
        == 0
    )

    result = invoke("blocks", "list", "sftp", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["reference"]: row for row in json.loads(result.output)}
    assert rows[f"sftp/{block_name}"]["fields"]["host"] == "127.0.0.1"
    assert "Listed-Pw-1" not in result.output

    assert invoke("blocks", "delete", "sftp", block_name).exit_code == 0
    assert f"sftp/{block_name}" not in invoke("blocks", "list", "sftp", "--json").output
    assert invoke("blocks", "delete", "sftp", block_name).exit_code == 1


@pytest.mark.parametrize("seeded_store", ["sqlite"], indirect=True)
def test_export_delivers_to_a_block_created_on_the_command_line(store, sftp_server, httpserver_ipv4):
    block_name, hook_name = name("cli-dest"), name("cli-hook")
    assert (
        invoke(
            "blocks",
            "create",
            "sftp",
            block_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(sftp_server.port),
            "--username",
            sftp_server.username,
            "--password-env",
            "PW",
            "--host-key",
            sftp_server.host_key_line,
            "--folder",
            block_name,
            env={"PW": sftp_server.password},
        ).exit_code
        == 0
    )
    assert invoke("blocks", "create", "webhook", hook_name, "--url", httpserver_ipv4.url_for("/done"), "--secret", "k").exit_code == 0
    httpserver_ipv4.expect_request("/done", method="POST").respond_with_data("ok")

    result = invoke(
        "export",
        "contacts",
        "--workspace",
        "acme",
        "--fields",
        "email",
        "--limit",
        "5",
        "--dest",
        f"sftp/{block_name}",
        "--filename",
        "contacts.csv",
        "--notify-webhook",
        hook_name,
        "--json",
    )

    assert result.exit_code == 0, result.output
    record, _ = json.JSONDecoder().raw_decode(result.output[result.output.index('{\n  "run_id"') :])  # logs may follow
    assert record["destination_path"] == f"sftp://127.0.0.1:{sftp_server.port}/{block_name}/contacts.csv"
    rows = list(csv.reader((sftp_server.root / block_name / "contacts.csv").read_text().splitlines()))
    assert rows[0] == ["email"] and len(rows) == 6
    notice = json.loads(httpserver_ipv4.log[0][0].get_data())
    assert notice["event"] == "export.success" and notice["record"]["destination_path"] == record["destination_path"]


def test_register_runs_prefect_block_register_for_every_kind():
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    ferry = Path(sys.executable).with_name("ferry")
    result = subprocess.run([str(ferry), "blocks", "register"], capture_output=True, text=True, env=env, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    with get_client(sync_client=True) as client:
        for slug in ("sftp", "ftp", "webhook-endpoint", "smtp-server", "local-directory", "s3-bucket"):
            assert client.read_block_type_by_slug(slug).slug == slug


def test_create_smtp_block_for_notifications():
    from blocks.smtp import SmtpServer

    smtp = name("mail")
    result = invoke(
        "blocks",
        "create",
        "smtp",
        smtp,
        "--smtp-server",
        "mail.example.com",
        "--smtp-port",
        "587",
        "--smtp-type",
        "STARTTLS",
        "--username",
        "ferry",
        "--password-env",
        "SMTP_PW",
        "--sender",
        "Ferry <ferry@example.com>",
        env={"SMTP_PW": "Smtp-Cli-Secret"},
    )

    assert result.exit_code == 0, result.output
    assert "Smtp-Cli-Secret" not in result.output
    block = SmtpServer.load(smtp)
    assert (block.smtp_server, block.smtp_port, block.smtp_type.name, block.sender) == (
        "mail.example.com",
        587,
        "STARTTLS",
        "Ferry <ferry@example.com>",
    )
    assert block.password.get_secret_value() == "Smtp-Cli-Secret"
