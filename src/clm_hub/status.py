"""What ``clm-hub status`` shows: last runs, cursors and lag, rejected records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select

from clm_hub.store.tables import RejectedRecord, SyncCursor, SyncRun

__all__ = ["CursorView", "RejectedView", "RunView", "StatusReport", "read_status"]

run_t = SyncRun.__table__  # type: ignore[attr-defined]
cursor_t = SyncCursor.__table__  # type: ignore[attr-defined]
rejected_t = RejectedRecord.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class RunView:
    connector: str
    stream: str
    run_id: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    records_read: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    api_calls: int
    retries: int
    throttled: int
    error: str | None


@dataclass(frozen=True)
class CursorView:
    connector: str
    stream: str
    version: int
    updated_since: datetime | None
    stored_at: datetime
    lag_seconds: float | None
    """How far behind now the stream's data is (``None`` for token-only cursors)."""


@dataclass(frozen=True)
class RejectedView:
    connector: str
    stream: str
    external_id: str | None
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class StatusReport:
    runs: list[RunView]
    cursors: list[CursorView]
    rejected_counts: dict[tuple[str, str], int]
    recent_rejected: list[RejectedView]


def read_status(engine: Engine, *, now: datetime, recent: int = 10) -> StatusReport:
    """The latest run of every connector stream, every cursor, and rejected records."""
    c = run_t.c
    latest = (
        select(c.connector, c.stream, func.max(c.id).label("last_id"))
        .group_by(c.connector, c.stream)
        .subquery()
    )
    with engine.connect() as conn:
        runs = [
            RunView(
                r.connector,
                r.stream,
                r.run_id,
                r.status,
                r.started_at,
                r.finished_at,
                r.records_read,
                r.inserted,
                r.updated,
                r.unchanged,
                r.rejected,
                r.api_calls,
                r.retries,
                r.throttled,
                r.error,
            )
            for r in conn.execute(
                select(run_t).join(latest, c.id == latest.c.last_id).order_by(c.connector, c.stream)
            )
        ]
        cursors = [
            CursorView(
                r.connector,
                r.stream,
                r.version,
                r.updated_since,
                r.updated_at,
                (now - r.updated_since).total_seconds() if r.updated_since else None,
            )
            for r in conn.execute(
                select(cursor_t).order_by(cursor_t.c.connector, cursor_t.c.stream)
            )
        ]
        rc = rejected_t.c
        counts = {
            (connector, stream): int(n)
            for connector, stream, n in conn.execute(
                select(rc.connector, rc.stream, func.count()).group_by(rc.connector, rc.stream)
            )
        }
        recent_rows = [
            RejectedView(r.connector, r.stream, r.external_id, r.reason, r.created_at)
            for r in conn.execute(select(rejected_t).order_by(rc.id.desc()).limit(recent))
        ]
    return StatusReport(runs, cursors, counts, recent_rows)
