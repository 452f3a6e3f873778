"""CSV and TSV.

CSV is the format that matters most and the one that goes wrong most, so it gets a
two-speed reader. The fast path cuts the decoded text into record-aligned blocks with
numpy (a newline ends a record when an even number of quotes precede it), numbers the
records' first lines from the same arrays, and lets pyarrow's multi-threaded parser do
the rest. Whenever that model of the file could be wrong — a quote in the middle of an
unquoted field, a ragged row, a row count that disagrees — the block (or, for stray
quotes, the rest of the file) goes through Python's ``csv`` module, which is slower but
exact. Correct first, fast when the file allows it.
"""

from __future__ import annotations

import atexit
import csv
import functools
import io
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ferry.errors import SourceFileError
from ferry.settings import get_settings
from tasks.imports.parse.batches import Batcher, Stats
from tasks.imports.parse.encoding import text_lines, utf8_chunks
from tasks.imports.parse.fileinfo import ROW, FileInfo, batch_schema

MAX_BLOCK_BYTES = 64 * 1024 * 1024  # pyarrow's block grows to hold the header, up to this; longer lines take the exact path


class _CountingStream(io.RawIOBase):
    """A readable file over UTF-8 chunks for pyarrow, counting quotes and newlines and
    keeping the last chunks, so that the final record can be checked after the fact.

    pyarrow's streaming CSV reader reads ahead on its own IO thread, up to 32 blocks
    (64 MB at 2 MB blocks, a third of the read stage's memory). The
    stream lets it run only ``READS_AHEAD`` reads ahead of the parsed blocks the
    consumer has asked for (``want_block()``). The wait has a timeout, so a parser
    that needs more than that is slowed down, never deadlocked.

    pyarrow's threads must never need the GIL once the interpreter is finalizing:
    such a thread is ended where it stands, and the process aborts ("Fatal Python
    error: Aborted", "terminate called without an active exception", exit 134) or
    hangs in pyarrow's thread-pool shutdown. They take it for a read of this stream,
    to call the invalid-row handler, and to release a Python ``bytes`` a read
    returned, whenever pyarrow frees that block. So pyarrow reads the stream through
    a native buffered stream (:func:`pyarrow_source`), which copies each read's bytes
    and releases them inside the read; and a stream is stopped when its reader is
    done with, however that happens (:meth:`stop`): it reads as ended, and the
    reader is read to its end by the thread stopping it, which proves pyarrow's work
    on it over. At exit, every stream still open is stopped (:func:`_close_live_readers`).
    """

    READS_AHEAD = 4
    WAIT_SECONDS = 0.5
    DRAIN_SECONDS = 30.0  # a stopped reader reaches its end well within this (it parses only what was read ahead)
    SETTLE_SECONDS = 0.05  # when the reader could not be read to its end: how long no read must come before it counts as quiet

    def __init__(self, chunks: Iterator[bytes], quote: bytes | None) -> None:
        self._chunks = chunks
        self._quote = quote
        self._buf = memoryview(b"")
        self.quotes = 0
        self.newlines = 0
        self.total = 0
        self.tail: list[bytes] = []
        self._turn = threading.Condition()
        self._reads = 0
        self._allowed = self.READS_AHEAD
        self._stopped = False
        self._inside = 0  # calls of pyarrow's IO thread in progress
        self._calls = 0
        self.reader: pacsv.CSVStreamingReader | None = None
        self.failed = False  # the reader raised: reading it to its end proves nothing

    def readable(self) -> bool:
        return True

    def want_block(self) -> None:
        """The consumer asks for one more parsed block: the reader may read one more."""
        with self._turn:
            self._allowed += 1
            self._turn.notify()

    def halt(self) -> None:
        """From now on the stream reads as ended; a read waiting for its turn returns at once."""
        with self._turn:
            self._stopped = True
            self._turn.notify_all()

    def stop(self) -> None:
        """The reader is done with: the stream reads as ended, pyarrow has stopped reading it, the reader is closed.

        Call it from the thread that reads batches (or with that thread gone from the
        reader). The reader is read to its end here: pyarrow delivers the end only after
        its IO thread's last read of the stream has returned and the thread has left
        Python (and after every block read ahead was parsed, the invalid-row handler
        called), so no pyarrow thread calls into Python for this stream afterwards.
        Only what was read ahead is parsed (and dropped): a few blocks, tens of
        milliseconds. A reader that failed ends at once, whatever its IO thread
        does: then the stream waits until no read has come for ``SETTLE_SECONDS``.
        The reader stays referenced by the stream (and the stream by pyarrow):
        neither is freed, so nothing of them is released on a pyarrow thread.
        """
        self.halt()
        reader = self.reader
        drained = reader is not None and not self.failed and self._drain(reader)
        if reader is not None:
            reader.close()
        if not drained:
            self._settle()
        _STREAMS.discard(self)
        self._buf, self.tail = memoryview(b""), []
        close = getattr(self._chunks, "close", None)
        if close is not None:
            try:
                close()  # the file it reads is closed now, not whenever the stream is freed
            except ValueError:  # still running in an IO thread that ignored the deadline: it ends by itself
                pass

    def _drain(self, reader: pacsv.CSVStreamingReader) -> bool:
        """Read ``reader`` to its end; False when it failed first (its IO thread may not have finished then)."""
        deadline = time.monotonic() + self.DRAIN_SECONDS
        while time.monotonic() < deadline:
            try:
                reader.read_next_batch()
            except StopIteration:
                return True
            except Exception:  # noqa: BLE001 - a parse error in what was read ahead: wait for the IO thread instead
                return False
        return False

    def _settle(self) -> None:
        """Wait until pyarrow's IO thread has made its last read of the stream (it read the end) and left it."""
        deadline = time.monotonic() + self.DRAIN_SECONDS
        with self._turn:
            calls = -1
            while calls != self._calls and time.monotonic() < deadline:
                calls = self._calls
                self._turn.wait_for(lambda: not self._inside, timeout=5)
                self._turn.wait(self.SETTLE_SECONDS)

    def readinto(self, b) -> int:
        with self._turn:
            self._inside += 1
            self._calls += 1
        try:
            return self._readinto(b)
        finally:
            with self._turn:
                self._inside -= 1
                self._turn.notify_all()

    def _readinto(self, b) -> int:
        with self._turn:
            self._turn.wait_for(lambda: self._stopped or self._reads < self._allowed, timeout=self.WAIT_SECONDS)
            if self._stopped:
                return 0
            self._reads += 1
        # Fill the buffer (short reads only at EOF, or to keep a CR with its LF, see below).
        filled = 0
        while filled < len(b):
            if not len(self._buf):
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                if self._quote:
                    self.quotes += chunk.count(self._quote)
                self.newlines += chunk.count(b"\n")
                self.total += len(chunk)
                self.tail = (self.tail + [chunk])[-2:]
                self._buf = memoryview(chunk)
            n = min(len(b) - filled, len(self._buf))
            b[filled : filled + n] = self._buf[:n]
            self._buf = self._buf[n:]
            filled += n
        if filled > 1 and b[filled - 1] == 13:
            # pyarrow drops the LF of a quoted CR LF split across two reads (apache/arrow#51368,
            # fix pending in #51394): never end a read on a CR unless the file ends there.
            self._buf = memoryview(b"\r" + bytes(self._buf))
            filled -= 1
        return filled


