"""Run records: the persisted return values of flows, the entries of Ferry's run ledger (``ferry.runs``)."""

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
    warnings: list[str] = Field(default_factory=list, description="What the user should know, e.g. a window that matched no row.")


class ImportRecord(BaseModel):
    """What one import run did (or, with dry_run, would do). Field names are a contract (CLI --json, history)."""

    run_id: str
    status: Literal["success", "partial", "failed", "submitted", "rolled_back"] = Field(
        description="success: every row loaded; partial: some rows rejected (within max_error_rate), the rest loaded; "
        "failed: nothing loaded; submitted: handed to a deployment run, not finished; rolled_back: loaded, then undone."
    )
    processing_mode: Literal["inline", "deployment"] = "inline"
    dry_run: bool = False
    resource: str
    workspace: str
    source: str
    file_size: int = 0
    file_type: str | None = None
    total_rows: int = 0
    processed_rows: int = 0
    created_rows: int = 0
    updated_rows: int = 0
    skipped_rows: int = 0
    error_rows: int = 0
    errors: list[dict] = Field(default_factory=list, description="First errors: row (line in the file), field, value, error.")
    error_count: int = Field(default=0, description="All errors (a row can have several); every one is in the rejected-rows file.")
    error_summary: dict[str, int] = Field(default_factory=dict, description="'field:check' -> number of errors.")
    rejected_rows_path: str | None = Field(default=None, description="CSV of every rejected row: its original cells plus its errors.")
    warnings: list[str] = Field(default_factory=list)
    reference_warnings: list[dict] = Field(default_factory=list, description="Unresolved references: field, resource, rows, values.")
    created_references: dict[str, int] = Field(
        default_factory=dict, description="Records created by create_missing_references, per resource."
    )
    samples: dict[str, list[dict]] = Field(default_factory=dict, description="First rows to create, update, skip and reject.")
    data_quality: list[dict] = Field(default_factory=list, description="great-expectations summary on a sample of the file.")
    mapping: list[dict] = Field(default_factory=list, description="The mapping used (ColumnMapping JSON).")
    options: dict = Field(default_factory=dict, description="Strategy options of the run.")
    deployment_run_id: str | None = Field(default=None, description="processing_mode=deployment: the run that does the work; poll it.")
    timings: dict[str, float] = Field(
        default_factory=dict,
        description="Seconds per stage (read, validate_transform_load: they run at the same time, merge: "
        "the part of the load after the last row was staged, rejected_rows, data_quality_wait).",
    )
    started_at: datetime
    completed_at: datetime | None = None
    error: str | None = None


class RollbackRecord(BaseModel):
    """What one rollback run undid."""

    run_id: str
    import_run_id: str
    status: Literal["success", "failed"]
    resource: str | None = None
    workspace: str | None = None
    deleted_rows: int = 0
    restored_rows: int = 0
    deleted_references: dict[str, int] = Field(default_factory=dict)
    started_at: datetime
    completed_at: datetime | None = None
    error: str | None = None
