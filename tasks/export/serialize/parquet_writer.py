"""Parquet."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.export.serialize.base import Writer


class ParquetWriter(Writer):
    """Parquet (zstd), one row group per batch; native types kept."""

    formats = ("parquet",)

    def __init__(self, sink, schema, request) -> None:
        super().__init__(sink, schema, request)
        self._writer = pq.ParquetWriter(sink, schema, compression="zstd")

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()