def pyarrow_source(stream: _CountingStream) -> pa.NativeFile:
    """``stream`` as pyarrow reads it: through a native buffered stream, so that every block pyarrow keeps is
    its own memory (a copy) and the Python ``bytes`` of a read are released within the read, on the IO
    thread that holds the GIL for it. Read straight from the stream, pyarrow would keep them and release
    them later, wherever and whenever it frees the block. With a buffer of one byte every read goes
    straight to the stream, one call each, so its short reads (the CR rule) reach the parser as they are."""
    return pa.input_stream(stream, buffer_size=1)


_LIVE: weakref.WeakSet = weakref.WeakSet()  # fast-path readers not finished yet (their generators)
_STREAMS: weakref.WeakSet = weakref.WeakSet()  # streams pyarrow may still read (not stopped yet)


@atexit.register
def _close_live_readers() -> None:
    """Readers still open when the interpreter exits (generators never finished nor closed, e.g. kept alive by
    a stored traceback or by a caller that stopped reading) are stopped first: all their streams read as
    ended at once (so no IO thread waits for a turn), then each generator is closed, which stops its stream
    (:meth:`_CountingStream.stop`). A stream whose generator runs in another thread is waited for."""
    streams = list(_STREAMS)
    for stream in streams:
        stream.halt()
    for generator in list(_LIVE):
        try:
            generator.close()
        except ValueError:  # running in another thread: its stream is waited for below
            pass
    for stream in streams:
        if stream in _STREAMS:
            stream._settle()


