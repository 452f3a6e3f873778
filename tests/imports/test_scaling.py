"""Work that grows with the file, not with its square: counted in SQLite's own virtual-machine steps, not seconds."""

from __future__ import annotations

from imports.stages import ImportStore, run_stages
from sqlalchemy import event

ROUTES = {"Email": "email", "First": "first_name"}


def steps_to_reimport(tmp_path, rows: int) -> int:
    """SQLite VM steps (in thousands) of an import that updates ``rows`` records it matched, every one of them."""
    from ferry.store.engine import make_engine
    from ferry.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / f'scale-{rows}.db'}"
    engine = make_engine(url)
    upgrade(engine)
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0  # 0: carry on

    event.listen(engine, "connect", lambda dbapi_conn, _: dbapi_conn.set_progress_handler(count, 1000))
    engine.dispose()  # connections from now on count
    store = ImportStore("sqlite", url, engine)
    ws = store.workspace()
    run_stages(store, tmp_path / f"a{rows}", ws, [{"Email": f"p{i}@example.com", "First": "A"} for i in range(rows)], ROUTES)
    steps[0] = 0
    loaded, _, _ = run_stages(
        store, tmp_path / f"b{rows}", ws, [{"Email": f"p{i}@example.com", "First": "B"} for i in range(rows)], ROUTES, duplicates="update"
    )
    assert loaded.updated_rows == rows
    engine.dispose()
    return steps[0]


def test_reimporting_records_that_all_match_grows_linearly_on_sqlite(tmp_path):
    small, large = steps_to_reimport(tmp_path, 2_000), steps_to_reimport(tmp_path, 8_000)
    assert large < 6 * small, (small, large)  # 4x the rows: about 4x the work (it was about 16x: quadratic)
