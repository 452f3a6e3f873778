"""Writes the small hostile case files of this folder (run it from here; the big ones are made by the tests)."""

import gzip
import io
import zipfile
from pathlib import Path

here = Path(__file__).parent

rows = "".join(f"user{i}@example.com,User {i}\n" for i in range(2000))
whole = gzip.compress(("email,name\n" + rows).encode(), mtime=0)
(here / "truncated.csv.gz").write_bytes(whole[: len(whole) // 2])  # a download cut short

with zipfile.ZipFile(here / "zip_slip.zip", "w") as z:
    z.writestr("../../etc/contacts.csv", "email,name\nada@example.com,Ada\n")

with zipfile.ZipFile(here / "text_named_xlsx.zip", "w") as z:
    z.writestr("contacts.xlsx", "Please find the contacts attached.\nKind regards\n")

deep = '{"email":"deep@example.com","x":' + '{"a":' * 3000 + "1" + "}" * 3000 + "}"
(here / "deep_line.jsonl").write_text(
    '{"email":"ada@example.com","name":"Ada"}\n' + deep + "\n" + '{"email":"alan@example.com","name":"Alan"}\n'
)
(here / "deep_element.json").write_text(
    '[{"email":"ada@example.com","name":"Ada"},\n' + deep + ',\n{"email":"alan@example.com","name":"Alan"}]\n'
)

buf = io.BytesIO()
buf.write(b"email,name,notes\n")
buf.write(b"ada@example.com,Ada,plain\n")
buf.write(b"alan@example.com,Al\x00an,two\x00nul\x00s\n")
buf.write(b"grace@example.com,\x00,x\n")
buf.write(b"".join(b"user%d@example.com,User %d,note %d\n" % (i, i, i) for i in range(60)))  # NULs are rare, not binary
(here / "nul_bytes.csv").write_bytes(buf.getvalue())
