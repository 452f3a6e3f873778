"""The ``file`` part of Coherence's multipart parse request, read as a stream: checked as CSV or Excel before a byte is kept."""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from deployments.uploads import max_upload_bytes
from ferry.errors import MalformedRequestError, PayloadTooLargeError

#: Extension -> the file type; MIME type -> extension (a file without one is named by its MIME type).
FILE_TYPES = {".csv": "csv", ".xlsx": "xlsx", ".xls": "xls"}
MIME_TYPES = {
    "text/csv": ".csv",
    "text/plain": ".csv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.ms-excel": ".xls",
}
#: Bytes a multipart body may carry beyond its file (boundaries, part headers, small fields).
_FORM_OVERHEAD = 64 * 1024


def file_name(raw: str | None, content_type: str) -> str:
    """The part's file name without folders, checked as a CSV or Excel file (else 400 Unsupported file type)."""
    name = PureWindowsPath(PurePosixPath(raw or "").name).name.strip()
    if not name:
        raise MalformedRequestError("No file uploaded")
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in FILE_TYPES:
        return name
    if not suffix and content_type in MIME_TYPES:
        return name + MIME_TYPES[content_type]
    raise MalformedRequestError("Unsupported file type")


class FormFile:
    """The ``file`` part of a multipart body as it arrives: its name and type first, then its bytes; the whole body capped."""

    def __init__(self, request: Request) -> None:
        content_type, options = parse_options_header(request.headers.get("content-type", ""))
        if content_type != b"multipart/form-data" or not options.get(b"boundary"):
            raise MalformedRequestError("No file uploaded")
        self.request, self.name, self.type = request, None, ""
        self._part: dict[str, Any] = {"field": b"", "value": b"", "name": None, "filename": None, "type": b""}
        self._pending: list[bytes] = []
        self._in_file = self._done_file = False
        callbacks = {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._part.__setitem__("field", self._part["field"] + d[s:e]),
            "on_header_value": lambda d, s, e: self._part.__setitem__("value", self._part["value"] + d[s:e]),
            "on_header_end": self._header,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }
        self._parser = MultipartParser(options[b"boundary"], callbacks)

    def _begin(self) -> None:
        self._part.update(name=None, filename=None, type=b"")

    def _header(self) -> None:
        field, value = self._part["field"].lower(), self._part["value"]
        if field == b"content-disposition":
            params = parse_options_header(value)[1]
            self._part["name"] = params.get(b"name", b"").decode("utf-8", "replace")
            self._part["filename"] = params.get(b"filename", b"").decode("utf-8", "replace") if b"filename" in params else None
        elif field == b"content-type":
            self._part["type"] = parse_options_header(value)[0]
        self._part["field"], self._part["value"] = b"", b""

    def _headers_done(self) -> None:
        if self._part["name"] == "file" and not self._done_file and self.name is None:
            self.name = file_name(self._part["filename"], self._part["type"].decode("latin-1").lower())
            self._in_file = True

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._pending.append(data[start:end])

    def _end(self) -> None:
        if self._in_file:
            self._in_file, self._done_file = False, True

    async def chunks(self):
        total, cap = 0, max_upload_bytes() + _FORM_OVERHEAD
        try:
            async for chunk in self.request.stream():
                total += len(chunk)
                if total > cap:
                    raise PayloadTooLargeError(f"The multipart body is over {cap:,} bytes.", "Split the file into smaller batches.")
                self._parser.write(chunk)
                ready, self._pending[:] = self._pending[:], []
                for data in ready:
                    yield data
            self._parser.finalize()
        except MultipartParseError:
            raise MalformedRequestError("No file uploaded") from None
        for data in self._pending:
            yield data
        if self.name is None:
            raise MalformedRequestError("No file uploaded")
