"""One test body, run over every destination in tests/servers DESTINATIONS, each against its real server.

It checks the whole destination contract (blocks/destination.py): delivery
reports the right size and SHA-256 and the server holds exactly those bytes;
a re-delivery replaces the file, unless ``overwrite=False``, which refuses
a name that is taken and leaves the file as it was; a stream that breaks midway leaves the old
file (or nothing) at the final key and no temporaries; keys that climb out are
refused; and each optional capability the destination claims (read back,
download URL, exists/delete, list) works.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from servers import DESTINATIONS

from blocks.destination import Destination
from ferry.errors import DestinationError

PAYLOAD_SIZE = 6 * (1 << 20) + 12_345  # more than one S3 part (5 MiB), several Azure blocks / GCS chunks


class SourceBroke(Exception):
    """Raised by the test's source stream; a destination must let it through unchanged."""


class BreakingStream(io.RawIOBase):
    """Yields ``data`` and raises after ``fail_after`` bytes, like a spool file on a dying disk."""

    def __init__(self, data: bytes, fail_after: int) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._fail_after = fail_after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._pos >= self._fail_after:
            raise SourceBroke("source stream failed midway")
        n = min(len(buffer), self._fail_after - self._pos, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def payload(seed: int, size: int = PAYLOAD_SIZE) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 1024  # 32 KiB, incompressible enough, cheap
    return (block * (size // len(block) + 1))[:size]


@pytest.mark.parametrize("case", DESTINATIONS, ids=[c.name for c in DESTINATIONS])
def test_destination_contract(case, request, tmp_path):
    handle = request.getfixturevalue(case.fixture)
    dest: Destination = handle.destination
    key = "exports-2026/contacts acme.csv"
    first, second = payload(1), payload(2, PAYLOAD_SIZE - 1000)

    # deliver: reported size and hash are those of the bytes now at the server
    delivery = dest.deliver(io.BytesIO(first), key)
    assert delivery.bytes == len(first)
    assert delivery.sha256 == hashlib.sha256(first).hexdigest()
    assert delivery.location and "SECRET" not in delivery.location
    assert handle.read(key) == first
    assert handle.keys() == [key]

    # re-delivery under the same key replaces the file
    assert dest.deliver(io.BytesIO(second), key).sha256 == hashlib.sha256(second).hexdigest()
    assert handle.read(key) == second

    # a source that breaks midway: its error comes through, the old file stays, nothing half-written remains
    for target in (key, "other.csv"):
        with pytest.raises(SourceBroke):
            dest.deliver(BreakingStream(payload(3), fail_after=PAYLOAD_SIZE // 2 + 7), target)
    assert handle.read(key) == second
    assert handle.keys() == [key]

    # keys that would leave the destination's root are refused before anything is written
    for bad in ("../escape.csv", "/etc/passwd", "a/../../b.csv", ""):
        with pytest.raises(DestinationError):
            dest.deliver(io.BytesIO(b"x"), bad)
    assert handle.keys() == [key]

    # an empty file is a file (delivered without overwrite: the name is free)
    empty = dest.deliver(io.BytesIO(b""), "empty.csv", **({"overwrite": False} if dest.can("exists") else {}))
    assert (empty.bytes, empty.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert handle.read("empty.csv") == b""

    # without overwrite, a name that is taken is refused (the service's own "exists?" call) and the file stays
    if dest.can("exists"):
        for taken in (key, "empty.csv"):
            with pytest.raises(DestinationError, match="already holds a file named .*not overwritten"):
                dest.deliver(io.BytesIO(b"someone else's rows"), taken, overwrite=False)
        assert handle.read(key) == second and handle.read("empty.csv") == b""
        assert sorted(handle.keys()) == sorted([key, "empty.csv"])

    offered = {c for c in ("read", "url", "delete", "list") if dest.can(c)}
    if case.capabilities is not None:
        assert offered == case.capabilities

    if "read" in offered:
        with dest.open_source(key) as stream:
            chunks = iter(lambda: stream.read(1 << 20), b"")
            assert hashlib.sha256(b"".join(chunks)).hexdigest() == hashlib.sha256(second).hexdigest()
        target = dest.download(key, tmp_path / "copy" / "file.csv")
        assert target.read_bytes() == second
        assert os.listdir(target.parent) == ["file.csv"]
        with pytest.raises(DestinationError):
            dest.download("missing.csv", tmp_path / "copy" / "missing.csv")
        assert not (tmp_path / "copy" / "missing.csv").exists()

    if "url" in offered:
        assert delivery.url, "a destination that signs URLs returns one with each delivery"
        url = dest.download_url(key, timedelta(minutes=5))
        assert "SECRET" not in url
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert answer.read() == second
        with pytest.raises(DestinationError):
            dest.download_url(key, timedelta(days=8))
    else:
        assert delivery.url is None

    if "list" in offered:
        listed = {f.key: f for f in dest.list_files()}
        assert set(listed) == {key, "empty.csv"}
        assert listed[key].bytes == len(second)
        now = datetime.now(UTC)
        assert now - timedelta(minutes=10) < listed[key].modified < now + timedelta(minutes=10)
        assert [f.key for f in dest.list_files("exports-2026/")] == [key]

    if "delete" in offered:
        assert dest.key_for(delivery.location) == key
        assert dest.exists(key)
        dest.delete_file(key)
        assert not dest.exists(key)
        dest.delete_file(key)  # deleting a missing file is not an error
        assert handle.keys() == ["empty.csv"]
