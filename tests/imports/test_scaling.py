"""Work that grows with the file, not with its square: counted in SQLite's own virtual-machine steps, not seconds."""

from __future__ import annotations

from imports.stages import ImportStore, run_stages
from sqlalchemy import event

ROUTES = {"Email": "email", "First": "first_name"}


class CountingStore:
    """A fresh SQLite store that counts the virtual-machine steps (in thousands) of every statement run on it."""

    def __init__(self, tmp_path, name: str) -> None:
        from ferry.store.engine import make_engine
        from ferry.store.migrate import upgrade

        url = f"sqlite:///{tmp_path / f'{name}.db'}"
        self.engine = make_engine(url)
        upgrade(self.engine)
        self.steps = 0
        event.listen(self.engine, "connect", lambda dbapi_conn, _: dbapi_conn.set_progress_handler(self._count, 1000))
        self.engine.dispose()  # connections from now on count
        self.store = ImportStore("sqlite", url, self.engine)
        self.workspace = self.store.workspace()

    def _count(self) -> int:
        self.steps += 1
        return 0  # 0: carry on

    def import_rows(self, tmp_path, rows: list[dict], **options):
        self.steps = 0
        loaded, _, _ = run_stages(self.store, tmp_path, self.workspace, rows, ROUTES, **options)
        return loaded


def steps_to_reimport(tmp_path, rows: int) -> int:
    """Steps of an import that updates ``rows`` records it matched, every one of them."""
    counting = CountingStore(tmp_path, f"reimport-{rows}")
    counting.import_rows(tmp_path / f"a{rows}", [{"Email": f"p{i}@example.com", "First": "A"} for i in range(rows)])
    loaded = counting.import_rows(
        tmp_path / f"b{rows}", [{"Email": f"p{i}@example.com", "First": "B"} for i in range(rows)], duplicates="update"
    )
    assert loaded.updated_rows == rows
    counting.engine.dispose()
    return counting.steps


def steps_to_fold(tmp_path, rows: int) -> int:
    """Steps of an import of ``rows`` rows in which every e-mail comes twice, folded into one record each."""
    counting = CountingStore(tmp_path, f"fold-{rows}")
    file = [{"Email": f"p{i // 2}@example.com", "First": None if i % 2 else f"F{i}"} for i in range(rows)]
    loaded = counting.import_rows(tmp_path / f"f{rows}", file, duplicates="update", merge="fill_empty")
    assert (loaded.created_rows, loaded.skipped_rows) == (rows // 2, rows // 2)
    counting.engine.dispose()
    return counting.steps


def test_reimporting_records_that_all_match_grows_linearly_on_sqlite(tmp_path):
    small, large = steps_to_reimport(tmp_path, 2_000), steps_to_reimport(tmp_path, 8_000)
    assert large < 6 * small, (small, large)  # 4x the rows: about 4x the work (it was about 16x: quadratic)


def test_folding_a_file_whose_every_row_repeats_grows_linearly_on_sqlite(tmp_path):
    small, large = steps_to_fold(tmp_path, 2_000), steps_to_fold(tmp_path, 8_000)
    assert large < 6 * small, (small, large)  # without an index on each group's first row SQLite joins them quadratically
