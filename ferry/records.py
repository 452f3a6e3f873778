"""Run records: the persisted return values of flows, i.e. Ferry's job ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class ExportRecord(BaseModel):
    """What one export run did. Field names are a contract (CLI --json, job runs)."""

    run_id: str
    status: Literal["success", "failed"]
    resource: str
    workspace: str
    format: str
    record_count: int = 0
    file_size: int = 0
    destination_path: str | None = None
    url: str | None = None
    sha256: str | None = None
    started_at: datetime
    completed_at: datetime | None = None
    error: str | None = None
    validation_failures: list[dict] = Field(default_factory=list, description="Rows failing catalog checks (on_invalid='warn').")
