"""The webhook block against a real local HTTP receiver (pytest-httpserver).

Signatures are recomputed here with hmac directly (not with the block's own
helper), so a wrong signing scheme fails the test.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import socket

import pytest
from servers.http import Arrivals

from blocks.local_directory import LocalDirectory
from blocks.webhook import Webhook, retry_after_seconds, verify
from ferry.errors import DestinationError, TransientDestinationError

SECRET = "whsec-Do-Not-Log-7Q2"
TOKEN = "tok-Do-Not-Log-9Z1"


def block(server, **overrides) -> Webhook:
    values = dict(
        url=server.url_for("/hook?token=querysecret"), secret=SECRET, bearer_token=TOKEN, backoff_seconds=0.01, max_attempts=3, timeout=5
    )
    return Webhook(**{**values, **overrides})


def expected_signature(header: str, body: bytes) -> bool:
    parts = dict(item.split("=", 1) for item in header.split(","))
    digest = hmac.new(SECRET.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(digest, parts["v1"])


def test_small_file_is_posted_signed_with_its_name_and_hash(httpserver_ipv4):
    httpserver_ipv4.expect_ordered_request("/hook", method="POST").respond_with_data("ok")
    body = b"email,name\na@example.com,A\n" * 100

    delivery = block(httpserver_ipv4).deliver(io.BytesIO(body), "contacts.csv")

    httpserver_ipv4.check_assertions()
    request, _ = httpserver_ipv4.log[0]
    assert request.get_data() == body
    assert request.headers["X-Ferry-Filename"] == "contacts.csv"
    assert request.headers["X-Ferry-SHA256"] == hashlib.sha256(body).hexdigest() == delivery.sha256
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert expected_signature(request.headers["X-Ferry-Signature"], body)
    assert verify(SECRET, request.headers["X-Ferry-Signature"], body)
    assert not verify("other-secret", request.headers["X-Ferry-Signature"], body)
    assert delivery.bytes == len(body)
    assert "querysecret" not in delivery.location


def test_503_with_retry_after_is_retried_after_the_pause(httpserver_ipv4):
    arrivals = Arrivals()
    httpserver_ipv4.expect_ordered_request("/hook", method="POST").respond_with_handler(
        arrivals.replying(503, "busy", {"Retry-After": "1"})
    )
    httpserver_ipv4.expect_ordered_request("/hook", method="POST").respond_with_handler(arrivals.replying(200, "ok"))

    block(httpserver_ipv4, backoff_seconds=0).deliver(io.BytesIO(b"a,b\n1,2\n"), "x.csv")

    httpserver_ipv4.check_assertions()
    assert len(arrivals.times) == 2
    assert arrivals.times[1] - arrivals.times[0] >= 0.95  # the server's Retry-After, not the 0 s backoff


def test_429_with_an_http_date_retry_after_is_retried(httpserver_ipv4):
    arrivals = Arrivals()
    httpserver_ipv4.expect_ordered_request("/hook").respond_with_handler(
        arrivals.replying(429, "", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    )
    httpserver_ipv4.expect_ordered_request("/hook").respond_with_handler(arrivals.replying(202, ""))

    block(httpserver_ipv4).send({"event": "ping"})

    assert len(arrivals.times) == 2  # a date in the past means "now"


def test_400_is_not_retried_and_names_the_block(httpserver_ipv4):
    httpserver_ipv4.expect_request("/hook").respond_with_data("bad", status=400)

    with pytest.raises(DestinationError) as caught:
        block(httpserver_ipv4).deliver(io.BytesIO(b"x"), "x.csv")

    assert not caught.value.transient
    assert len(httpserver_ipv4.log) == 1
    assert "HTTP 400" in str(caught.value) and "webhook-endpoint" in str(caught.value)


def test_401_tells_to_check_the_secret_without_showing_it(httpserver_ipv4):
    httpserver_ipv4.expect_request("/hook").respond_with_data("no", status=401)

    with pytest.raises(DestinationError) as caught:
        block(httpserver_ipv4).deliver(io.BytesIO(b"x"), "x.csv")

    text = str(caught.value)
    assert "secret" in text and "bearer_token" in text
    for leaked in (SECRET, TOKEN, "querysecret"):
        assert leaked not in text
    assert len(httpserver_ipv4.log) == 1


def test_persistent_5xx_gives_up_as_transient_after_max_attempts(httpserver_ipv4):
    httpserver_ipv4.expect_request("/hook").respond_with_data("down", status=502)

    with pytest.raises(TransientDestinationError) as caught:
        block(httpserver_ipv4, max_attempts=3).deliver(io.BytesIO(b"x"), "x.csv")

    assert len(httpserver_ipv4.log) == 3
    assert "attempt 3 of 3" in str(caught.value)


def test_retry_after_longer_than_the_limit_stops_retrying(httpserver_ipv4):
    httpserver_ipv4.expect_request("/hook").respond_with_data("later", status=503, headers={"Retry-After": "3600"})

    with pytest.raises(TransientDestinationError, match="asked to wait 3600 s"):
        block(httpserver_ipv4, max_wait_seconds=60).deliver(io.BytesIO(b"x"), "x.csv")

    assert len(httpserver_ipv4.log) == 1


def test_redirects_are_not_followed_for_posts(httpserver_ipv4):
    httpserver_ipv4.expect_request("/hook").respond_with_data("", status=307, headers={"Location": "/elsewhere"})

    with pytest.raises(DestinationError, match="redirect"):
        block(httpserver_ipv4).deliver(io.BytesIO(b"x"), "x.csv")

    assert len(httpserver_ipv4.log) == 1


def test_connection_refused_is_transient():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook = Webhook(url=f"http://127.0.0.1:{port}/hook", max_attempts=2, backoff_seconds=0.01, timeout=2)

    with pytest.raises(TransientDestinationError, match="could not connect"):
        hook.deliver(io.BytesIO(b"x"), "x.csv")


def test_large_file_goes_to_the_large_files_block_and_a_notice_is_posted(httpserver_ipv4, tmp_path):
    LocalDirectory(path=str(tmp_path / "big")).save("webhook-big-files", overwrite=True)
    httpserver_ipv4.expect_ordered_request("/hook", method="POST").respond_with_data("ok")
    body = bytes(range(256)) * 64  # 16 KiB

    delivery = block(httpserver_ipv4, max_file_bytes=1000, large_files="local-directory/webhook-big-files").deliver(
        io.BytesIO(body), "big.bin"
    )

    assert (tmp_path / "big" / "big.bin").read_bytes() == body
    request, _ = httpserver_ipv4.log[0]
    notice = json.loads(request.get_data())
    assert request.headers["Content-Type"] == "application/json"
    assert expected_signature(request.headers["X-Ferry-Signature"], request.get_data())
    assert notice["event"] == "export.file" and notice["bytes"] == len(body)
    assert notice["sha256"] == hashlib.sha256(body).hexdigest() == delivery.sha256
    assert notice["location"] == delivery.location == str(tmp_path / "big" / "big.bin")


def test_large_file_handoff_refuses_a_taken_name_unless_told_to_overwrite(httpserver_ipv4, tmp_path):
    from tasks.export.deliver import deliver

    big = tmp_path / "big"
    big.mkdir()
    (big / "big.bin").write_bytes(b"theirs")
    LocalDirectory(path=str(big)).save("webhook-big-taken", overwrite=True)
    hook = block(httpserver_ipv4, max_file_bytes=1000, large_files="local-directory/webhook-big-taken")
    body = bytes(range(256)) * 64
    file = tmp_path / "export.bin"
    file.write_bytes(body)

    with pytest.raises(DestinationError, match="already holds a file named 'big.bin'; it was not overwritten") as caught:
        hook.deliver(io.BytesIO(body), "big.bin", overwrite=False)
    assert not caught.value.transient and "--overwrite" in str(caught.value)
    with pytest.raises(DestinationError, match="already holds a file named 'big.bin'"):
        deliver.fn(file, hook, "big.bin")  # the export's deliver task: no overwrite unless asked
    assert (big / "big.bin").read_bytes() == b"theirs"
    assert httpserver_ipv4.log == []  # no notice of a file that was not delivered

    httpserver_ipv4.expect_ordered_request("/hook", method="POST").respond_with_data("ok")
    httpserver_ipv4.expect_ordered_request("/hook", method="POST").respond_with_data("ok")
    delivery = deliver.fn(file, hook, "big.bin", overwrite=True)
    assert (big / "big.bin").read_bytes() == body
    assert json.loads(httpserver_ipv4.log[0][0].get_data())["sha256"] == delivery.sha256
    hook.deliver(io.BytesIO(b"small"), "big.bin", overwrite=False)  # a POST replaces nothing: sent as always
    assert httpserver_ipv4.log[1][0].get_data() == b"small"
    httpserver_ipv4.check_assertions()


def test_large_file_without_a_large_files_block_fails_before_posting(httpserver_ipv4):
    with pytest.raises(DestinationError, match="large_files") as caught:
        block(httpserver_ipv4, max_file_bytes=10).deliver(io.BytesIO(b"x" * 11), "x.csv")

    assert not caught.value.transient
    assert httpserver_ipv4.log == []


def test_retry_after_parsing():
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0


def test_url_must_be_http():
    with pytest.raises(ValueError, match="http"):
        Webhook(url="ftp://example.com/hook")


def test_https_endpoint_certificate_is_verified(tmp_path):
    import ssl

    from pytest_httpserver import HTTPServer
    from servers.ftp import make_self_signed

    cert, key = make_self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    try:
        server.expect_request("/hook").respond_with_data("ok")
        url = server.url_for("/hook")
        assert url.startswith("https://")

        with pytest.raises(DestinationError, match="TLS to the endpoint failed") as caught:
            Webhook(url=url, backoff_seconds=0.01).deliver(io.BytesIO(b"x"), "x.csv")
        assert not caught.value.transient

        Webhook(url=url, ca_file=str(cert)).deliver(io.BytesIO(b"x"), "x.csv")
        assert len(server.log) == 1
    finally:
        server.stop()
