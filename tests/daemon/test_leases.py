"""Row leases on both backends: one holder at a time, expiry, renewal, take-over."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from clm_hub.leases import (
    LeaseHolder,
    acquire,
    holder_id,
    holder_is_dead,
    read_lease,
    release,
    renew,
    take_over,
)
from clm_hub.store import upgrade

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)


@pytest.fixture
def store(engine: Engine) -> Engine:
    upgrade(engine)
    return engine


def test_a_free_lease_is_taken_and_a_held_one_is_refused(store: Engine) -> None:
    assert acquire(store, "connector:a", "r1", ttl=TTL, now=NOW)
    assert not acquire(store, "connector:a", "r2", ttl=TTL, now=NOW + timedelta(seconds=29))
    assert acquire(store, "connector:b", "r2", ttl=TTL, now=NOW)
    lease = read_lease(store, "connector:a")
    assert lease is not None
    assert (lease.holder, lease.expires_at) == ("r1", NOW + TTL)


def test_the_holder_extends_its_lease_and_keeps_its_acquired_time(store: Engine) -> None:
    acquire(store, "connector:a", "r1", ttl=TTL, now=NOW)
    later = NOW + timedelta(seconds=20)
    assert acquire(store, "connector:a", "r1", ttl=TTL, now=later)
    assert renew(store, "connector:a", "r1", ttl=TTL, now=later + timedelta(seconds=5))
    lease = read_lease(store, "connector:a")
    assert lease is not None
    assert (lease.acquired_at, lease.expires_at) == (NOW, later + timedelta(seconds=35))


def test_an_expired_lease_is_taken_over_and_the_old_holder_cannot_renew(store: Engine) -> None:
    acquire(store, "connector:a", "r1", ttl=TTL, now=NOW)
    after = NOW + TTL + timedelta(seconds=1)
    assert acquire(store, "connector:a", "r2", ttl=TTL, now=after)
    assert not renew(store, "connector:a", "r1", ttl=TTL, now=after)
    release(store, "connector:a", "r1")  # not r1's any more: nothing happens
    lease = read_lease(store, "connector:a")
    assert lease is not None and lease.holder == "r2" and lease.acquired_at == after


def test_release_frees_the_lease_at_once(store: Engine) -> None:
    acquire(store, "connector:a", "r1", ttl=TTL, now=NOW)
    release(store, "connector:a", "r1")
    assert read_lease(store, "connector:a") is None
    assert acquire(store, "connector:a", "r2", ttl=TTL, now=NOW)


def test_of_many_racing_replicas_exactly_one_wins(store: Engine) -> None:
    with ThreadPoolExecutor(8) as pool:
        won = list(
            pool.map(lambda i: acquire(store, "connector:a", f"r{i}", ttl=TTL, now=NOW), range(16))
        )
    assert won.count(True) == 1


def test_take_over_only_replaces_the_named_dead_holder(store: Engine) -> None:
    acquire(store, "daemon", "r1", ttl=TTL, now=NOW)
    assert not take_over(store, "daemon", dead="r0", holder="r2", ttl=TTL, now=NOW)
    assert take_over(store, "daemon", dead="r1", holder="r2", ttl=TTL, now=NOW)
    lease = read_lease(store, "daemon")
    assert lease is not None and lease.holder == "r2"


def test_holder_ids_tell_live_processes_from_dead_ones_on_this_host() -> None:
    assert not holder_is_dead(holder_id())  # this very process
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    me = holder_id()
    dead = me.replace(me.split(":")[1], str(child.pid), 1)
    assert holder_is_dead(dead)
    assert not holder_is_dead(f"elsewhere:{child.pid}:abcd")  # another host: cannot tell
    assert not holder_is_dead("not-a-holder-id")


async def test_a_held_lease_is_renewed_while_the_work_runs_and_released_after(
    store: Engine,
) -> None:
    holder = LeaseHolder(store, holder="r1", ttl=timedelta(seconds=0.3))
    async with holder.hold("connector:a") as held:
        assert held
        first = read_lease(store, "connector:a")
        await asyncio.sleep(0.5)  # longer than the TTL: only renewals keep it
        second = read_lease(store, "connector:a")
        assert first is not None and second is not None
        assert second.expires_at > first.expires_at
        other = LeaseHolder(store, holder="r2", ttl=timedelta(seconds=0.3))
        async with other.hold("connector:a") as also:
            assert not also
    assert read_lease(store, "connector:a") is None


async def test_work_whose_lease_was_taken_over_is_cancelled(store: Engine) -> None:
    holder = LeaseHolder(store, holder="r1", ttl=timedelta(seconds=0.3))

    async def work() -> str:
        async with holder.hold("connector:a") as held:
            assert held
            # Another replica steals it (as after an outage longer than the TTL).
            take_over(store, "connector:a", dead="r1", holder="r2", ttl=TTL, now=NOW)
            await asyncio.sleep(5)
        return "finished"

    task = asyncio.create_task(work())
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=2)
    lease = read_lease(store, "connector:a")
    assert lease is not None and lease.holder == "r2"  # r1 did not release r2's lease
