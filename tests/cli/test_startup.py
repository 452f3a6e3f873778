"""The CLI starts small: `ferry --help` imports none of the heavy libraries (they load where a command uses them)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "prefect",
    "great_expectations",
    "openpyxl",
    "reportlab",
    "boto3",
    "azure.storage.blob",
    "google.cloud.storage",
    "pandas",
    "paramiko",
)


def test_help_imports_no_heavy_library():
    probe = (
        "import sys\n"
        "sys.argv = ['ferry', '--help']\n"
        "from cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "Usage: ferry" in done.stdout
    assert done.stderr.strip().splitlines()[-1:] in ([], [""]), done.stderr  # none of them was imported