class _ArrowCsvFailed(Exception):
    """pyarrow gave up on the file (e.g. a record longer than a block): read it exactly instead."""


@dataclass
class _CsvProgress:
    done_line: int = 0  # the line of the last row yielded


def block_size_for(info: FileInfo, block_bytes: int) -> int:
    """pyarrow's block size for this file: ``block_bytes``, grown (by doubling) to hold a few header-long lines.

    pyarrow cannot parse a record longer than its block; a wide file (hundreds of columns, a
    75 KB header) has data lines about as long as its header, and keeps to the fast path so.
    """
    size = block_bytes
    while size < 4 * info.header_bytes and size < MAX_BLOCK_BYTES:
        size *= 2
    return size


def iter_csv(info: FileInfo, batch_rows: int, block_bytes: int, stats: Stats) -> Iterator[pa.RecordBatch]:
    progress = _CsvProgress()
    block_bytes = block_size_for(info, block_bytes)
    csv.field_size_limit(get_settings().import_max_line_bytes)  # a longer "field" is an unterminated quote, not data
    if info.line_terminator != "\r":  # pyarrow takes a lone CR for a line break everywhere; csv.reader does not
        try:
            fast = _arrow_csv(info, batch_rows, block_bytes, progress)
            _LIVE.add(fast)
            yield from fast
            return
        except _ArrowCsvFailed:
            pass
    yield from _python_csv(info, utf8_chunks(info), batch_rows, after_line=progress.done_line)


