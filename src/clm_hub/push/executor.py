"""Sending a connector's change set: full batches, paced, with per-record outcomes.

Batches are as large as the connector allows (``max_push_batch``) and several are in
flight at once, so the tool's rate limiter (not our latency) sets the pace. Each batch's
outcomes are recorded in one transaction: a record that landed becomes the new baseline;
one that failed is retried in later cycles with a doubling wait, and after
``max_attempts`` it is listed as rejected with the tool's reason. A batch the tool
refuses as a whole (one bad record poisons a 4xx) is split and resent, so the good
records land. Recording after the call makes pushes safe to repeat: a crash in between
only means the same (idempotent) change is sent again next cycle.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Engine, insert
from sqlalchemy.dialects import postgresql, sqlite

from clm_hub.connectors.base import Connector
from clm_hub.errors import AuthError, BudgetExhausted, ConnectorError, RequestRejected
from clm_hub.linking import push_t
from clm_hub.push.planner import PlannedChange, PushTarget, scan_changes
from clm_hub.records import PushOutcome, PushStatus
from clm_hub.redaction import Redactor
from clm_hub.store.tables import RejectedRecord

__all__ = ["PushCounts", "PushExecutor"]

log = structlog.get_logger("clm_hub.push")
rejected_t = RejectedRecord.__table__  # type: ignore[attr-defined]


@dataclass
class PushCounts:
    """What one connector's push did."""

    planned: int = 0
    sent: int = 0
    confirmed: int = 0
    failed: int = 0
    gave_up: int = 0
    batches: int = 0

    def batch_fill(self, max_batch: int) -> float:
        """Records per batch as a share of the largest batch the tool allows."""
        return self.sent / (self.batches * max_batch) if self.batches else 0.0


class PushExecutor:
    """Sends one connector's planned changes and records each outcome."""

    def __init__(
        self,
        engine: Engine,
        connector: Connector[Any],
        target: PushTarget,
        *,
        now: datetime,
        redactor: Redactor,
        lock: threading.Lock,
    ) -> None:
        self.engine = engine
        self.connector = connector
        self.target = target
        self.now = now
        self.redactor = redactor
        self.lock = lock
        self.counts = PushCounts()
        self.exhausted: str | None = None
        """Why the tool's API budget refused a batch, if it did (the push is then failed)."""

    async def run(self) -> PushCounts:
        """Push every planned change; raises only when the tool refuses us altogether."""
        size = max(1, self.connector.max_push_batch)
        slots = asyncio.Semaphore(self.target.mapping.concurrency)
        in_flight: set[asyncio.Task[None]] = set()
        batch: list[PlannedChange] = []

        async def launch(chunk: list[PlannedChange]) -> None:
            await slots.acquire()
            task = asyncio.create_task(self._batch(chunk))
            task.add_done_callback(lambda _: slots.release())
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

        with self.engine.connect() as conn:
            try:
                for planned in scan_changes(conn, self.target, self.now):
                    self.counts.planned += 1
                    batch.append(planned)
                    if len(batch) == size:
                        await launch(batch)
                        batch = []
                        _raise_failures(in_flight)
                if batch:
                    await launch(batch)
                await asyncio.gather(*in_flight)
            finally:
                for task in in_flight:
                    task.cancel()
        return self.counts

    async def _batch(self, batch: list[PlannedChange]) -> None:
        outcomes = await self._send(batch)
        await asyncio.to_thread(self._record, batch, outcomes)

    async def _send(self, batch: list[PlannedChange]) -> list[PushOutcome]:
        self.counts.batches += 1
        self.counts.sent += len(batch)
        try:
            outcomes = await self.connector.push([p.change for p in batch])
        except AuthError:
            raise
        except RequestRejected as exc:
            if len(batch) == 1:
                reason = self.redactor.text(str(exc))
                return [PushOutcome(external_id=batch[0].change.external_id,
                                    status=PushStatus.FAILED, reason=reason)]  # fmt: skip
            # One bad record can make the tool refuse the whole batch: halve and resend.
            self.counts.sent -= len(batch)
            half = len(batch) // 2
            return [*await self._send(batch[:half]), *await self._send(batch[half:])]
        except ConnectorError as exc:  # rate limit or outage outlasting the client's retries
            reason = self.redactor.text(str(exc))
            if isinstance(exc, BudgetExhausted):
                self.exhausted = self.redactor.text(f"{type(exc).__name__}: {exc}")
            return [
                PushOutcome(
                    external_id=p.change.external_id, status=PushStatus.RETRY, reason=reason
                )
                for p in batch
            ]
        return _match(batch, outcomes)

    def _record(self, batch: Sequence[PlannedChange], outcomes: Sequence[PushOutcome]) -> None:
        rows: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        mapping = self.target.mapping
        for planned, outcome in zip(batch, outcomes, strict=True):
            base = {
                "connector": self.target.connector,
                "external_id": planned.change.external_id,
                "customer_id": planned.customer_id,
            }
            if outcome.status is PushStatus.OK:
                self.counts.confirmed += 1
                rows.append({
                    **base, "tags": sorted(planned.desired.tags),
                    "fields": dict(planned.desired.fields), "pushed_at": self.now, "attempts": 0,
                    "attempted_digest": None, "last_error": None, "next_attempt_at": None,
                    "gave_up_at": None,
                })  # fmt: skip
                continue
            self.counts.failed += 1
            attempts = planned.failed_attempts + 1
            gave_up = attempts >= mapping.max_attempts
            wait = mapping.retry_after * 2 ** (attempts - 1)
            rows.append({
                **base, "attempts": attempts, "attempted_digest": planned.digest,
                "last_error": outcome.reason,
                "next_attempt_at": None if gave_up else self.now + wait,
                "gave_up_at": self.now if gave_up else None,
            })  # fmt: skip
            if gave_up:
                self.counts.gave_up += 1
                rejected.append({
                    "connector": self.target.connector, "stream": "push",
                    "external_id": planned.change.external_id,
                    "reason": f"gave up after {attempts} attempts: {outcome.reason}",
                    "payload": planned.change.model_dump_json(), "created_at": self.now,
                })  # fmt: skip
        landed = [r for r in rows if "tags" in r]
        failed = [r for r in rows if "tags" not in r]
        with self.lock, self.engine.begin() as conn:
            for group in (landed, failed):
                if group:
                    conn.execute(_upsert(conn.dialect.name, list(group[0])), group)
            if rejected:
                conn.execute(insert(rejected_t), rejected)


def _upsert(dialect: str, columns: list[str]) -> Any:
    """Insert push_state rows, or update the given columns where the row exists (both
    backends speak ON CONFLICT); one statement for a whole batch of outcomes."""
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(push_t)
    updates = {k: statement.excluded[k] for k in columns if k not in ("connector", "external_id")}
    return statement.on_conflict_do_update(
        index_elements=[push_t.c.connector, push_t.c.external_id], set_=updates
    )


def _match(batch: Sequence[PlannedChange], outcomes: Sequence[PushOutcome]) -> list[PushOutcome]:
    """One outcome per change, in order; a change the tool said nothing about is retried."""
    by_id = {o.external_id: o for o in outcomes}
    return [
        by_id.get(p.change.external_id)
        or PushOutcome(
            external_id=p.change.external_id,
            status=PushStatus.RETRY,
            reason="the tool returned no outcome for this record",
        )
        for p in batch
    ]


def _raise_failures(tasks: set[asyncio.Task[None]]) -> None:
    """Stop early when a finished batch failed for a reason that dooms the rest (auth)."""
    for task in list(tasks):
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
