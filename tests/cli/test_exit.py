"""The ``ferry`` process ends without tearing the interpreter down, but after everything Python's exit would run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import atexit, sys, threading, time
    from pathlib import Path
    from ferry.lifelines import exit_without_teardown

    folder = Path(sys.argv[1])
    atexit.register(lambda: (folder / "atexit").write_text("ran"))

    def late():
        time.sleep(0.5)
        (folder / "thread").write_text("joined")

    threading.Thread(target=late).start()  # not a daemon: Python waits for it, and so must this
    sys.stdout.write("buffered, no newline")
    exit_without_teardown(eval(sys.argv[2]))
    print("not reached")
    """
)


def _probe(tmp_path, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), code], capture_output=True, text=True, timeout=60)


def test_exit_runs_what_python_would_and_keeps_the_code(tmp_path):
    done = _probe(tmp_path, "3")
    assert done.returncode == 3, done.stderr
    assert done.stdout == "buffered, no newline"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "joined"


def test_exit_codes_read_as_sys_exit_reads_them(tmp_path):
    assert _probe(tmp_path, "None").returncode == 0
    done = _probe(tmp_path, "'went wrong'")
    assert done.returncode == 1 and "went wrong" in done.stderr


def test_the_ferry_command_keeps_its_exit_code(tmp_path):
    """A command that loaded Prefect and failed with exit 2 (a refused parameter) still exits 2, its message printed."""
    probe = "import prefect, sys\nsys.argv = ['ferry', 'export', 'contacts', '--workspace', 'w', '--format', 'nope']\n"
    probe += "from cli.main import app\napp()\n"  # as the console script calls it
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "format" in done.stderr
