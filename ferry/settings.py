"""Process-wide settings, read from the environment (``FERRY_*``).

The embedded default needs no configuration at all: a SQLite file under
``./data`` and exports written to ``./data/exports``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FerrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FERRY_", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"),
        description="Folder for the embedded SQLite store, spool files and default exports.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store; defaults to SQLite under data_dir.",
    )
    database_block: str | None = Field(
        default=None,
        description="Name of a prefect-sqlalchemy SqlAlchemyConnector block holding the store URL.",
    )
    batch_rows: int = Field(
        default=65_536, ge=1_000, description="Rows per Arrow record batch on streaming paths."
    )

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        if self.database_block:
            from prefect_sqlalchemy import SqlAlchemyConnector

            connector = SqlAlchemyConnector.load(self.database_block)
            # the block renders its URL (from a plain URL or from components) when it loads
            return connector._rendered_url.render_as_string(hide_password=False)
        return f"sqlite:///{(self.data_dir / 'ferry.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> FerrySettings:
    return FerrySettings()


def reload_settings() -> FerrySettings:
    """Forget cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()
    return get_settings()
