"""Generator of ``formulas.xlsx``: a workbook whose formula cells carry the results a spreadsheet program saves.

openpyxl writes formulas but cannot calculate them, so it saves them without a result
(``<f>B2*2</f><v/>``), which is what the sheet ``Uncalculated`` keeps on purpose. On the
sheet ``Contacts`` this script patches the results into the sheet XML the way Excel
writes them: ``t="str"`` for text results (an empty one included), ``t="b"`` for
booleans, a serial number under a date style, and a shared formula filled down a column
(``<f t="shared" ref="F2:F4" si="0">`` and ``<f t="shared" si="0"/>``).

Run it from the repository root to write the case file again::

    .venv/bin/python tests/cases/make_formulas_xlsx.py
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import openpyxl

HERE = Path(__file__).parent

# coordinate -> (type attribute or None, saved result)
RESULTS = {
    "D2": ("str", "Ada Lovelace"),
    "D3": ("str", "Alan Turing"),
    "D4": ("str", "Grace Hopper"),
    "F2": (None, "37.5"),
    "F3": (None, "0"),
    "F4": (None, "150"),
    "G2": ("b", "1"),
    "G3": ("b", "0"),
    "G4": ("b", "1"),
    "H2": (None, "45299"),  # 2024-01-08
    "H3": (None, "45296"),  # 2024-01-05
    "H4": (None, "45308"),  # 2024-01-17
    "I2": ("str", ""),  # IF(...,"",...) saved as an empty text result: empty, and no missing result
    "I3": ("str", "no orders"),
    "I4": ("str", ""),
}


def build() -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Contacts"
    ws.append(["Email", "First name", "Last name", "Full name", "Orders", "Lifetime value", "VIP", "Last order", "Note"])
    for r, (email, first, last, orders) in enumerate(
        [
            ("ada@example.com", "Ada", "Lovelace", 3),
            ("alan@example.org", "Alan", "Turing", 0),
            ("grace@example.net", "Grace", "Hopper", 12),
        ],
        2,
    ):
        ws.append(
            [
                email,
                first,
                last,
                f'=B{r}&" "&C{r}',
                orders,
                f"=E{r}*12.5",
                f"=E{r}>2",
                f"=DATE(2024,1,5)+E{r}",
                f'=IF(E{r}=0,"no orders","")',
            ]
        )
        ws[f"H{r}"].number_format = "yyyy-mm-dd"
    other = wb.create_sheet("Uncalculated")
    other.append(["Email", "Orders", "Total"])
    other.append(["linus@example.com", 2, "=B2*2"])
    other.append(["margaret@example.com", 5, "=B3*2"])
    buffer = io.BytesIO()
    wb.save(buffer)
    return _with_results(buffer.getvalue())


def _with_results(xlsx: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(xlsx))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = _patch(data.decode("utf-8")).encode("utf-8")
            target.writestr(item, data)
    return out.getvalue()


def _patch(xml: str) -> str:
    for coordinate, (kind, value) in RESULTS.items():
        pattern = re.compile(rf'<c r="{coordinate}"([^>]*)><f>(.*?)</f><v\s*/></c>')
        kind_attr = f' t="{kind}"' if kind else ""
        xml, n = pattern.subn(
            lambda m, c=coordinate, k=kind_attr, v=value: f'<c r="{c}"{m.group(1)}{k}><f>{m.group(2)}</f><v>{v}</v></c>', xml
        )
        assert n == 1, coordinate
    # Excel fills a formula down a column as one shared formula.
    xml = xml.replace("<f>E2*12.5</f>", '<f t="shared" ref="F2:F4" si="0">E2*12.5</f>')
    for r in (3, 4):
        xml = xml.replace(f"<f>E{r}*12.5</f>", '<f t="shared" si="0"/>')
    return xml


if __name__ == "__main__":
    (HERE / "formulas.xlsx").write_bytes(build())
