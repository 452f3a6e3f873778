"""URL imports and their SSRF guard, against a real local HTTP server.

The server listens on 127.0.0.1, which the guard refuses by default: tests that
download set the allow-list explicitly, and the refusal tests check that the
server was never even contacted.
"""

from __future__ import annotations

import ipaddress

import pytest
from servers.http import streamed

from blocks.sources import fetch_url, refusal_reason, resolve_source
from ferry.errors import SourceError, TransientSourceError
from ferry.settings import FerrySettings

CSV = b"email,first_name\na@example.com,Ann\nb@example.com,Bo\n"


def settings(**values) -> FerrySettings:
    return FerrySettings(**{"import_url_allow": "127.0.0.1/32", **values})


def test_allowed_loopback_url_is_downloaded_keeping_its_extension(httpserver_ipv4, tmp_path):
    httpserver_ipv4.expect_request("/exports/contacts.csv").respond_with_data(CSV, content_type="text/csv")

    path = fetch_url(httpserver_ipv4.url_for("/exports/contacts.csv?sig=abc"), tmp_path, settings())

    assert path.read_bytes() == CSV
    assert path.name == "contacts.csv" and path.parent == tmp_path
    assert [p.name for p in tmp_path.iterdir()] == ["contacts.csv"]


def test_loopback_is_refused_without_the_allow_list(httpserver_ipv4, tmp_path):
    httpserver_ipv4.expect_request("/contacts.csv").respond_with_data(CSV)

    with pytest.raises(SourceError, match="loopback address") as caught:
        fetch_url(httpserver_ipv4.url_for("/contacts.csv"), tmp_path, FerrySettings())

    assert not caught.value.transient
    assert "FERRY_IMPORT_URL_ALLOW" in str(caught.value)
    assert httpserver_ipv4.log == []  # refused before connecting


def test_a_host_name_is_checked_after_dns_resolution(httpserver_ipv4, tmp_path):
    url = f"http://localhost:{httpserver_ipv4.port}/contacts.csv"
    with pytest.raises(SourceError, match=r"host 'localhost' resolves to .*loopback"):
        fetch_url(url, tmp_path, FerrySettings())
    assert httpserver_ipv4.log == []


def test_redirect_to_the_metadata_address_is_refused_at_that_hop(httpserver_ipv4, tmp_path):
    httpserver_ipv4.expect_request("/start.csv").respond_with_data(
        "", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )

    with pytest.raises(SourceError, match="169.254.169.254, a cloud metadata address"):
        fetch_url(httpserver_ipv4.url_for("/start.csv"), tmp_path, settings())

    assert len(httpserver_ipv4.log) == 1
    assert list(tmp_path.iterdir()) == []


def test_redirect_to_a_loopback_address_outside_the_allow_list_is_refused(httpserver_ipv4, tmp_path):
    httpserver_ipv4.expect_request("/start.csv").respond_with_data(
        "", status=301, headers={"Location": f"http://127.0.0.2:{httpserver_ipv4.port}/x.csv"}
    )

    with pytest.raises(SourceError, match="127.0.0.2, a loopback address"):
        fetch_url(httpserver_ipv4.url_for("/start.csv"), tmp_path, settings())
    assert len(httpserver_ipv4.log) == 1


def test_redirect_to_another_scheme_is_refused(httpserver_ipv4, tmp_path):
    httpserver_ipv4.expect_request("/start.csv").respond_with_data("", status=302, headers={"Location": "file:///etc/passwd"})

    with pytest.raises(SourceError, match="only http and https"):
        fetch_url(httpserver_ipv4.url_for("/start.csv"), tmp_path, settings())


def test_allowed_redirects_are_followed_and_limited(httpserver_ipv4, tmp_path):
    httpserver_ipv4.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b/final.csv"})
    httpserver_ipv4.expect_request("/b/final.csv").respond_with_data(CSV)
    assert fetch_url(httpserver_ipv4.url_for("/a"), tmp_path, settings()).read_bytes() == CSV

    httpserver_ipv4.expect_request("/loop").respond_with_data("", status=302, headers={"Location": "/loop"})
    with pytest.raises(SourceError, match="redirected more than 2 times"):
        fetch_url(httpserver_ipv4.url_for("/loop"), tmp_path / "2", settings(import_url_max_redirects=2))


def test_size_cap_from_content_length_refuses_before_reading(httpserver_ipv4, tmp_path):
    httpserver_ipv4.expect_request("/big.csv").respond_with_handler(streamed(5_000))

    with pytest.raises(SourceError, match="more than the import limit of 1,000"):
        fetch_url(httpserver_ipv4.url_for("/big.csv"), tmp_path, settings(import_url_max_bytes=1_000))
    assert list(tmp_path.iterdir()) == []


