"""CSV and TSV."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pacsv

from tasks.export.serialize.base import Writer


class CsvWriter(Writer):
    """CSV and TSV through pyarrow's streaming CSV writer (quotes values with delimiters, quotes or newlines)."""

    formats = ("csv", "tsv")

    def __init__(self, sink, schema, request) -> None:
        super().__init__(sink, schema, request)
        delimiter = "\t" if request.format == "tsv" else request.delimiter
        self._writer = pacsv.CSVWriter(sink, schema, write_options=pacsv.WriteOptions(include_header=request.header, delimiter=delimiter))

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()
