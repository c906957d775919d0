"""`clm-hub run` as a real process: probes, metrics, alerts, schedules, SIGTERM, SQLite."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clm_hub.linking import state_t
from clm_hub.sandbox import serve
from clm_hub.store import open_engine
from tests.daemon.conftest import Daemon, migrate, stamp, wait_for, write_config

SECRET_PATH = "T0000/B0000/alert-secret-path-123"


@pytest.fixture
def alert_inbox() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A Slack-style incoming webhook that keeps what it is sent."""
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route(f"/services/{SECRET_PATH}", hook, methods=["POST"])])
    with serve(app) as url:
        yield f"{url}/services/{SECRET_PATH}", received


def customers_per_stage(database_url: str) -> dict[str, int]:
    engine = open_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(state_t.c.stage, func.count()).group_by(state_t.c.stage))
            return {stage: int(n) for stage, n in rows}
    finally:
        engine.dispose()


def test_daemon_serves_probes_metrics_and_alerts_then_exits_0_on_sigterm(
    tmp_path: Path,
    sqlite_url: str,
    daemons: Callable[..., Daemon],
    alert_inbox: tuple[str, list[dict[str, Any]]],
) -> None:
    hook_url, received = alert_inbox
    config = write_config(
        tmp_path, sqlite_url,
        '[connectors.shop]\nplugin = "synthetic"\ncontacts = 30\norders = 60\n'
        'schedule = { interval = "1h", jitter = "0s" }\n'
        '[connectors.down]\nplugin = "synthetic"\nid_prefix = "d"\nfail_after_pages = 0\n'
        'schedule = { interval = "1h", jitter = "0s" }\n',
    )  # fmt: skip
    migrate(sqlite_url)
    daemon = daemons(config, alerts__webhook_url=hook_url).start()
    daemon.wait_ready()
    assert daemon.get("/healthz").json() == {"status": "alive"}
    wait_for(lambda: daemon.counter("clm_hub_cycles_total", connector="shop") >= 1, what="cycle")
    wait_for(lambda: daemon.counter("clm_hub_cycles_total", connector="down", status="failed"))

    text = daemon.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"clm_hub_cycles", "clm_hub_records", "clm_hub_api_rate_limited",
            "clm_hub_api_calls", "clm_hub_push_records", "clm_hub_rejected_records",
            "clm_hub_customers", "clm_hub_connector_lag_seconds",
            "clm_hub_cycle_duration_seconds", "clm_hub_webhooks"} <= set(families)  # fmt: skip
    assert "_created" not in text
    assert daemon.counter("clm_hub_records_total", connector="shop", stream="contacts",
                          outcome="inserted") == 30  # fmt: skip
    assert daemon.counter("clm_hub_api_rate_limited_total", connector="shop") == 0
    stages = customers_per_stage(sqlite_url)
    assert sum(stages.values()) == 30  # the stage engine ran after the pull
    assert {s: daemon.counter("clm_hub_customers", stage=s) for s in stages} == stages
    assert daemon.counter("clm_hub_connector_lag_seconds", connector="shop") >= 0
    readiness = daemon.get("/readyz").json()
    assert readiness["ready"] is True
    assert set(readiness["checks"]) == {"database", "scheduler", "connector:down", "connector:shop"}

    alert = wait_for(lambda: received, what="the alert")[0]
    assert "down" in alert["text"] and "What to do:" in alert["text"]
    assert "cycle_failed" in alert["blocks"][0]["text"]["text"]
    assert daemon.counter("clm_hub_alerts_total", kind="cycle_failed") == 1

    code, seconds = daemon.stop()
    assert code == 0
    assert seconds < 10
    assert [e["event"] for e in daemon.events()][-2:] == ["daemon.stopping", "daemon.stopped"]
    assert "alert-secret-path" not in daemon.text()


def test_schedules_fire_never_overlap_and_missed_runs_coalesce(
    tmp_path: Path, sqlite_url: str, daemons: Callable[..., Daemon]
) -> None:
    config = write_config(
        tmp_path, sqlite_url,
        # slow: every cycle re-reads 4 pages of 0.2 s, longer than its 0.3 s interval
        '[connectors.slow]\nplugin = "synthetic"\ncontacts = 40\norders = 0\npage_size = 10\n'
        'page_delay = 0.2\nschedule = { interval = "0.3s", jitter = "0s" }\n'
        '[connectors.fast]\nplugin = "synthetic"\nid_prefix = "f"\ncontacts = 3\norders = 0\n'
        'schedule = { interval = "0.5s", jitter = "0s" }\n',
        extra='[sync]\ncursor_overlap = "10000d"\n',
    )  # fmt: skip
    migrate(sqlite_url)
    daemon = daemons(config).start()
    daemon.wait_ready()
    wait_for(lambda: len(daemon.events("cycle.finished", connector="fast")) >= 2, what="2 runs")
    wait_for(lambda: len(daemon.events("cycle.finished", connector="slow")) >= 2, what="2 runs")

    # Never two cycles of one connector at once: each starts after the previous finished.
    for connector in ("slow", "fast"):
        marks = [(stamp(e), e["event"]) for e in daemon.events(connector=connector)
                 if e["event"] in ("cycle.started", "cycle.finished")]  # fmt: skip
        kinds = [kind for _, kind in sorted(marks)]
        assert kinds[: len(kinds) // 2 * 2] == ["cycle.started", "cycle.finished"] * (
            len(kinds) // 2
        )
    assert daemon.counter("clm_hub_cycles_skipped_total", connector="slow", reason="busy") >= 1

    # A stall of six intervals: the missed runs collapse into one, not a burst.
    daemon.signal(signal.SIGSTOP)
    time.sleep(3.1)
    resumed = datetime.now(UTC)
    daemon.signal(signal.SIGCONT)
    time.sleep(0.8)
    window = (resumed, resumed + timedelta(seconds=0.25))
    fast = daemon.events(connector="fast")
    started = [e for e in fast if e["event"] == "cycle.started" and window[0] <= stamp(e)]
    skipped = [e for e in fast if e["event"] == "cycle.skipped" and window[0] <= stamp(e)]
    assert started and stamp(started[0]) < window[1]
    assert len([e for e in skipped if stamp(e) < window[1]]) <= 1

    code, _ = daemon.stop()
    assert code == 0


def test_a_second_daemon_on_one_sqlite_store_refuses_to_start(
    tmp_path: Path, sqlite_url: str, daemons: Callable[..., Daemon]
) -> None:
    config = write_config(
        tmp_path, sqlite_url, '[connectors.shop]\nplugin = "synthetic"\ncontacts = 5\n'
    )
    migrate(sqlite_url)
    first = daemons(config, name="first").start()
    first.wait_ready()
    second = daemons(config, name="second").start()
    assert second.process is not None
    assert second.process.wait(timeout=15) == 1
    assert "SQLite mode is single-replica" in second.text()
    assert "PostgreSQL" in second.text()
    assert first.get("/readyz").status_code == 200

    # A daemon that died without releasing its claim does not block a restart.
    first.kill()
    third = daemons(config, name="third").start()
    third.wait_ready()
    assert third.events("daemon.lease_taken_over")
    assert third.stop()[0] == 0
