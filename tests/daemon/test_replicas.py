"""Two daemons on one PostgreSQL share the connectors through leases, and take over."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from clm_hub.leases import LeaseView, read_lease
from clm_hub.store import open_engine
from clm_hub.store.tables import SyncRun
from tests.daemon.conftest import Daemon, migrate, stamp, wait_for, write_config

run_t = SyncRun.__table__  # type: ignore[attr-defined]

# Every cycle re-reads 6 pages of 0.1 s: longer than the 0.5 s interval; the jitter keeps
# the replicas from settling into a rhythm where one always wins.
CONNECTORS = "".join(
    f'[connectors.{name}]\nplugin = "synthetic"\nid_prefix = "{name}"\ncontacts = 60\n'
    'orders = 0\npage_size = 10\npage_delay = 0.1\n'
    'schedule = { interval = "0.5s", jitter = "0.4s" }\n'
    for name in ("a", "b")
)  # fmt: skip


def cycles(daemon: Daemon, connector: str) -> list[tuple[datetime, datetime | None]]:
    """(started, finished) of each of a daemon's cycles of one connector."""
    out: list[tuple[datetime, datetime | None]] = []
    for event in daemon.events(connector=connector):
        if event["event"] == "cycle.started":
            out.append((stamp(event), None))
        elif event["event"] in ("cycle.finished", "cycle.abandoned") and out:
            out[-1] = (out[-1][0], stamp(event))
    return out


def lease(database_url: str, name: str) -> LeaseView | None:
    engine = open_engine(database_url)
    try:
        return read_lease(engine, name)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_replicas_run_each_connector_on_one_replica_at_a_time_and_take_over(
    tmp_path: Path, postgres_url: str, daemons: Callable[..., Daemon]
) -> None:
    config = write_config(
        tmp_path, postgres_url, CONNECTORS, extra='[sync]\ncursor_overlap = "10000d"\n'
    )
    migrate(postgres_url)
    replicas = [daemons(config, name=f"r{i}", lease_ttl="1.5s").start() for i in (1, 2)]
    for replica in replicas:
        replica.wait_ready()
    wait_for(
        lambda: all(cycles(r, "a") + cycles(r, "b") for r in replicas)
        and all(sum(len(cycles(r, c)) for r in replicas) >= 3 for c in ("a", "b")),
        timeout=30, what="both replicas to share the cycles",
    )  # fmt: skip

    for connector in ("a", "b"):
        spans = sorted((start, end) for r in replicas for start, end in cycles(r, connector) if end)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, f"two cycles of {connector} overlapped"
    assert sum(r.counter("clm_hub_cycles_skipped_total", reason="lease_held") for r in replicas)

    # Kill the replica in the middle of a cycle of `a`: the other waits for the lease to
    # expire, then takes over.
    holders = {r.events("daemon.started")[0]["holder"]: r for r in replicas}
    held = wait_for(
        lambda: (v := lease(postgres_url, "connector:a")) and v.holder in holders and v,
        what="a cycle of `a` in flight",
    )  # fmt: skip
    victim = holders[held.holder]
    survivor = next(r for r in replicas if r is not victim)
    victim.kill()
    killed_at = datetime.now(UTC)
    expired = lease(postgres_url, "connector:a")
    assert expired is not None and expired.holder == held.holder

    def took_over() -> datetime | None:
        after = [s for s, _ in cycles(survivor, "a") if s > killed_at]
        return after[0] if after else None

    started = wait_for(took_over, timeout=10, what="the survivor to take `a` over")
    assert started >= expired.expires_at
    assert (started - expired.expires_at).total_seconds() < 2.5
    wait_for(lambda: cycles(survivor, "a")[-1][1], what="its cycle to finish")
    engine = open_engine(postgres_url)
    try:
        with engine.connect() as conn:
            statuses = set(
                conn.execute(select(run_t.c.status).where(run_t.c.connector == "a")).scalars()
            )
    finally:
        engine.dispose()
    assert "interrupted" in statuses  # the dead replica's run, closed by the survivor
    assert survivor.stop()[0] == 0
