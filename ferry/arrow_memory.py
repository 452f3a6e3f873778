"""Arrow's memory pool for Ferry's runs: jemalloc, which hands freed batch memory back to the system.

Arrow's default pool here (mimalloc) keeps freed pages for reuse, so a run's
RSS keeps the high-water mark of its largest batches: a 1M-row import peaked
at 454 MB with it and 403 MB with jemalloc, at the same speed
(``bench/import_bench.py``). An operator who sets ``ARROW_DEFAULT_MEMORY_POOL``
keeps their choice.
"""

from __future__ import annotations

import os


def use_lean_memory_pool() -> str:
    """Make jemalloc Arrow's pool for this process (unless chosen by the environment); the pool's name."""
    import pyarrow as pa

    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        try:
            pa.set_memory_pool(pa.jemalloc_memory_pool())
        except NotImplementedError:  # a pyarrow built without jemalloc keeps its default
            pass
    return pa.default_memory_pool().backend_name