def _arrow_csv(info: FileInfo, batch_rows: int, block_bytes: int, progress: _CsvProgress) -> Iterator[pa.RecordBatch]:
    """The fast path: pyarrow's streaming parser, with line numbers derived from the data.

    pyarrow numbers records (blank lines included) but not lines. A record starts on line
    ``record number + newlines inside the values of all earlier records``, and the
    newlines inside values are counted column-wise in Arrow. Ragged records go to the
    invalid-row handler with their number and text, and are put back in their place.
    """
    ncols = len(info.columns)
    names = [f"f{i}" for i in range(ncols + info.trailing_delimiter)]
    schema = batch_schema(info.columns)
    invalid: list[tuple[int, str]] = []

    def on_invalid(row) -> str:
        invalid.append((row.number, row.text))
        return "skip"

    quote = info.quotechar.encode() if info.quotechar else None
    stream = _CountingStream(utf8_chunks(info, min(block_bytes, 8 * 1024 * 1024)), quote)
    try:
        reader = pacsv.open_csv(
            pyarrow_source(stream),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=block_bytes),
            parse_options=pacsv.ParseOptions(
                delimiter=info.delimiter or ",",
                quote_char=info.quotechar or False,
                double_quote=True,
                newlines_in_values=True,
                ignore_empty_lines=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True
            ),
        )
    except pa.ArrowInvalid as exc:
        stream.stop()
        _raise_if_encoding(info, exc, 1)
        raise _ArrowCsvFailed() from exc
    stream.reader = reader
    _STREAMS.add(stream)
    try:
        next_record, next_line = 1, 1
        # pyarrow parses 1 MB blocks (bigger ones are slower and keep far more memory); their rows
        # are gathered into batches of ``batch_rows``. The last row read is always held back: it
        # may prove to be an unterminated quote, and after a failure the exact path takes over
        # from the rows already yielded.
        held: list[pa.Table] = []
        held_rows = 0
        while True:
            stream.want_block()  # before the read, not after: the reader's thread then runs while this one parses, without the GIL
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except BaseException as exc:
                stream.failed = True  # a failed reader ends at once: its end says nothing of its IO thread
                if isinstance(exc, pa.ArrowInvalid):
                    _raise_if_encoding(info, exc, next_line)
                    raise _ArrowCsvFailed() from exc
                raise
            numbers, bad = _record_numbers(next_record, batch.num_rows, invalid)
            out, next_record, next_line = _arrow_rows(info, schema, batch, numbers, bad, next_line)
            held.append(out)
            held_rows += out.num_rows
            if held_rows > batch_rows:
                table = pa.concat_tables(held).combine_chunks()
                ready = ((table.num_rows - 1) // batch_rows) * batch_rows
                yield from table.slice(0, ready).to_batches(max_chunksize=batch_rows)
                progress.done_line = int(table.column(ROW)[ready - 1].as_py())
                held, held_rows = [table.slice(ready)], table.num_rows - ready
        if invalid:  # invalid records after the last valid row
            empty = pa.RecordBatch.from_arrays([pa.array([], pa.string()) for _ in names], names=names)
            numbers, bad = np.array([], dtype=np.int64), sorted(invalid)
            invalid.clear()
            out, next_record, next_line = _arrow_rows(info, schema, empty, numbers, bad, next_line)
            held.append(out)
        rows = pa.concat_tables(held).combine_chunks() if held else None
        if rows is not None and rows.num_rows:
            if quote and stream.quotes % 2 == 1:
                rows = _check_last_record(info, stream, rows)
            yield from rows.to_batches(max_chunksize=batch_rows)

    finally:  # however the reading ends (a write error downstream, a closed preview), pyarrow stops reading
        stream.stop()


def _raise_if_encoding(info: FileInfo, exc: Exception, line: int) -> None:
    if "utf8" in str(exc).lower() or "utf-8" in str(exc).lower():
        raise SourceFileError(
            f"{info.path.name} is not valid {info.encoding} past line {line} (the start of the file looked like it; mixed encodings?).",
            "Save it as UTF-8, or pass the right encoding, and import it again.",
        ) from exc


def _record_numbers(first: int, valid: int, invalid: list[tuple[int, str]]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """The record numbers of a batch's ``valid`` rows, and the invalid records among (or right after) them.

    Records are numbered consecutively from ``first``; each is either a row of the batch or
    an invalid record the handler saw (in order). Those consumed are removed from ``invalid``,
    which so never holds more than a block's worth.
    """
    end = first + valid
    taken = 0
    while taken < len(invalid) and invalid[taken][0] <= end:
        end += 1
        taken += 1
    bad = invalid[:taken]
    del invalid[:taken]
    if not bad:
        return np.arange(first, end, dtype=np.int64), bad
    mask = np.ones(end - first, dtype=bool)
    mask[np.array([n for n, _ in bad], dtype=np.int64) - first] = False
    return np.arange(first, end, dtype=np.int64)[mask], bad


def _arrow_rows(
    info: FileInfo, schema: pa.Schema, batch: pa.RecordBatch, numbers: np.ndarray, bad: list[tuple[int, str]], first_line: int
) -> tuple[pa.Table, int, int]:
    """A batch's rows in file order with their line numbers; header and blank rows dropped,
    invalid records parsed by csv.reader and flagged. Returns (rows, next record, next line)."""
    ncols = len(info.columns)
    columns = [batch.column(i) for i in range(ncols)]
    trailing = batch.column(ncols) if batch.num_columns > ncols else None
    inner = np.zeros(batch.num_rows, dtype=np.int64)
    for column in columns:
        if column.null_count == len(column) or not _may_hold_newline(column):
            continue
        # (no Python scalars here: converting one makes pyarrow import pandas, ~1 s of a preview)
        counts = pc.count_substring(column, "\n").to_numpy(zero_copy_only=False)
        inner += np.nan_to_num(counts, nan=0).astype(np.int64) if column.null_count else counts
    all_numbers = numbers
    all_inner = inner
    if bad:
        all_numbers = np.concatenate([numbers, np.array([n for n, _ in bad], dtype=np.int64)])
        all_inner = np.concatenate([inner, np.array([t.count("\n") for _, t in bad], dtype=np.int64)])
        order = np.argsort(all_numbers, kind="stable")
        all_numbers, all_inner = all_numbers[order], all_inner[order]
    if not len(all_numbers):
        return pa.Table.from_batches([], schema=schema), 0, first_line
    first_record = int(all_numbers[0])
    before = np.concatenate(([0], np.cumsum(all_inner)[:-1]))
    lines = first_line + (all_numbers - first_record) + before
    line_of = dict(zip(all_numbers.tolist(), lines.tolist())) if bad else None
    next_record = int(all_numbers[-1]) + 1
    next_line = int(lines[-1] + 1 + all_inner[-1])
    row_lines = lines if not bad else np.array([line_of[n] for n in numbers.tolist()], dtype=np.int64)
    errors = pa.nulls(batch.num_rows, pa.string())
    if trailing is not None and trailing.null_count < len(trailing):  # a value after the trailing delimiter
        errors = pa.array(
            np.where(trailing.is_null().to_numpy(zero_copy_only=False), None, f"ragged row: {ncols + 1} values, header has {ncols}"),
            pa.string(),
        )
    table = pa.Table.from_arrays(columns + [pa.array(row_lines, pa.int64()), errors], schema=schema)
    keep = pa.array(numbers > info.header_record)
    if columns and all(c.null_count for c in columns):  # a column without nulls means no empty row
        empty = functools.reduce(pc.and_, [pc.is_null(c) for c in columns])
        keep = pc.and_(keep, pc.invert(empty))
    if keep.false_count if isinstance(keep, pa.Array) else not pc.all(keep).as_py():
        table = table.filter(keep)
    if bad:
        extra = Batcher(info.columns, len(bad) + 1)
        for number, text in bad:
            if number <= info.header_record:
                continue
            row = _parse_record(info, text)
            values, error = _row_values(row, ncols)
            if values is None and error is None:
                continue
            extra.add(line_of[number], values, error)
        if (flushed := extra.flush()) is not None:
            merged = pa.concat_tables([table, pa.Table.from_batches([flushed])])
            table = merged.take(pc.sort_indices(merged, [(ROW, "ascending")]))
    return table, next_record, next_line


def _may_hold_newline(column: pa.Array) -> bool:
    """Whether a string column's value bytes contain a LF at all (one memchr-speed pass)."""
    data = column.buffers()[2]
    return data is not None and np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 10) > 0


def _parse_record(info: FileInfo, text: str) -> list[str]:
    kw = {"quotechar": info.quotechar, "doublequote": True} if info.quotechar else {"quoting": csv.QUOTE_NONE}
    try:
        return next(csv.reader(io.StringIO(text, newline=""), delimiter=info.delimiter or ",", strict=False, **kw), [])
    except csv.Error:
        return [text]


def _row_values(record: list[str], ncols: int) -> tuple[list | None, str | None]:
    """(values, error) of one parsed record; (None, None) for a record with no value at all."""
    if not record or all(v == "" for v in record):
        return None, None
    n = len(record)
    error = None
    if n != ncols and not (n > ncols and all(v == "" for v in record[ncols:])):
        error = f"ragged row: {n} values, header has {ncols}"
    return [v if v != "" else None for v in record[:ncols]], error


def _check_last_record(info: FileInfo, stream: _CountingStream, rows: pa.Table) -> pa.Table:
    """With an odd number of quotes in the file, the last record may be an unterminated quoted
    field that swallowed the rest of the file: re-read it strictly and flag it if so."""
    last_line = int(rows.column(ROW)[-1].as_py())
    tail = b"".join(stream.tail)
    pos = len(tail)
    for _ in range(stream.newlines - (last_line - 1) + 1):  # back to the newline before the record
        pos = tail.rfind(b"\n", 0, pos)
        if pos < 0:
            break
    if pos < 0 and stream.total > len(tail):
        text = None  # the record is longer than the tail kept: only an unterminated quote does that
    else:
        text = tail[pos + 1 :].decode("utf-8", errors="replace")
    if text is not None and not _unterminated(list(text_lines([text.encode("utf-8")])), info.delimiter or ",", info.quotechar):
        return rows
    error = Batcher(info.columns, 2)
    error.add(last_line, None, f"unterminated quoted field starting on line {last_line}")
    return pa.concat_tables([rows.slice(0, rows.num_rows - 1), pa.Table.from_batches([error.flush()])])


class _RecordLines:
    """Feeds csv.reader lines and keeps those of the current record, so that the last
    record can be checked for an unterminated quote (csv.reader accepts one silently)."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines
        self.current: list[str] = []
        self.exhausted = False

    def __iter__(self):
        return self

    def __next__(self) -> str:
        try:
            line = next(self.lines)
        except StopIteration:
            self.exhausted = True
            raise
        self.current.append(line)
        return line


def _unterminated(lines: list[str], delimiter: str, quotechar: str) -> bool:
    try:
        list(csv.reader(lines, delimiter=delimiter, quotechar=quotechar, strict=True))
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _python_csv(info: FileInfo, chunks: Iterable[bytes], batch_rows: int, after_line: int = 0) -> Iterator[pa.RecordBatch]:
    """The exact CSV path: Python's csv module, with physical line numbers from its line count.

    ``after_line``: rows starting on or before this line were yielded by the fast path,
    which this one takes over from.
    """
    sep = "\r" if info.line_terminator == "\r" else "\n"
    limit = get_settings().import_max_line_bytes
    csv.field_size_limit(limit)
    source = _RecordLines(text_lines(chunks, sep, max_line=limit, name=info.path.name))
    delimiter = info.delimiter or ","
    kw = {"quotechar": info.quotechar, "doublequote": True} if info.quotechar else {"quoting": csv.QUOTE_NONE}
    reader = csv.reader(source, delimiter=delimiter, strict=False, **kw)
    batcher = Batcher(info.columns, batch_rows)
    ncols = len(info.columns)
    skip = info.header_record
    number = 0
    while True:
        start = reader.line_num + 1
        source.current = []
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            number += 1
            reason = "a quoted field never ends (unterminated quote?)" if "field larger" in str(exc) else f"unreadable row ({exc})"
            if number > skip and start > after_line and (batch := batcher.add(start, None, reason)):
                yield batch
            continue
        number += 1
        if number <= skip or start <= after_line:
            continue
        if source.exhausted and info.quotechar and _unterminated(source.current, delimiter, info.quotechar):
            values, error = None, f"unterminated quoted field starting on line {start}"
        else:
            values, error = _row_values(record, ncols)
            if values is None:
                continue
        if batch := batcher.add(start, values, error):
            yield batch
    if batch := batcher.flush():
        yield batch
