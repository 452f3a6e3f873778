"""The shared part of the serializers: the writer protocol, gzip, and cell helpers.

Every format writer subclasses :class:`Writer`; :func:`gzip_sink` wraps the
file when the request asks for gzip. The writers themselves are registered by
format in ``tasks.export.serialize.WRITERS``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from zlib_ng import gzip_ng_threaded

from ferry.errors import SerializationError
from ferry.params import ExportRequest


def is_json_field(field: pa.Field) -> bool:
    return (field.metadata or {}).get(b"ferry.type") == b"json"


def slices(batch: pa.RecordBatch, rows: int) -> Iterable[pa.RecordBatch]:
    """Cut a batch into slices of at most ``rows`` rows (zero-copy) to bound per-write memory."""
    for start in range(0, batch.num_rows, rows):
        yield batch.slice(start, rows)


def as_text(array: pa.Array) -> pa.Array:
    """A column as text, nulls kept: ISO 8601 for native dates/timestamps, ``true``/``false`` for booleans.

    The transform stage already turns dates into text for every format but
    Parquet; this is the fallback for callers that hand native types directly.
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return array
    if pa.types.is_timestamp(array.type):
        if array.type.tz is not None:  # whole seconds in UTC, like the transform stage's ISO 8601
            return pc.strftime(pc.cast(array, pa.timestamp("s", tz="UTC"), safe=False), format="%Y-%m-%dT%H:%M:%SZ")
        return pc.strftime(pc.cast(array, pa.timestamp("s"), safe=False), format="%Y-%m-%dT%H:%M:%S")
    if pa.types.is_date(array.type):
        return pc.strftime(array, format="%Y-%m-%d")
    return array.cast(pa.string())


class Writer:
    """Base of every format writer: open on a sink, take batches, close.

    ``max_rows`` caps formats that cannot sensibly hold long exports (PDF);
    :func:`write_file` checks a known row count against it before writing a
    byte, and writers check again batch by batch.
    """

    formats: ClassVar[tuple[str, ...]] = ()
    max_rows: ClassVar[int | None] = None
    #: Writers that turn rows into Python objects do so this many rows at a time,
    #: so their memory does not grow with the spool's batch size.
    slice_rows: ClassVar[int] = 4_096

    def __init__(self, sink: BinaryIO, schema: pa.Schema, request: ExportRequest) -> None:
        self.sink = sink
        self.schema = schema
        self.request = request

    def write(self, batch: pa.RecordBatch) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Write whatever ends the file (closing brackets, footers)."""

    def abort(self) -> None:
        """Release what the writer holds outside the sink (temporary files) after a failure."""

    @classmethod
    def check_row_count(cls, rows: int, request: ExportRequest, exact: bool = True) -> None:
        """Raise SerializationError when ``rows`` (the total, or a running count if not ``exact``) exceeds the cap."""
        if cls.max_rows is not None and rows > cls.max_rows:
            count = f"{rows:,} rows" if exact else f"more than {cls.max_rows:,} rows"
            raise SerializationError(
                f"The export has {count}; {request.format.upper()} exports hold at most {cls.max_rows:,} rows.",
                f"Narrow it (from/to, filters, a segment, or limit={cls.max_rows}) or choose csv, xlsx or parquet for long exports.",
            )


def known_resource(request: ExportRequest) -> bool:
    try:
        _ = request.resource_def
    except Exception:  # noqa: BLE001 - a writer used on its own may get any resource name
        return False
    return True


#: Compression threads beside the writer's own: zlib-ng releases the GIL, so on
#: two cores gzip keeps pace with pyarrow's CSV writer instead of doubling its time.
GZIP_THREADS = 2


def gzip_sink(raw: BinaryIO) -> BinaryIO:
    """gzip level 6 (the size of ``gzip -6``) through zlib-ng, compressed in background threads.

    zlib-ng makes the same-size stream in half of zlib's CPU time. Blocks are
    compressed pigz-style (each primed with the previous block's last 32 KiB),
    so the bytes depend only on the data, never on thread timing; the header
    has no name and no mtime: the file is renamed on delivery, and equal rows
    give equal bytes.
    """
    return gzip_ng_threaded.open(raw, "wb", compresslevel=6, threads=GZIP_THREADS)
