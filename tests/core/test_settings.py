"""Where the store lives: embedded default, a URL, or a Prefect SQLAlchemy connector block."""

from __future__ import annotations

import sqlalchemy as sa
from prefect_sqlalchemy import SqlAlchemyConnector

from ferry.settings import FerrySettings


def test_default_store_is_sqlite_under_the_data_dir(tmp_path):
    settings = FerrySettings(data_dir=tmp_path, database_url=None, database_block=None)  # ignore FERRY_* set by other tests
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path.resolve() / 'ferry.db'}"


def test_store_url_comes_from_a_connector_block(pg_url):
    SqlAlchemyConnector(connection_info=pg_url).save("ferry-store-test", overwrite=True)

    url = FerrySettings(database_url=None, database_block="ferry-store-test").resolved_database_url()

    assert sa.make_url(url) == sa.make_url(pg_url)
    with sa.create_engine(url).connect() as conn:
        assert conn.exec_driver_sql("select current_database()").scalar() == sa.make_url(pg_url).database
