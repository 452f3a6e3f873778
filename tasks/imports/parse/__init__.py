"""Step 1 of an import: find out what a file is, preview it, and stream it as Arrow batches.

Every reader yields the same thing whatever the format: bounded ``pa.RecordBatch``es
whose source columns are raw text (``pa.string()``, null for empty cells, no type
guessing: typing is the transform step's job, done once against the catalog), plus
``__row__`` — the row or line number a person sees when they open the file, so that
every later error can point at it — and ``__error__`` for rows the reader itself
found broken (ragged CSV rows, invalid JSON lines). Broken rows are yielded, never
padded silently or dropped, so validation reports them with everything else.

Where each part lives:

- :mod:`.opening` - compression (gzip, zip members), streaming the decompressed bytes, materialising a seekable copy;
- :mod:`.encoding` - detecting the text encoding, streaming the text as UTF-8;
- :mod:`.fileinfo` - :class:`FileInfo` (what sniffing found), ``ROW``/``ERROR`` and the batch schema;
- :mod:`.sniffing` - :func:`sniff`: format, dialect and columns from the file's head;
- :mod:`.sheets` - a workbook's sheets: listing them, choosing one (``sheet``), formulas saved without results;
- :mod:`.batches` - the common batch builder the parsers share (``Batcher``, ``cell_text``);
- :mod:`.csv_parser`, :mod:`.json_parser` (JSON array and JSONL, nested keys flattened), :mod:`.excel_parser` (XLSX and XLS),
  :mod:`.parquet_parser` - one reader per format;
- :mod:`.reading` - :func:`iter_batches` and the registry of readers by file type;
- :mod:`.previewing` - :func:`sample` and :func:`preview` (row counts exact or estimated, every sheet listed);
- :mod:`.stage` - the stage's Prefect tasks: :func:`sniff_source`, then :func:`read_rows` into the spool.
"""

from tasks.imports.parse.fileinfo import ERROR, ROW, FileInfo
from tasks.imports.parse.previewing import preview, sample
from tasks.imports.parse.reading import iter_batches
from tasks.imports.parse.sniffing import sniff
from tasks.imports.parse.stage import Parsed, read_rows, sniff_source

__all__ = ["ERROR", "ROW", "FileInfo", "Parsed", "iter_batches", "preview", "read_rows", "sample", "sniff", "sniff_source"]
