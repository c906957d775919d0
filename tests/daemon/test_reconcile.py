"""Reconciliation sweeps: what webhooks and incremental pulls missed is caught later."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from clm_hub.daemon import Daemon as DaemonObject
from clm_hub.linking import identity_t
from clm_hub.plugins import build_plugin_registry
from clm_hub.sandbox import serve
from clm_hub.scheduler import DaemonSettings
from clm_hub.settings import HubSettings
from clm_hub.store import open_engine, upgrade
from clm_hub.store.tables import SyncRun
from tests.daemon import hookbox
from tests.daemon.conftest import Daemon, migrate, wait_for, write_config

run_t = SyncRun.__table__  # type: ignore[attr-defined]


@pytest.fixture
def tool() -> Iterator[tuple[hookbox.HookboxState, str]]:
    state = hookbox.HookboxState()
    for i in range(3):
        state.add(f"h{i}", f"p{i}@example.com", updated_at=hookbox.ago(minutes=10))
    with serve(hookbox.create_app(state)) as url:
        yield state, url


def inserted_by_kind(database_url: str) -> dict[str, int]:
    """Contacts inserted per run kind (regular cycles, sweeps), from the run history."""
    engine = open_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(run_t.c.kind, func.sum(run_t.c.inserted))
                .where(run_t.c.stream == "contacts")
                .group_by(run_t.c.kind)
            ).all()
    finally:
        engine.dispose()
    return {kind: int(n) for kind, n in rows}


def known(database_url: str, external_id: str) -> bool:
    engine = open_engine(database_url)
    try:
        with engine.connect() as conn:
            return (
                conn.execute(
                    select(identity_t.c.id).where(
                        identity_t.c.source == "box", identity_t.c.external_id == external_id
                    )
                ).first()
                is not None
            )
    finally:
        engine.dispose()


def test_a_change_whose_webhook_was_lost_is_picked_up_by_the_sweep(
    tmp_path: Path,
    sqlite_url: str,
    daemons: Callable[..., Daemon],
    tool: tuple[hookbox.HookboxState, str],
) -> None:
    state, url = tool
    config = write_config(
        tmp_path, sqlite_url,
        f'[connectors.box]\nplugin = "hookbox"\nbase_url = "{url}"\napi_key = "key-0123456789"\n'
        'schedule = { interval = "0.5s", jitter = "0s" }\n'
        'reconcile = { lookback = "1h", schedule = { interval = "4s", jitter = "0s" } }\n',
        extra='[sync]\ncursor_overlap = "1s"\n', hookbox=True,
    )  # fmt: skip
    migrate(sqlite_url)
    daemon = daemons(config).start()
    daemon.wait_ready()
    wait_for(lambda: all(state.owned_tags(c) for c in list(state.contacts)), what="first push")
    sweeps = len(daemon.events("cycle.finished", connector="box", trigger="reconcile"))

    # A contact created half an hour ago surfaces in the tool's API only now, and its webhook
    # was lost: regular cycles resume after the newest change they saw (ten minutes ago),
    # so they never read it.
    state.add("late", "late@example.com", "Lena", updated_at=hookbox.ago(minutes=30))
    wait_for(
        lambda: len(daemon.events("cycle.finished", connector="box", trigger="reconcile"))
        > sweeps,
        timeout=15, what="a sweep after the change",
    )  # fmt: skip
    assert known(sqlite_url, "late")
    tags = wait_for(lambda: state.owned_tags("late"), what="the late contact's tags")
    assert tags[0].startswith("clm:stage:")
    assert inserted_by_kind(sqlite_url) == {"cycle": 3, "reconcile": 1}
    assert len(daemon.events("cycle.finished", connector="box", trigger="schedule")) >= 3
    started = daemon.events("sync.stream.started", connector="box")
    assert any(e["resume"].startswith("reconcile: re-reading the last") for e in started)
    assert daemon.counter("clm_hub_cycle_triggers_total", connector="box", trigger="reconcile")
    assert daemon.stop()[0] == 0


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def replicas(
    engine: Engine, database_url: str, tool: tuple[hookbox.HookboxState, str]
) -> AsyncIterator[tuple[DaemonObject, DaemonObject, Clock]]:
    """Two daemons on one store (as replicas are), sharing a clock; a weekly full sweep."""
    upgrade(engine)
    clock = Clock()
    _, url = tool
    settings = HubSettings(
        database_url=database_url,
        connectors={
            "box": {"plugin": "hookbox", "base_url": url, "api_key": "key-0123456789",
                    "reconcile": {"full": True, "schedule": {"cron": "0 3 * * 0"}}},
        },
    )  # fmt: skip
    registry = build_plugin_registry(entry_points=False, extra={"hookbox": hookbox})
    pair = [
        DaemonObject(settings, registry, engine, config=DaemonSettings(), now=clock)
        for _ in range(2)
    ]
    yield pair[0], pair[1], clock
    for daemon in pair:
        await daemon.gate.shutdown()
        await daemon.webhooks.aclose()


def sweeps(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(run_t.c.run_id, run_t.c.status)
            .where(run_t.c.kind == "reconcile", run_t.c.stream == "contacts")
            .order_by(run_t.c.id)
        ).all()
    return [(run_id, status) for run_id, status in rows]


def swept_recently(daemon: DaemonObject) -> float | None:
    return daemon.metrics.registry.get_sample_value(
        "clm_hub_cycles_skipped_total", {"connector": "box", "reason": "swept_recently"}
    )


async def test_one_replica_sweeps_per_period_and_a_full_sweep_rereads_everything(
    replicas: tuple[DaemonObject, DaemonObject, Clock],
    engine: Engine,
    tool: tuple[hookbox.HookboxState, str],
) -> None:
    first, second, clock = replicas
    state, _ = tool
    await first.run_connector("box")
    # Hidden from incremental reads (older than the cursor), as in the test above.
    state.add("late", "late@example.com", updated_at=hookbox.ago(days=30))
    await first.run_connector("box")
    assert sweeps(engine) == []

    await first.reconcile("box")
    assert [status for _, status in sweeps(engine)] == ["ok"]
    with engine.connect() as conn:
        read = conn.execute(
            select(run_t.c.records_read).where(run_t.c.kind == "reconcile")
        ).scalar_one()
    assert read == 4  # a full re-read, not a window: the 30-day-old change included

    # The other replica's sweep job fires a day later: swept within half the (weekly)
    # period, so it does not sweep again.
    clock.now += timedelta(days=1)
    await second.reconcile("box")
    assert len(sweeps(engine)) == 1
    assert swept_recently(second) == 1
    clock.now += timedelta(days=4)
    await second.reconcile("box")
    assert len(sweeps(engine)) == 2
