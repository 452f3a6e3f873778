"""Process-wide settings, read from the environment (``FERRY_*``).

The embedded default needs no configuration at all: a SQLite file under
``./data`` and exports written to ``./data/exports``.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
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
    store_busy_timeout_seconds: float = Field(
        default=30, gt=0, le=3600, description="How long a writer of an SQLite store waits for another run's write lock (seconds)."
    )
    batch_rows: int = Field(default=65_536, ge=1_000, description="Rows per Arrow record batch on streaming paths.")
    # URL imports (blocks/sources.py): the SSRF guard and its limits.
    import_url_allow: str = Field(
        default="",
        description="Comma-separated IPs/CIDR networks that URL imports may reach although they are loopback, private, "
        "link-local or otherwise non-public (e.g. `10.1.2.0/24`). Empty: public addresses only.",
    )
    import_url_max_bytes: int = Field(default=2 * 1024**3, ge=1, description="Largest file a URL import downloads (bytes).")
    import_url_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Seconds to connect, and to wait for each read, of a URL import."
    )
    import_url_max_seconds: float = Field(default=1800.0, gt=0, description="Longest a whole URL download may take (seconds).")
    import_url_max_redirects: int = Field(default=5, ge=0, description="Redirects a URL import follows (each hop is checked again).")
    # Hostile files (tasks/imports/parse): what one file may cost, whatever it holds.
    import_max_expanded_bytes: int = Field(
        default=20 * 1024**3, ge=1, description="Most bytes a compressed import (zip, gzip) may expand to (default 20 GiB)."
    )
    import_max_expansion_ratio: int = Field(
        default=200, ge=1, description="Most a compressed import may expand, as expanded : compressed bytes (default 200:1)."
    )
    import_max_line_bytes: int = Field(
        default=16 * 1024**2, ge=1024, description="Longest header, line or JSON record an import reads (bytes; default 16 MiB)."
    )
    import_max_json_depth: int = Field(
        default=64, ge=2, le=1000, description="Deepest nesting of a JSON/JSONL record an import reads; a deeper record is a row error."
    )
    spool_orphan_hours: float = Field(
        default=24, gt=0, description="Age after which spool folders and destination leftovers of dead runs are swept (hours)."
    )
    import_bulk_min_rows: int = Field(
        default=200_000,
        ge=1,
        description="An import that creates at least this many records, and more than its table holds, inserts them with the "
        "table's secondary indexes and foreign keys dropped and rebuilds them in the same transaction (several times faster; "
        "the table is locked for the insert).",
    )
    import_work_mem: str = Field(
        default="64MB",
        pattern=r"^([0-9]+(kB|MB|GB))?$",
        description="PostgreSQL work_mem for an import's own transaction (its sorts and hashes over the staged rows stay in "
        "memory instead of spilling to disk); empty: the server's setting.",
    )
    quality_min_rows: int = Field(
        default=20_000,
        ge=0,
        description="Imports of fewer rows skip the great-expectations summary unless asked for (it takes 5-8 s to start; "
        "the row checks cover every row anyway).",
    )
    preview_rows: int = Field(
        default=10,
        ge=0,
        le=1000,
        description="Rows of each export copied into its first-rows table artifact (readable by everyone with Prefect UI access); "
        "0 turns the artifact off.",
    )
    smtp_block: str | None = Field(
        default=None, description="Name of the SMTP block (`ferry blocks create smtp NAME`) that sends notification e-mails."
    )
    ssh_known_hosts: Path | None = Field(
        default=None,
        description="OpenSSH known_hosts file pinning the SFTP servers that inline SFTP settings (the Cordial adapter) "
        "may reach; default data_dir/known_hosts.",
    )
    # Managed storage (blocks/managed.py): where exports go when no destination is named, and for how long.
    managed_destination: str | None = Field(
        default=None,
        description="Block reference (e.g. `s3-bucket/exports`) for managed storage; empty: the local folder data_dir/exports. "
        "Give it a folder of its own: retention cleanup deletes every file there older than the retention period.",
    )
    managed_retention_days: int = Field(
        default=30, ge=1, le=3650, description="Days a file stays in managed storage before cleanup removes it."
    )
    download_url_minutes: int = Field(
        default=15, ge=1, le=7 * 24 * 60, description="Lifetime of download URLs (S3, Azure SAS, GCS) unless a block sets its own."
    )
    # The HTTP API (api/): rate limits per API key (per client IP without one), in the `limits` notation.
    api_rate_limit: str = Field(default="600/minute", description="Requests per API key (or client IP) and window, e.g. `600/minute`.")
    api_run_rate_limit: str = Field(default="60/minute", description="Runs an API key may start per window (exports, imports).")
    rate_limit_storage: str = Field(
        default="memory://",
        description="Where rate-limit counters live: `memory://` (one API process) or `redis://HOST:6379` (shared by several).",
    )

    api_sync_max_rows: int = Field(
        default=10_000, ge=0, le=1_000_000, description="Largest export the API answers in the response body (`Prefer: respond=sync`)."
    )
    api_max_upload_bytes: int = Field(
        default=100 * 1024**2, ge=1, description="Largest file the API takes as an upload (bytes; default 100 MB): more is a 413."
    )
    upload_retention_days: int = Field(
        default=7, ge=1, le=365, description="Days an upload (its file and metadata) is kept after it was created; then it is removed."
    )
    url_signing_key: SecretStr | None = Field(
        default=None,
        description="Key that signs the API's own download URLs (local managed storage); default: a random key in data_dir/secrets.",
    )

    @field_validator("api_rate_limit", "api_run_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse

        parse(value)  # ValueError names the bad notation
        return value

    @field_validator("import_url_allow")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad entry
        return value

    def import_url_allowed_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(part.strip(), strict=False) for part in self.import_url_allow.split(",") if part.strip()]

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