def test_size_cap_without_content_length_stops_the_stream(httpserver_ipv4, tmp_path):
    httpserver_ipv4.expect_request("/big.csv").respond_with_handler(streamed(300_000, chunk=10_000, content_length=False))

    with pytest.raises(SourceError, match="larger than the import limit of 100,000"):
        fetch_url(httpserver_ipv4.url_for("/big.csv"), tmp_path, settings(import_url_max_bytes=100_000))
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_total_time_cap_stops_a_slow_drip(httpserver_ipv4, tmp_path):
    httpserver_ipv4.expect_request("/slow.csv").respond_with_handler(streamed(1_000, chunk=10, pause=0.2, content_length=False))

    with pytest.raises(SourceError, match="took longer than the import limit"):
        fetch_url(httpserver_ipv4.url_for("/slow.csv"), tmp_path, settings(import_url_max_seconds=1, import_url_timeout_seconds=5))
    assert list(tmp_path.iterdir()) == []


def test_http_errors_are_terminal_or_transient_by_status(httpserver_ipv4, tmp_path):
    httpserver_ipv4.expect_request("/gone.csv").respond_with_data("", status=404)
    httpserver_ipv4.expect_request("/busy.csv").respond_with_data("", status=503)

    with pytest.raises(SourceError, match="HTTP 404") as gone:
        fetch_url(httpserver_ipv4.url_for("/gone.csv"), tmp_path, settings())
    with pytest.raises(TransientSourceError, match="HTTP 503"):
        fetch_url(httpserver_ipv4.url_for("/busy.csv"), tmp_path, settings())
    assert not gone.value.transient


def test_a_transient_error_that_outlived_its_retries_no_longer_promises_one(httpserver_ipv4, tmp_path):
    import logging

    from flows.outcome import failure_message

    httpserver_ipv4.expect_request("/busy.csv").respond_with_data("", status=503)
    with pytest.raises(TransientSourceError) as busy:
        fetch_url(httpserver_ipv4.url_for("/busy.csv"), tmp_path, settings())
    assert str(busy.value).endswith("Ferry retries this.")  # what a task's retry log says

    final = failure_message(busy.value, "import", logging.getLogger("test"))  # what the run record says once it reached the flow
    assert "HTTP 503" in final and "Ferry retries this" not in final and "It still failed after Ferry's retries" in final


def test_urls_with_credentials_or_other_schemes_are_refused(tmp_path):
    with pytest.raises(SourceError, match="carries credentials") as caught:
        fetch_url("https://user:hunter2@example.com/x.csv", tmp_path, settings())
    assert "hunter2" not in str(caught.value)
    for url in ("ftp://example.com/x.csv", "gopher://example.com/", "file:///etc/passwd"):
        with pytest.raises(SourceError, match="only http and https"):
            fetch_url(url, tmp_path, settings())


@pytest.mark.parametrize(
    "address, reason",
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("fd12:3456::1", "unique-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("168.63.129.16", "metadata"),
        ("100.64.1.1", "non-public"),
        ("0.0.0.0", "non-public"),
        ("64:ff9b::a9fe:a9fe", "metadata"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_refused_addresses(address, reason):
    assert reason in (refusal_reason(ipaddress.ip_address(address), []) or "")


def test_public_and_allow_listed_addresses_pass():
    allowed = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("169.254.0.0/16")]
    assert refusal_reason(ipaddress.ip_address("93.184.216.34"), []) is None
    assert refusal_reason(ipaddress.ip_address("2606:4700::1111"), []) is None
    assert refusal_reason(ipaddress.ip_address("10.9.8.7"), allowed) is None
    # a wide network does not open the metadata service; only its exact address does
    assert "metadata" in refusal_reason(ipaddress.ip_address("169.254.169.254"), allowed)
    assert refusal_reason(ipaddress.ip_address("169.254.169.254"), [ipaddress.ip_network("169.254.169.254/32")]) is None


def test_resolve_source_local_paths_and_unknown_schemes(tmp_path, httpserver_ipv4, monkeypatch):
    local = tmp_path / "in.csv"
    local.write_bytes(CSV)
    assert resolve_source(str(local), tmp_path / "spool") == local
    with pytest.raises(SourceError, match="Refusing local path"):
        resolve_source(str(local), tmp_path / "spool", allow_local=False)
    with pytest.raises(SourceError, match="No block reads gopher"):
        resolve_source("gopher://x/y.csv", tmp_path / "spool")

    httpserver_ipv4.expect_request("/in.csv").respond_with_data(CSV)
    fetched = resolve_source(httpserver_ipv4.url_for("/in.csv"), tmp_path / "spool", settings())
    assert fetched.read_bytes() == CSV and fetched.is_relative_to(tmp_path / "spool")


def test_https_connects_to_the_checked_address_but_verifies_the_host_name(tmp_path):
    import ssl

    from pytest_httpserver import HTTPServer
    from servers.ftp import make_self_signed

    cert, key = make_self_signed(tmp_path)  # valid for 127.0.0.1 and localhost
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    try:
        server.expect_request("/contacts.csv").respond_with_data(CSV)
        url = f"https://localhost:{server.port}/contacts.csv"
        allow = settings(import_url_allow="127.0.0.1/32,::1/128")

        assert fetch_url(url, tmp_path / "ok", allow, ca_file=str(cert)).read_bytes() == CSV  # SNI + certificate for "localhost"
        with pytest.raises(SourceError, match="TLS to https://localhost") as caught:
            fetch_url(url, tmp_path / "untrusted", allow)  # the system CAs do not know the self-signed certificate
        assert not caught.value.transient
    finally:
        server.stop()
