"""Row leases in the store: which daemon replica does a piece of work, until when.

A lease is a row ``(name, holder, acquired_at, expires_at)``. Taking one is a single atomic
statement on both backends (``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` the row is ours or
expired), so two replicas racing for the same name never both win. The holder renews it
while the work runs; if the holder dies, the lease simply expires and another replica takes
it over. Expiry is judged with the callers' clocks, so replicas' clocks must agree to well
within the lease TTL (NTP does that).

Names in use: ``connector:<id>`` (one cycle of a connector at a time across replicas) and
``daemon`` (SQLite only: a single daemon per store).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Engine, bindparam, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from clm_hub.records import now_utc
from clm_hub.store.tables import Lease
from clm_hub.store.types import UtcDateTime

__all__ = [
    "LeaseHolder",
    "LeaseView",
    "acquire",
    "holder_id",
    "holder_is_dead",
    "holder_pid",
    "read_lease",
    "release",
    "renew",
    "take_over",
]

log = structlog.get_logger("clm_hub.leases")
lease_t = Lease.__table__  # type: ignore[attr-defined]


def holder_id() -> str:
    """A replica's identity: ``host:pid:random`` (the random part tells restarts apart)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


def holder_pid(holder: str) -> tuple[str, int] | None:
    """The ``(host, pid)`` a holder id names, or ``None`` if it is not one of ours."""
    parts = holder.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


@dataclass(frozen=True)
class LeaseView:
    """A lease row as read."""

    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime


def acquire(engine: Engine, name: str, holder: str, *, ttl: timedelta, now: datetime) -> bool:
    """Take lease ``name`` for ``holder`` until ``now + ttl``, if it is free, expired or
    already ours (then it is extended). Atomic: of several racing callers, one wins."""
    module = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = module.insert(lease_t).values(
        name=name, holder=holder, acquired_at=now, expires_at=now + ttl
    )
    current = lease_t.c
    statement = statement.on_conflict_do_update(
        index_elements=[current.name],
        set_={
            "holder": statement.excluded.holder,
            "acquired_at": case(
                (current.holder == statement.excluded.holder, current.acquired_at),
                else_=statement.excluded.acquired_at,
            ),
            "expires_at": statement.excluded.expires_at,
        },
        where=or_(
            current.holder == statement.excluded.holder,
            current.expires_at < bindparam("now", now, type_=UtcDateTime()),
        ),
    ).returning(current.holder)
    with engine.begin() as conn:
        won = conn.execute(statement).scalar_one_or_none()
    return won == holder


def renew(engine: Engine, name: str, holder: str, *, ttl: timedelta, now: datetime) -> bool:
    """Extend a lease ``holder`` still has; ``False`` when it was lost (taken over)."""
    with engine.begin() as conn:
        result = conn.execute(
            update(lease_t)
            .where(lease_t.c.name == name, lease_t.c.holder == holder)
            .values(expires_at=now + ttl)
        )
    return result.rowcount == 1


def take_over(
    engine: Engine, name: str, *, dead: str, holder: str, ttl: timedelta, now: datetime
) -> bool:
    """Take lease ``name`` from ``dead``, a holder known to be gone (its process no longer
    exists), before its expiry; ``False`` if somebody else changed the lease meanwhile."""
    with engine.begin() as conn:
        result = conn.execute(
            update(lease_t)
            .where(lease_t.c.name == name, lease_t.c.holder == dead)
            .values(holder=holder, acquired_at=now, expires_at=now + ttl)
        )
    return result.rowcount == 1


def holder_is_dead(holder: str) -> bool:
    """Whether ``holder`` names a process on this host that no longer exists."""
    named = holder_pid(holder)
    if named is None or named[0] != socket.gethostname()[:80]:
        return False
    try:
        os.kill(named[1], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


def release(engine: Engine, name: str, holder: str) -> None:
    """Give a lease up at once (only if ``holder`` still has it)."""
    with engine.begin() as conn:
        conn.execute(delete(lease_t).where(lease_t.c.name == name, lease_t.c.holder == holder))


def read_lease(engine: Engine, name: str) -> LeaseView | None:
    """The lease row ``name``, expired or not, or ``None``."""
    with engine.connect() as conn:
        row = conn.execute(select(lease_t).where(lease_t.c.name == name)).one_or_none()
    if row is None:
        return None
    return LeaseView(row.name, row.holder, row.acquired_at, row.expires_at)


class LeaseHolder:
    """One replica's leases: take one for a piece of work, renew it while the work runs.

    When a renewal finds the lease gone (the store was unreachable for longer than the TTL
    and another replica took over), the work is cancelled: two replicas must never run the
    same connector at once. Cancelled work loses nothing, since every page and push outcome
    commits atomically.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        holder: str,
        ttl: timedelta,
        now: Callable[[], datetime] = now_utc,
    ) -> None:
        self.engine = engine
        self.holder = holder
        self.ttl = ttl
        self.now = now

    async def try_acquire(self, name: str) -> bool:
        return await asyncio.to_thread(
            acquire, self.engine, name, self.holder, ttl=self.ttl, now=self.now()
        )

    async def renew(self, name: str) -> bool:
        return await asyncio.to_thread(
            renew, self.engine, name, self.holder, ttl=self.ttl, now=self.now()
        )

    async def release(self, name: str) -> None:
        await asyncio.to_thread(release, self.engine, name, self.holder)

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[bool]:
        """Yield whether lease ``name`` was taken; while held, renew it every third of
        the TTL and cancel the calling task if it is lost; release it on the way out."""
        if not await self.try_acquire(name):
            yield False
            return
        owner = asyncio.current_task()
        keeper = asyncio.create_task(
            self.keep(name, on_lost=owner.cancel if owner is not None else lambda: None),
            name=f"lease-{name}",
        )
        try:
            yield True
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            try:
                await asyncio.shield(self.release(name))
            except Exception as exc:  # it expires on its own after the TTL
                log.warning("lease.release_failed", lease=name, error=type(exc).__name__)

    async def keep(self, name: str, *, on_lost: Callable[[], object]) -> None:
        """Renew lease ``name`` every third of the TTL until cancelled; call ``on_lost``
        once and stop when it is gone, or when no renewal succeeded for a whole TTL."""
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            await asyncio.sleep(self.ttl.total_seconds() / 3)
            try:
                if await self.renew(name):
                    renewed = loop.time()
                    continue
                log.error("lease.lost", lease=name, holder=self.holder, reason="taken over")
            except Exception as exc:  # the store is unreachable: retry until the TTL is up
                if loop.time() - renewed < self.ttl.total_seconds():
                    log.warning("lease.renew_failed", lease=name, error=type(exc).__name__)
                    continue
                log.error("lease.lost", lease=name, holder=self.holder, reason="store unreachable")
            on_lost()
            return
