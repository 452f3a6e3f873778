"""The SFTP block against a real SFTP server (asyncssh, chrooted, in a child process)."""

from __future__ import annotations

import asyncio
import io
import signal
import time
import uuid

import pytest
from servers.sftp import sftp_block, start_sftp
from servers.streams import WatchingStream

from blocks.sftp import SftpServer
from blocks.sources import resolve_source
from ferry.errors import DestinationError, SourceError, TransientDestinationError

BODY = b"email,first_name\na@example.com,Ann\n" * 1000


def folder() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("key_login", [False, True], ids=["password", "private-key"])
def test_upload_with_password_or_key_lands_complete(sftp_server, key_login):
    where = folder()
    delivery = sftp_block(sftp_server, folder=where, key_login=key_login).deliver(io.BytesIO(BODY), "daily/contacts.csv")

    assert (sftp_server.root / where / "daily" / "contacts.csv").read_bytes() == BODY
    assert delivery.bytes == len(BODY)
    assert delivery.location == f"sftp://127.0.0.1:{sftp_server.port}/{where}/daily/contacts.csv"
    assert sorted(p.name for p in (sftp_server.root / where / "daily").iterdir()) == ["contacts.csv"]


def test_readers_never_see_a_partial_file_under_the_final_name(sftp_server):
    where = folder()
    final = sftp_server.root / where / "big.csv"
    seen = {}

    def look(_pos):
        seen["final_exists"] = final.exists()
        seen["partials"] = [p.name for p in final.parent.iterdir() if p.name.endswith(".partial")]

    data = BODY * 20
    sftp_block(sftp_server, folder=where).deliver(WatchingStream(data, look), "big.csv")

    assert seen["final_exists"] is False
    assert len(seen["partials"]) == 1 and seen["partials"][0].startswith(".big.csv.")
    assert final.read_bytes() == data
    assert [p.name for p in final.parent.iterdir()] == ["big.csv"]


def test_password_through_keyboard_interactive(sftp_server):
    where = folder()
    block = sftp_block(sftp_server, folder=where, username=sftp_server.username + "-kbd")
    assert block.deliver(io.BytesIO(b"x"), "x.csv").bytes == 1
    assert (sftp_server.root / where / "x.csv").read_bytes() == b"x"


def test_pinned_fingerprint_is_accepted(sftp_server):
    block = sftp_block(sftp_server, folder=folder(), host_key=sftp_server.host_key_fingerprint)
    assert block.deliver(io.BytesIO(b"x"), "x.csv").bytes == 1


@pytest.mark.parametrize("pin", ["other-key", "other-fingerprint", "other-host"])
def test_unknown_host_keys_are_refused_before_logging_in(sftp_server, pin):
    line = sftp_server.host_key_line
    host_key = {
        "other-key": sftp_server.other_host_key_line,
        "other-fingerprint": "SHA256:" + "A" * 43,
        "other-host": "[files.example.com]:22 " + line.split(" ", 1)[1],  # right key, pinned for another host
    }[pin]
    where = folder()
    user = f"probe-{uuid.uuid4().hex[:8]}"  # a name the server log shows if authentication even begins

    with pytest.raises(DestinationError, match="not the key pinned in the block") as caught:
        sftp_block(sftp_server, folder=where, host_key=host_key, username=user).deliver(io.BytesIO(b"x"), "x.csv")

    assert not caught.value.transient
    assert sftp_server.host_key_fingerprint in str(caught.value)  # tells the operator what the server presented
    assert not (sftp_server.root / where).exists()
    # Control: a real login attempt under the same name is logged once; the refused connection never got that far.
    with pytest.raises(DestinationError, match="refused the login"):
        sftp_block(sftp_server, folder=where, username=user, password="wrong").deliver(io.BytesIO(b"x"), "x.csv")
    for _ in range(50):
        if f"Beginning auth for user {user}" in sftp_server.log_text():
            break
        time.sleep(0.1)
    assert sftp_server.log_text().count(f"Beginning auth for user {user}") == 1


def test_wrong_password_fails_at_once_naming_the_block_without_the_secret(sftp_server):
    block = sftp_block(sftp_server, folder=folder(), password="Wrong-Pass-123")
    block.save("sftp-wrong-password", overwrite=True)
    try:
        block = SftpServer.load("sftp-wrong-password")
        with pytest.raises(DestinationError) as caught:
            block.deliver(io.BytesIO(b"x"), "x.csv")
    finally:
        asyncio.run(SftpServer.adelete("sftp-wrong-password"))  # it points at the same server as the import-source test's block

    text = str(caught.value)
    assert not caught.value.transient
    assert "sftp block 'sftp-wrong-password'" in text and "refused the login of 'ferry'" in text
    assert "password or private_key" in text
    assert "Wrong-Pass-123" not in text and sftp_server.password not in text


