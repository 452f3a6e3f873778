"""The FTP/FTPS block against a real pyftpdlib server (plain and TLS-required, in child processes)."""

from __future__ import annotations

import io
import signal
import uuid

import pytest
from servers.ftp import ftp_block, start_ftp
from servers.streams import WatchingStream

from blocks.sources import resolve_source
from ferry.errors import DestinationError, TransientDestinationError

BODY = b"email,first_name\na@example.com,Ann\n" * 1000


def folder() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["ftp", "ftps"])
def server(request):
    return request.getfixturevalue(f"{request.param}_server")


def test_upload_and_download(server, tmp_path):
    where = folder()
    block = ftp_block(server, folder=where)

    delivery = block.deliver(io.BytesIO(BODY), "daily/contacts.csv")

    assert (server.root / where / "daily" / "contacts.csv").read_bytes() == BODY
    scheme = "ftps" if server.tls else "ftp"
    assert delivery.location == f"{scheme}://127.0.0.1:{server.port}/{where}/daily/contacts.csv"
    assert block.download("daily/contacts.csv", tmp_path / "back.csv").read_bytes() == BODY
    assert sorted(p.name for p in (server.root / where / "daily").iterdir()) == ["contacts.csv"]


def test_readers_never_see_a_partial_file_under_the_final_name(ftps_server):
    where = folder()
    final = ftps_server.root / where / "big.csv"
    seen = {}

    def look(_pos):
        seen["final_exists"] = final.exists()
        seen["partials"] = [p.name for p in final.parent.iterdir() if p.name.endswith(".partial")]

    ftp_block(ftps_server, folder=where).deliver(WatchingStream(BODY * 20, look), "big.csv")

    assert seen == {"final_exists": False, "partials": [seen["partials"][0]]} and seen["partials"][0].startswith(".big.csv.")
    assert final.read_bytes() == BODY * 20


def test_ftps_refuses_an_untrusted_certificate(ftps_server):
    with pytest.raises(DestinationError, match="certificate is not trusted") as caught:
        ftp_block(ftps_server, folder=folder(), ca_file=None).deliver(io.BytesIO(b"x"), "x.csv")
    assert not caught.value.transient
    assert "ca_file" in str(caught.value)


def test_plain_ftp_to_a_tls_only_server_is_refused(ftps_server):
    with pytest.raises(DestinationError) as caught:
        ftp_block(ftps_server, folder=folder(), tls=False, ca_file=None).deliver(io.BytesIO(b"x"), "x.csv")
    assert not caught.value.transient


def test_wrong_password_fails_at_once_without_the_secret(ftp_server):
    with pytest.raises(DestinationError, match="refused the login of 'ferry'") as caught:
        ftp_block(ftp_server, folder=folder(), password="Wrong-Ftp-Pass").deliver(io.BytesIO(b"x"), "x.csv")
    assert not caught.value.transient
    assert "Wrong-Ftp-Pass" not in str(caught.value) and ftp_server.password not in str(caught.value)


def test_permission_denied_is_terminal_and_says_what_to_check(ftps_server):
    block = ftp_block(ftps_server, folder=folder(), username=ftps_server.username + "-readonly")
    with pytest.raises(DestinationError, match="may write, rename and read") as caught:
        block.deliver(io.BytesIO(b"x"), "x.csv")
    assert not caught.value.transient


def test_server_dying_mid_upload_is_transient_and_leaves_nothing_at_the_final_name(tmp_path):
    server = start_ftp(tmp_path / "dying", tls=True)
    try:

        def kill(_pos):
            server.process.process.send_signal(signal.SIGKILL)
            server.process.process.wait(timeout=10)

        with pytest.raises(TransientDestinationError):
            ftp_block(server, folder="out").deliver(WatchingStream(BODY * 50, kill), "contacts.csv")
        assert not (server.root / "out" / "contacts.csv").exists()
    finally:
        server.process.stop()


def test_block_needs_tls_for_a_ca_file():
    from blocks.ftp import FtpServer

    with pytest.raises(ValueError, match="tls is off"):
        FtpServer(host="h", tls=False, ca_file="/x.pem")


def test_import_source_reads_through_a_saved_block(ftps_server, tmp_path):
    where = folder()
    (ftps_server.root / where).mkdir()
    (ftps_server.root / where / "contacts.csv").write_bytes(BODY)
    ftp_block(ftps_server, folder=where).save("ftps-import-source", overwrite=True)

    assert resolve_source("ftps://ftps-import-source/contacts.csv", tmp_path / "spool").read_bytes() == BODY
    assert resolve_source("ftp://ftps-import-source/contacts.csv", tmp_path / "spool2").read_bytes() == BODY
