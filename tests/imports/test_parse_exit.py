"""A process that exits with CSV readers still open exits normally (issue 15).

pyarrow's streaming CSV reader reads ahead on its own IO threads, and those call into Python
(the reads of Ferry's stream). An IO thread that needs the GIL once the interpreter is
finalizing is ended where it stands: the process aborted ("Fatal Python error: Aborted",
"terminate called without an active exception", exit 134) or hung in pyarrow's thread-pool
shutdown, about one exit in thirty here with a dozen readers open on a busy machine (more
under load). Each child below opens several readers through the parse API, reads a batch or
two of each, and exits without closing them; a child of the second kind also has each IO
thread come back late from its last read (as a busy machine schedules it), which aborted
every time before readers were stopped by reading them to their end.

The children are forked, three at a time, from one process that imported Ferry once (a child
then exits through the interpreter's normal finalization, ``atexit`` included), so a test takes
seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[2]

_CHILDREN = textwrap.dedent(
    """
    import os, sys, threading, time
    from pathlib import Path

    from tasks.imports.parse import csv_parser, sniff
    from tasks.imports.parse.batches import Stats
    from tasks.imports.parse.reading import read_batches

    path, runs, readers, lag = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    assert threading.active_count() == 1  # nothing running yet that a fork would cut in half
    if lag:
        plain = csv_parser._CountingStream.readinto

        def late(self, b):  # the IO thread is scheduled late after its last read of the stream
            n = plain(self, b)
            if not n:
                time.sleep(lag)
            return n

        csv_parser._CountingStream.readinto = late

    codes, child = [], False
    for wave in range(0, runs, 3):  # three children at a time: they compete for the CPU, as on a busy machine
        pids = []
        for run in range(wave, min(wave + 3, runs)):
            pid = os.fork()
            if pid == 0:
                child = True
                info = sniff(path)
                kept = []
                for i in range(readers):
                    batches = read_batches(info, 500, 256 * 1024, Stats())
                    for _ in range(1 + i % 2):
                        next(batches)
                    kept.append(batches)  # never closed: the interpreter exits with them open
                break
            pids.append(pid)
        if child:
            break
        codes += [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    if not child:
        print(" ".join(map(str, codes)))
    """
)


def _exit_codes(tmp_path: Path, runs: int, readers: int, lag: float) -> list[int]:
    source = tmp_path / "contacts.csv"
    if not source.exists():
        with source.open("w") as f:
            f.write("email,first_name,city\n")
            f.writelines(f'u{i}@example.com,Name {i},"City, {i % 97}"\n' for i in range(120_000))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILDREN, str(source), str(runs), str(readers), str(lag)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [int(code) for code in done.stdout.split()]


def test_exiting_with_several_csv_readers_open_never_aborts(tmp_path):
    codes = _exit_codes(tmp_path, runs=6, readers=6, lag=0)
    assert codes == [0] * 6, f"exit codes of processes that left readers open: {codes}"


def test_exiting_while_pyarrow_threads_come_back_late_never_aborts(tmp_path):
    codes = _exit_codes(tmp_path, runs=3, readers=4, lag=0.1)
    assert codes == [0] * 3, f"exit codes of processes that left readers open: {codes}"