def test_permission_denied_is_terminal_and_says_what_to_check(sftp_server):
    block = sftp_block(sftp_server, folder=folder(), username=sftp_server.username + "-readonly")

    with pytest.raises(DestinationError, match="permission denied") as caught:
        block.deliver(io.BytesIO(b"x"), "x.csv")

    assert not caught.value.transient
    assert "may write and rename" in str(caught.value)


def test_encrypted_private_key_needs_its_passphrase(sftp_server, tmp_path):
    import asyncssh

    key = asyncssh.import_private_key(sftp_server.client_key_pem)
    encrypted = key.export_private_key("openssh", passphrase="key-Pass-42", rounds=2).decode()  # few bcrypt rounds: a fast test

    with pytest.raises(DestinationError, match="private_key_passphrase"):
        sftp_block(sftp_server, folder=folder(), private_key=encrypted, password=None).deliver(io.BytesIO(b"x"), "x.csv")
    ok = sftp_block(sftp_server, folder=folder(), private_key=encrypted, private_key_passphrase="key-Pass-42", password=None)
    assert ok.deliver(io.BytesIO(b"x"), "x.csv").bytes == 1


def test_server_dying_mid_upload_is_transient_and_leaves_nothing_at_the_final_name(tmp_path):
    server = start_sftp(tmp_path / "dying")
    try:
        block = sftp_block(server, folder="out")

        def kill(_pos):
            server.process.process.send_signal(signal.SIGKILL)
            server.process.process.wait(timeout=10)

        with pytest.raises(TransientDestinationError) as caught:
            block.deliver(WatchingStream(BODY * 50, kill), "contacts.csv")
        assert "connection failed" in str(caught.value) or "cut short" in str(caught.value)
        assert not (server.root / "out" / "contacts.csv").exists()
    finally:
        server.process.stop()


def test_nobody_listening_is_transient(sftp_server):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientDestinationError, match="connection failed"):
        sftp_block(sftp_server, port=port, timeout=2).deliver(io.BytesIO(b"x"), "x.csv")


def test_block_validation_lists_what_is_missing(sftp_server):
    with pytest.raises(ValueError, match="password or a private_key"):
        SftpServer(host="h", username="u", host_key=sftp_server.host_key_line)
    with pytest.raises(ValueError, match="host_key is not usable"):
        SftpServer(host="h", username="u", password="p", host_key="not a key")


def test_import_source_reads_through_a_saved_block_by_name_or_by_host(sftp_server, tmp_path):
    where = folder()
    (sftp_server.root / where / "in").mkdir(parents=True)
    (sftp_server.root / where / "in" / "contacts.csv").write_bytes(BODY)
    sftp_block(sftp_server, folder=where).save("sftp-import-source", overwrite=True)

    by_name = resolve_source("sftp://sftp-import-source/in/contacts.csv", tmp_path / "spool")
    assert by_name.read_bytes() == BODY and by_name.name == "contacts.csv"

    sftp_block(sftp_server, folder=folder()).save("sftp-import-elsewhere", overwrite=True)  # same host, another folder
    try:
        by_host = resolve_source(f"sftp://ferry@127.0.0.1:{sftp_server.port}/{where}/in/contacts.csv", tmp_path / "spool")
    finally:
        asyncio.run(SftpServer.adelete("sftp-import-elsewhere"))
    assert by_host.read_bytes() == BODY

    sftp_block(sftp_server, folder=where).save("sftp-import-twin", overwrite=True)  # a second block reaching the same folder
    try:
        with pytest.raises(SourceError, match="Several saved blocks point at"):
            resolve_source(f"sftp://127.0.0.1:{sftp_server.port}/{where}/in/contacts.csv", tmp_path / "spool")
    finally:
        asyncio.run(SftpServer.adelete("sftp-import-twin"))

    with pytest.raises(SourceError, match="not found"):
        resolve_source("sftp://sftp-import-source/in/missing.csv", tmp_path / "spool")
    with pytest.raises(SourceError, match="No saved sftp block"):
        resolve_source("sftp://no-such-block/in/contacts.csv", tmp_path / "spool")
