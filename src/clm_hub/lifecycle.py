"""Keeping stages current between a cycle's pulls and its pushes.

The sync engine hands over the customers whose data changed in this cycle; customers
changed by an earlier cycle that died before its stage step are found too, from a
watermark stored like a stream cursor (customers whose ``updated_at`` moved since the
last completed stage step, an index range scan). So a crash anywhere never leaves a
customer's stage stale, and a cycle still costs in proportion to what changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

import structlog
from sqlalchemy import Engine, select

from clm_hub.cursors import cursor_t, save_cursor
from clm_hub.customer_ids import CustomerIds
from clm_hub.linking import customer_t
from clm_hub.records import StreamCursor, now_utc
from clm_hub.stages.changes import Notify, StageChangeDelivery
from clm_hub.stages.config import StageRules
from clm_hub.stages.engine import CycleResult, run_stage_cycle

__all__ = ["StageCatchUp"]

log = structlog.get_logger("clm_hub.lifecycle")
WATERMARK = ("_hub", "stages")
"""The (connector, stream) key under which the stage watermark is stored."""


class StageCatchUp:
    """The ``recompute`` step of a cycle: stages for every customer changed since the last."""

    def __init__(
        self,
        engine: Engine,
        rules: StageRules,
        *,
        now: Callable[[], datetime] = now_utc,
        notify: Notify | None = None,
    ) -> None:
        self.engine = engine
        self.rules = rules
        self.now = now
        self.delivery = StageChangeDelivery(engine, notify) if notify is not None else None
        """Hands the step's stage changes to plugins (``clm_hub.stages.changes``)."""
        self.last: CycleResult | None = None

    def __call__(self, changed: Iterable[int]) -> None:
        started = self.now()
        pending = self.pending_since_watermark()
        if self.delivery is not None:
            self.delivery.start(started)
        self.last = run_stage_cycle(
            self.engine,
            self.rules,
            now=started,
            changed_customer_ids=CustomerIds(changed) | pending,
        )
        with self.engine.begin() as conn:
            save_cursor(conn, *WATERMARK, 1, StreamCursor(updated_since=started), started)
        log.info(
            "stages.cycle", mode=self.last.mode, customers=self.last.customers,
            transitions=self.last.transitions, seconds=round(self.last.seconds, 3),
        )  # fmt: skip
        if self.delivery is not None:
            self.delivery.deliver(started)

    def pending_since_watermark(self) -> CustomerIds:
        """Customers whose data moved since the last completed stage step."""
        with self.engine.connect() as conn:
            mark = conn.execute(
                select(cursor_t.c.updated_since).where(
                    cursor_t.c.connector == WATERMARK[0], cursor_t.c.stream == WATERMARK[1]
                )
            ).scalar_one_or_none()
            if mark is None:  # first cycle: the stage engine starts with a full recompute
                return CustomerIds()
            rows = conn.execute(select(customer_t.c.id).where(customer_t.c.updated_at >= mark))
            return CustomerIds(rows.scalars())
