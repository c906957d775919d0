"""Run history: one row per connector stream per cycle, with its counts and outcome."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Engine, insert, update

from clm_hub.connectors.http import HttpStats
from clm_hub.push.executor import PushCounts
from clm_hub.store.tables import SyncRun

__all__ = [
    "RunKind",
    "RunStatus",
    "finish_stream_run",
    "mark_interrupted",
    "start_stream_run",
]

run_t = SyncRun.__table__  # type: ignore[attr-defined]


class RunStatus(StrEnum):
    """How a stream's part of a cycle ended."""

    RUNNING = "running"
    OK = "ok"
    PARTIAL = "partial"
    """It finished, but some records were rejected (they are listed by ``status``)."""
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    """The process died mid-run; the next run resumed from the stored cursor."""


class RunKind(StrEnum):
    """What started a run; ``sync_run.kind``."""

    CYCLE = "cycle"
    """A regular pull (scheduled, webhook follow-up or `clm-hub sync`), then the push."""
    RECONCILE = "reconcile"
    """A reconciliation sweep: a re-read over a longer window than the incremental cursor's
    overlap (or in full), catching changes that webhooks and cursors missed."""
    STAGES = "stages"
    """A push of time-based stage changes to every tool, without pulling."""


def mark_interrupted(engine: Engine, connector: str, now: datetime) -> int:
    """Close runs left ``running`` by a process that died; returns how many."""
    with engine.begin() as conn:
        result = conn.execute(
            update(run_t)
            .where(run_t.c.connector == connector, run_t.c.status == RunStatus.RUNNING.value)
            .values(status=RunStatus.INTERRUPTED.value, finished_at=now)
        )
        return result.rowcount


def start_stream_run(
    engine: Engine,
    *,
    run_id: str,
    connector: str,
    stream: str,
    now: datetime,
    kind: RunKind = RunKind.CYCLE,
) -> int:
    """Record that a stream started; returns the row id the page writer counts into."""
    with engine.begin() as conn:
        row_id = conn.execute(
            insert(run_t)
            .values(
                run_id=run_id,
                connector=connector,
                stream=stream,
                kind=kind.value,
                status=RunStatus.RUNNING.value,
                started_at=now,
            )
            .returning(run_t.c.id)
        ).scalar_one()
    return int(row_id)


def finish_stream_run(
    engine: Engine,
    row_id: int,
    *,
    status: RunStatus,
    now: datetime,
    http: HttpStats,
    error: str | None = None,
    push: PushCounts | None = None,
) -> None:
    """Record how a stream (or, with ``push``, a connector's push) ended and what it cost."""
    values: dict[str, object] = {
        "status": status.value,
        "finished_at": now,
        "api_calls": http.api_calls,
        "retries": http.retries,
        "throttled": http.throttled,
        "error": error,
    }
    if push is not None:
        values |= {
            "planned": push.planned,
            "sent": push.sent,
            "confirmed": push.confirmed,
            "failed": push.failed,
            "rejected": push.gave_up,
            "batches": push.batches,
        }
    with engine.begin() as conn:
        conn.execute(update(run_t).where(run_t.c.id == row_id).values(values))
