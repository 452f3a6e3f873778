"""Runs allocate Arrow memory from jemalloc, which returns freed batches to the system, unless the operator chose a pool."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "from ferry.arrow_memory import use_lean_memory_pool; print(use_lean_memory_pool())"


@pytest.mark.parametrize(("chosen", "expected"), [(None, "jemalloc"), ("system", "system")])
def test_a_run_uses_jemalloc_unless_the_environment_chose(chosen, expected):
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == expected
