"""JSON (one array) and JSON Lines (one object per line)."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pyarrow as pa

from tasks.export.serialize.base import Writer, is_json_field, slices


class _RowsWriter(Writer):
    """Shared by JSON-like formats: rows as dicts, JSON columns embedded as JSON."""

    def rows(self, batch: pa.RecordBatch) -> Iterator[dict]:
        json_columns = [f.name for f in batch.schema if is_json_field(f)]
        for part in slices(batch, self.slice_rows):
            rows = part.to_pylist()
            for row in rows:
                for name in json_columns:
                    if row[name] is not None:
                        row[name] = orjson.Fragment(row[name])
            yield from rows


class JsonLinesWriter(_RowsWriter):
    formats = ("jsonl",)

    def write(self, batch: pa.RecordBatch) -> None:
        for row in self.rows(batch):
            self.sink.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))


class JsonArrayWriter(_RowsWriter):
    formats = ("json",)

    def __init__(self, sink, schema, request) -> None:
        super().__init__(sink, schema, request)
        self._first = True
        sink.write(b"[")

    def write(self, batch: pa.RecordBatch) -> None:
        for row in self.rows(batch):
            self.sink.write(b"\n" if self._first else b",\n")
            self.sink.write(orjson.dumps(row))
            self._first = False

    def close(self) -> None:
        self.sink.write(b"]\n" if self._first else b"\n]\n")
