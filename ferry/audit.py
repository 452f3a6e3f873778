"""The audit log: who moved which data, with which filters, how much."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select

from ferry.store.schema import audit_log, workspaces


def write_audit(
    engine: Engine, *, workspace: str, actor: str, action: str, resource: str, run_id: str | None, details: dict, payload_bytes: int | None
) -> None:
    from ferry.store.guard import store_writes

    with store_writes(engine, run_id or "-", "audit"), engine.begin() as conn:  # a busy store: Ferry's error, no SQL or values
        ws = conn.execute(select(workspaces.c.id).where(workspaces.c.slug == workspace)).scalar_one_or_none()
        if ws is None:  # nothing was read from a workspace that does not exist; nothing to attribute
            return
        conn.execute(
            insert(audit_log).values(
                workspace_id=ws,
                actor=actor,
                action=action,
                resource=resource,
                run_id=run_id,
                details=details,
                payload_bytes=payload_bytes,
                created_at=datetime.now(UTC).replace(tzinfo=None),
            )
        )


def read_audit(engine: Engine, workspace: str, limit: int = 100) -> list[dict]:
    """The workspace's audit entries, newest first, as JSON-ready dicts (camelCase)."""
    with engine.connect() as conn:
        ws = conn.execute(select(workspaces.c.id).where(workspaces.c.slug == workspace)).scalar_one_or_none()
        if ws is None:
            return []
        rows = conn.execute(
            select(audit_log)
            .where(audit_log.c.workspace_id == ws)
            .order_by(audit_log.c.created_at.desc(), audit_log.c.id.desc())
            .limit(limit)
        ).mappings()
        return [
            {
                "id": r["id"],
                "actor": r["actor"],
                "action": r["action"],
                "resource": r["resource"],
                "runId": r["run_id"],
                "details": r["details"],
                "payloadBytes": r["payload_bytes"],
                "createdAt": r["created_at"].isoformat() + "Z",
            }
            for r in rows
        ]
