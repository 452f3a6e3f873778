"""Serialize: write the shaped rows as a file, batch by batch.

One writer per format, all registered in ``WRITERS``; each receives batches and
writes them to a binary sink, so no format holds the whole export in memory
(XLSX and PDF stream through their libraries' write-only modes). Optional gzip
wraps the sink. Output is deterministic: the same rows give the same bytes.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NONE

from ferry.params import ExportRequest
from ferry.spool import read_spool, spool_schema


def is_json_field(field: pa.Field) -> bool:
    return (field.metadata or {}).get(b"ferry.type") == b"json"


class Writer:
    """Base of every format writer: open on a sink, take batches, close."""

    formats: ClassVar[tuple[str, ...]] = ()

    def __init__(self, sink: BinaryIO, schema: pa.Schema, request: ExportRequest) -> None:
        self.sink = sink
        self.schema = schema
        self.request = request

    def write(self, batch: pa.RecordBatch) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Write whatever ends the file (closing brackets, footers)."""


class CsvWriter(Writer):
    formats = ("csv", "tsv")

    def __init__(self, sink, schema, request) -> None:
        super().__init__(sink, schema, request)
        delimiter = "\t" if request.format == "tsv" else request.delimiter
        self._writer = pacsv.CSVWriter(
            sink, schema, write_options=pacsv.WriteOptions(include_header=request.header, delimiter=delimiter)
        )

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


class _RowsWriter(Writer):
    """Shared by JSON-like formats: rows as dicts, JSON columns embedded as JSON."""

    def rows(self, batch: pa.RecordBatch) -> list[dict]:
        json_columns = [f.name for f in batch.schema if is_json_field(f)]
        rows = batch.to_pylist()
        for row in rows:
            for name in json_columns:
                if row[name] is not None:
                    row[name] = orjson.Fragment(row[name])
        return rows


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


class ParquetWriter(Writer):
    formats = ("parquet",)

    def __init__(self, sink, schema, request) -> None:
        super().__init__(sink, schema, request)
        self._writer = pq.ParquetWriter(sink, schema, compression="zstd")

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


WRITERS: dict[str, type[Writer]] = {fmt: cls for cls in (CsvWriter, JsonLinesWriter, JsonArrayWriter, ParquetWriter) for fmt in cls.formats}


@dataclass(frozen=True)
class Serialized:
    path: Path
    rows: int
    bytes: int


def write_file(batches, schema: pa.Schema, request: ExportRequest, target: Path) -> Serialized:
    """Write ``batches`` to ``target`` in the request's format (gzip-wrapped if asked)."""
    writer_cls = WRITERS[request.format]
    rows = 0
    with open(target, "wb") as raw:
        sink: BinaryIO = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) if request.gzip else raw
        writer = writer_cls(sink, schema, request)
        for batch in batches:
            writer.write(batch)
            rows += batch.num_rows
        writer.close()
        if request.gzip:
            sink.close()
    return Serialized(target, rows, target.stat().st_size)


@task(name="serialize", cache_policy=NONE, persist_result=False)
def serialize(spool: Path, request: ExportRequest) -> Serialized:
    """Write the shaped spool as the export file, next to the spool."""
    target = spool.with_name(f"export.{request.extension()}")
    return write_file(read_spool(spool), spool_schema(spool), request, target)
