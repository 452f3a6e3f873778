"""What sniffing finds out about a file (:class:`FileInfo`), and the schema of every batch read from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

ROW = "__row__"
ERROR = "__error__"
FILE_TYPES = ("csv", "tsv", "json", "jsonl", "xlsx", "xls", "parquet")


@dataclass(frozen=True)
class SheetInfo:
    """One worksheet of a workbook, as a preview lists it so that a person can choose another."""

    name: str
    index: int  # 1-based, in workbook order: what ``sheet="2"`` chooses
    rows: int | None  # rows below the first as the workbook records its size (approximate); None when it does not say
    hidden: bool = False

    def to_json(self, read: bool) -> dict:
        return {"name": self.name, "index": self.index, "rows": self.rows, "hidden": self.hidden, "read": read}


@dataclass(frozen=True)
class FileInfo:
    """What :func:`sniff` found out about a file: enough to read it again without guessing."""

    path: Path
    file_type: str  # csv tsv json jsonl xlsx xls parquet
    compression: str | None  # None, "gzip", "zip"
    encoding: str | None  # a Python codec name; None for binary formats
    delimiter: str | None
    quotechar: str | None
    columns: list[str]  # unique, cleaned source column names, in file order
    warnings: list[str]  # e.g. duplicate/blank headers renamed
    member: str | None = None  # the data file inside a zip archive
    sheet: str | None = None  # the worksheet read from a workbook
    sheets: tuple[SheetInfo, ...] = ()  # every worksheet of a workbook, in order
    json_path: str | None = None  # ijson prefix of the array of records ("item", or "data.item")
    skip_records: int = 0  # CSV records before the header (Excel's "sep=;" line)
    header_record: int = 1  # CSV: the header's record number, counting blank lines (1 unless lines precede it)
    trailing_delimiter: bool = False  # CSV: data rows end with a delimiter the header lacks ("a,b,c,")
    line_terminator: str | None = None  # "\n", "\r\n" or "\r" (CSV, as first seen)
    size_bytes: int = 0  # the file's size on disk
    raw_columns: list[str] = field(default_factory=list)  # the header as written, before cleaning
    header_bytes: int = 0  # CSV: the header record's length in UTF-8 bytes (pyarrow's block must hold it)

    def schema(self) -> pa.Schema:
        """The schema of every batch :func:`iter_batches` yields for this file."""
        return batch_schema(self.columns)


def batch_schema(columns: list[str]) -> pa.Schema:
    return pa.schema([pa.field(c, pa.string()) for c in columns] + [pa.field(ROW, pa.int64()), pa.field(ERROR, pa.string())])
