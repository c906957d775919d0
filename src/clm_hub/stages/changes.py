"""Telling plugins about stage changes: the ``stage_changes`` hook, at least once.

A stage step records every change in ``stage_transition`` (ids ascending). After the step
commits, the changes past a delivery mark are read in batches and handed to every plugin
implementing ``stage_changes``; the mark (stored like a stream cursor) moves after each
batch. A crash between the step and delivery therefore delivers those changes on the next
step instead of losing them, and a plugin may see a batch twice, never zero times. A
plugin that raises is logged and skipped for that batch, so one broken notifier neither
blocks the others nor wedges the hub.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import pluggy
import structlog
from sqlalchemy import Connection, Engine, func, select

from clm_hub.cursors import cursor_t, save_cursor
from clm_hub.linking import customer_t, transition_t
from clm_hub.records import StreamCursor

__all__ = ["DELIVERY_MARK", "StageChange", "StageChangeDelivery", "hook_notifier"]

log = structlog.get_logger("clm_hub.stages.changes")

DELIVERY_MARK = ("_hub", "stage_changes")
"""The (connector, stream) key of the last delivered ``stage_transition`` id."""
BATCH = 1000

Notify = Callable[[Sequence["StageChange"]], None]


@dataclass(frozen=True)
class StageChange:
    """One customer moved from one stage to another (``from_stage`` None: first stage)."""

    id: int
    """The ``stage_transition`` row: increasing, so a receiver can drop repeats."""
    customer_id: int
    email: str | None
    from_stage: str | None
    to_stage: str
    at: datetime
    reason: str


def hook_notifier(manager: pluggy.PluginManager) -> Notify | None:
    """A ``Notify`` calling each ``stage_changes`` implementation on its own, or None when
    no plugin implements the hook (so the hub does not even read the changes)."""
    impls = manager.hook.stage_changes.get_hookimpls()
    if not impls:
        return None

    def notify(changes: Sequence[StageChange]) -> None:
        for impl in impls:
            try:
                impl.function(changes=changes)
            except Exception as exc:  # isolation: one notifier's bug is not the hub's
                log.error(
                    "stage_changes.hook_failed", plugin=impl.plugin_name,
                    error=f"{type(exc).__name__}: {exc}", changes=len(changes),
                )  # fmt: skip

    return notify


class StageChangeDelivery:
    """Delivers the changes recorded since the mark; one per store."""

    def __init__(self, engine: Engine, notify: Notify) -> None:
        self.engine = engine
        self.notify = notify

    def start(self, now: datetime) -> None:
        """Before a stage step: store the newest recorded change as the mark if none is
        stored yet, so history from before any plugin listened is not replayed, while the
        step's own changes survive a crash before delivery."""
        with self.engine.begin() as conn:
            if _stored_mark(conn) is None:
                newest = conn.execute(select(func.max(transition_t.c.id))).scalar_one()
                _save_mark(conn, int(newest or 0), now)

    def deliver(self, now: datetime) -> int:
        """Hand every change after the stored mark to ``notify``, moving the mark after
        each batch; returns how many were handed over."""
        delivered = 0
        with self.engine.connect() as conn:
            mark = _stored_mark(conn) or 0
        while True:
            with self.engine.connect() as conn:
                batch = list(_changes_after(conn, mark))
            if not batch:
                return delivered
            self.notify(batch)
            delivered += len(batch)
            mark = batch[-1].id
            with self.engine.begin() as conn:
                _save_mark(conn, mark, now)


def _save_mark(conn: Connection, mark: int, now: datetime) -> None:
    save_cursor(conn, *DELIVERY_MARK, 1, StreamCursor(token=str(mark)), now)


def _stored_mark(conn: Connection) -> int | None:
    token = conn.execute(
        select(cursor_t.c.token).where(
            cursor_t.c.connector == DELIVERY_MARK[0], cursor_t.c.stream == DELIVERY_MARK[1]
        )
    ).scalar_one_or_none()
    return int(token) if token is not None else None


def _changes_after(conn: Connection, mark: int) -> Iterator[StageChange]:
    t, c = transition_t.c, customer_t.c
    rows = conn.execute(
        select(t.id, t.customer_id, c.email, t.from_stage, t.to_stage, t.at, t.reason)
        .join(customer_t, customer_t.c.id == t.customer_id)
        .where(t.id > mark)
        .order_by(t.id)
        .limit(BATCH)
    )
    for row in rows:
        yield StageChange(*row)
