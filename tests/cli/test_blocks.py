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


# --- credentials blocks and per-kind help (issue 13) -----------------------------------------


def _export_to(bucket_block: str) -> dict:
    result = invoke(
        "export", "contacts", "--workspace", "acme", "--fields", "email", "--limit", "3", "--dest", f"s3-bucket/{bucket_block}", "--json"
    )
    assert result.exit_code == 0, result.output
    record, _ = json.JSONDecoder().raw_decode(result.output[result.output.index('{\n  "run_id"') :])
    return record


@pytest.mark.parametrize("seeded_store", ["sqlite"], indirect=True)
def test_aws_credentials_from_the_command_line_make_an_s3_destination_without_python(store, moto_server, tmp_path):
    from prefect_aws import AwsCredentials, S3Bucket
    from servers.s3 import ACCESS_KEY, REGION, SECRET_KEY

    secret_file = tmp_path / "aws-secret"
    secret_file.write_text(SECRET_KEY + "\n")
    credentials, bucket_block, bucket = name("aws"), name("exports"), moto_server.new_bucket()
    result = invoke(
        "blocks",
        "create",
        "aws-credentials",
        credentials,
        "--access-key-id",  # the field is aws_access_key_id: the vendor word may be left out
        ACCESS_KEY,
        "--secret-access-key-file",
        str(secret_file),
        "--region-name",
        REGION,
        "--client-parameters.endpoint-url",
        moto_server.url,
    )
    assert result.exit_code == 0, result.output
    assert SECRET_KEY not in result.output and f"aws-credentials/{credentials}" in result.output
    assert f"--credentials {credentials}" in result.output  # says where to use it
    saved = AwsCredentials.load(credentials)
    assert saved.aws_access_key_id == ACCESS_KEY and saved.aws_secret_access_key.get_secret_value() == SECRET_KEY  # no newline
    assert saved.aws_client_parameters.endpoint_url == moto_server.url

    result = invoke("blocks", "create", "s3", bucket_block, "--bucket-name", bucket, "--bucket-folder", "cli", "--credentials", credentials)
    assert result.exit_code == 0, result.output
    assert S3Bucket.load(bucket_block).credentials.aws_access_key_id == ACCESS_KEY

    record = _export_to(bucket_block)
    body = moto_server.client().get_object(Bucket=bucket, Key=f"cli/{record['destination_path'].rsplit('/', 1)[1]}")["Body"].read()
    rows = list(csv.reader(body.decode().splitlines()))
    assert rows[0] == ["email"] and len(rows) == 4


@pytest.mark.parametrize("seeded_store", ["sqlite"], indirect=True)
def test_minio_credentials_with_the_secret_from_stdin(store, moto_server):
    from prefect_aws import MinIOCredentials
    from servers.s3 import ACCESS_KEY, SECRET_KEY

    credentials, bucket_block, bucket = name("minio"), name("minio-bucket"), moto_server.new_bucket()
    result = invoke(
        "blocks",
        "create",
        "minio",
        credentials,
        "--root-user",
        ACCESS_KEY,
        "--root-password",  # bare: read from stdin (a hidden prompt at a terminal)
        "--aws-client-parameters",
        json.dumps({"endpoint_url": moto_server.url}),
        input=SECRET_KEY + "\n",
    )
    assert result.exit_code == 0, result.output
    assert SECRET_KEY not in result.output
    saved = MinIOCredentials.load(credentials)
    assert saved.minio_root_user == ACCESS_KEY and saved.minio_root_password.get_secret_value() == SECRET_KEY

    assert invoke("blocks", "create", "s3", bucket_block, "--bucket-name", bucket, "--credentials", credentials).exit_code == 0
    record = _export_to(bucket_block)
    assert record["status"] == "success" and record["destination_path"].startswith("s3://")
    assert [o["Key"] for o in moto_server.client().list_objects_v2(Bucket=bucket)["Contents"]] == [
        record["destination_path"].rsplit("/", 1)[1]
    ]


def test_credential_kinds_are_listed_and_deleted_like_the_others():
    credentials = name("listed-aws")
    assert invoke("blocks", "create", "aws", credentials, "--access-key-id", "AKIALISTED", "--secret-access-key", "S-1").exit_code == 0
    rows = {row["reference"]: row for row in json.loads(invoke("blocks", "list", "aws-credentials", "--json").output)}
    assert rows[f"aws-credentials/{credentials}"]["fields"]["aws_access_key_id"] == "AKIALISTED" and "S-1" not in json.dumps(rows)
    assert invoke("blocks", "delete", "aws-credentials", credentials).exit_code == 0


@pytest.mark.parametrize("kind", ["aws-credentials", "minio-credentials", "sftp", "s3-bucket", "gcp-credentials"])
def test_kind_help_lists_every_field_with_its_description(kind):
    from blocks.kinds import block_classes

    result = invoke("blocks", "create", kind, "--help")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for field_name, field in block_classes()[kind].model_fields.items():
        option = "--" + field_name.replace("_", "-")
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(option + " ") or line.strip().startswith(option + ","))
        description = " ".join((field.description or field.title or "").split())
        assert description in lines[at + 1], (option, lines[at + 1])
    if kind == "aws-credentials":
        assert "--aws-access-key-id, --access-key-id  TEXT" in result.output
        assert "--aws-secret-access-key-file PATH" in result.output  # how to pass the secret without echoing it


def test_create_help_without_a_kind_lists_the_kinds_and_unknown_options_suggest_one():
    result = invoke("blocks", "create", "--help")
    assert result.exit_code == 0 and "aws-credentials" in result.output and "minio-credentials" in result.output

    result = invoke("blocks", "create", "aws", name("typo"), "--acess-key-id", "x")
    assert result.exit_code == 2 and "no field 'acess_key_id'" in result.output
