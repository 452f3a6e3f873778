"""XML: one ``<record>`` per row, one element per column."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from tasks.export.serialize.base import Writer, as_text, slices

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
# Characters XML 1.0 cannot carry at all, even escaped.
XML_INVALID_CHARS = r"[\x{0}-\x{8}\x{B}\x{C}\x{E}-\x{1F}\x{FFFE}\x{FFFF}]"
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_XML_NAME_JUNK = re.compile(r"[^A-Za-z0-9_.\-]+")


def xml_element_names(labels: Sequence[str]) -> list[str]:
    """Deterministic XML element names for column labels, unique within a record.

    A label that already is a plain ASCII XML name (``email``, ``phone.mobile``)
    is used as is. Otherwise each run of other characters becomes ``_``, a name
    that would start with a digit, ``-``, ``.`` or ``xml`` gets a ``_`` prefix,
    and a name taken by an earlier column gets ``_2``, ``_3``... ASCII only on
    purpose: every XML parser agrees on those names.
    """
    names: list[str] = []
    taken: set[str] = set()
    for label in labels:
        name = label if _XML_NAME.fullmatch(label) and not label.lower().startswith("xml") else None
        if name is None:
            name = _XML_NAME_JUNK.sub("_", label).strip("_") or "column"
            if not re.match(r"[A-Za-z_]", name) or name.lower().startswith("xml"):
                name = "_" + name
        base, n = name, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        names.append(name)
    return names


_XML_INVALID_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_attr(value: str) -> str:
    value = _XML_INVALID_RE.sub("\ufffd", value)
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\r", "&#13;")
        .replace("\n", "&#10;")
        .replace("\t", "&#9;")
    )


def _xml_text(array: pa.Array) -> pa.Array:
    """Escape text content: ``& < >``, CR as ``&#13;`` (parsers would fold it into LF), and
    characters XML 1.0 cannot represent replaced by U+FFFD."""
    array = pc.replace_substring_regex(array, XML_INVALID_CHARS, "\ufffd")
    for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;")):
        array = pc.replace_substring(array, raw, escaped)
    return array


def _string_bytes(array: pa.Array) -> memoryview:
    """The concatenated values of a null-free string array, without a per-row Python loop."""
    offsets = memoryview(array.buffers()[1]).cast("q" if pa.types.is_large_string(array.type) else "i")
    start, end = offsets[array.offset], offsets[array.offset + len(array)]
    return memoryview(array.buffers()[2])[start:end]


class XmlWriter(Writer):
    """XML: ``<records>`` holding one ``<record>`` per row and one child element per column.

    Element names come from the column labels via :func:`xml_element_names`;
    when a label is not itself a usable name, the element carries the label in
    a ``name`` attribute (``<Full_name name="Full name">``), so readers can
    always recover it as ``element.get("name", element.tag)``. Values are
    escaped text; JSON columns (field metadata ``ferry.type=json``) are embedded
    as their JSON text, not as XML structure. A null is ``<col xsi:nil="true"/>``;
    an empty string is ``<col></col>``. Characters XML 1.0 cannot carry (control
    characters other than tab, CR, LF) become U+FFFD. Each batch is built with
    vectorised Arrow kernels, a slice of rows at a time.
    """

    formats = ("xml",)
    slice_rows = 2_048  # each column's intermediate arrays live for one slice

    def __init__(self, sink, schema, request) -> None:
        super().__init__(sink, schema, request)
        names = xml_element_names(schema.names)
        self._open, self._nil, self._close = [], [], []
        for label, name in zip(schema.names, names, strict=True):
            attr = "" if name == label else f' name="{_xml_attr(label)}"'
            self._open.append(f"\n    <{name}{attr}>")
            self._nil.append(f'\n    <{name}{attr} xsi:nil="true"/>')
            self._close.append(f"</{name}>")
        sink.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<records xmlns:xsi="{XSI_NS}">\n'.encode())

    def write(self, batch: pa.RecordBatch) -> None:
        for part in slices(batch, self.slice_rows):
            if part.num_rows == 0:
                continue
            cells = []
            for i, column in enumerate(part.columns):
                text = _xml_text(as_text(column))
                element = pc.binary_join_element_wise(self._open[i], text, self._close[i], "")
                cells.append(pc.fill_null(element, self._nil[i]))
            record = pc.binary_join_element_wise("  <record>", *cells, "\n  </record>\n", "")
            self.sink.write(_string_bytes(record))

    def close(self) -> None:
        self.sink.write(b"</records>\n")
