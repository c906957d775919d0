"""The daemon's parts on their own: settings, triggers, alerts, debouncing, the HTTP gate."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import ValidationError

from clm_hub.alerts import Alert, Alerter, AlertKind, SlackWebhookSink, alerts_for_cycle
from clm_hub.daemon import RequestGate
from clm_hub.errors import ConfigError
from clm_hub.ingest import PageCounts
from clm_hub.push.planner import PushPlan
from clm_hub.redaction import Redactor
from clm_hub.runs import RunStatus
from clm_hub.scheduler import AlertSettings, Reconcile, schedule_period, trigger_for
from clm_hub.settings import ConnectorConfig, HubSettings, Schedule, load_settings
from clm_hub.sync import ConnectorResult, PushResult, StreamResult
from clm_hub.webhooks import Debouncer

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_daemon_settings_come_from_nested_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in {
        "CLM_HUB_DAEMON__LEASE_TTL": "5s",
        "CLM_HUB_DAEMON__SHUTDOWN_GRACE": "500ms",
        "CLM_HUB_DAEMON__STAGES_SCHEDULE__INTERVAL": "30m",
        "CLM_HUB_DAEMON__ALERTS__WEBHOOK_URL": "https://hooks.example/T1/B2/secret",
        "CLM_HUB_DAEMON__ALERTS__REJECTED_MIN": "3",
    }.items():
        monkeypatch.setenv(key, value)
    config = HubSettings().daemon
    assert config.lease_ttl == timedelta(seconds=5)
    assert config.shutdown_grace == timedelta(seconds=0.5)
    assert config.stages_schedule.interval == timedelta(minutes=30)
    assert config.alerts.rejected_min == 3
    assert config.alerts.webhook_url is not None
    assert "secret" not in repr(config)


def test_unknown_or_malformed_daemon_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLM_HUB_DAEMON__LEASE_TLL", "5s")
    with pytest.raises(ConfigError, match=r"daemon\.lease_tll: unknown key"):
        load_settings(None)
    monkeypatch.delenv("CLM_HUB_DAEMON__LEASE_TLL")
    monkeypatch.setenv("CLM_HUB_DAEMON__LEASE_TTL", "soon")
    with pytest.raises(ConfigError, match="duration"):
        load_settings(None)


def test_reconcile_defaults_to_a_lookback_sweep_and_refuses_unknown_keys() -> None:
    config = ConnectorConfig(plugin="hookbox")
    assert config.reconcile == Reconcile()
    assert config.reconcile.enabled and not config.reconcile.full
    assert config.reconcile.lookback == timedelta(days=2)
    assert config.reconcile.schedule.interval == timedelta(hours=6)
    weekly = ConnectorConfig.model_validate(
        {"plugin": "x", "reconcile": {"full": True, "schedule": {"cron": "0 3 * * 0"}}}
    )
    assert weekly.reconcile.full and weekly.reconcile.schedule.cron == "0 3 * * 0"
    with pytest.raises(ValidationError, match="lookbak"):
        ConnectorConfig.model_validate({"plugin": "x", "reconcile": {"lookbak": "1d"}})
    with pytest.raises(ValidationError, match="greater than"):
        ConnectorConfig.model_validate({"plugin": "x", "reconcile": {"lookback": "0s"}})


def test_interval_and_cron_schedules_become_triggers_with_jitter() -> None:
    interval = Schedule(interval=timedelta(minutes=10), jitter=timedelta(seconds=20))
    trigger = trigger_for(interval)
    assert trigger.jitter == 20
    assert trigger.get_next_fire_time(None, NOW) is not None
    assert schedule_period(interval, now=NOW) == timedelta(minutes=10)
    nightly = Schedule(cron="30 2 * * *", jitter=timedelta(0))
    fire = trigger_for(nightly).get_next_fire_time(None, NOW)
    assert fire == datetime(2026, 6, 2, 2, 30, tzinfo=UTC)
    assert schedule_period(nightly, now=NOW) == timedelta(days=1)


def result(
    *,
    status: RunStatus = RunStatus.OK,
    read: int = 100,
    rejected: int = 0,
    error: str | None = None,
    push_error: str | None = None,
) -> ConnectorResult:
    counts = PageCounts(read=read, rejected=rejected)
    stream = StreamResult("shop", "contacts", status, counts, error=error)
    push = PushResult("shop", PushPlan("shop"), error=push_error)
    return ConnectorResult("shop", streams=[stream], push=push)


def kinds(alerts: list[Alert]) -> list[AlertKind]:
    return [a.kind for a in alerts]


def test_cycle_outcomes_raise_the_matching_alerts() -> None:
    settings = AlertSettings(rejected_min=10, rejected_share=0.05)
    assert alerts_for_cycle(result(), settings, now=NOW) == []
    failed = alerts_for_cycle(
        result(status=RunStatus.FAILED, error="AuthError: shop: refused (401)"), settings, now=NOW
    )
    assert kinds(failed) == [AlertKind.CYCLE_FAILED]
    assert "AuthError" in failed[0].summary and "clm-hub check" in failed[0].action
    spike = alerts_for_cycle(
        result(status=RunStatus.PARTIAL, rejected=40), settings, now=NOW
    )  # fmt: skip
    assert kinds(spike) == [AlertKind.CYCLE_PARTIAL, AlertKind.REJECTED_SPIKE]
    few = alerts_for_cycle(result(status=RunStatus.PARTIAL, rejected=3), settings, now=NOW)
    assert kinds(few) == [AlertKind.CYCLE_PARTIAL]
    budget = alerts_for_cycle(
        result(push_error="BudgetExhausted: shop: daily limit spent"), settings, now=NOW
    )
    assert kinds(budget) == [AlertKind.BUDGET_EXHAUSTED, AlertKind.CYCLE_FAILED]


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    async def send(self, alert: Alert) -> None:
        self.sent.append(alert)


async def test_the_same_alert_is_sent_once_per_repeat_period_until_it_recovers() -> None:
    clock = [NOW]
    sink = Recorder()
    alerter = Alerter(AlertSettings(repeat_after=timedelta(hours=1)), [sink], now=lambda: clock[0])
    failed = result(status=RunStatus.FAILED, error="UpstreamError: 503")
    await alerter.cycle_finished(failed)
    clock[0] = NOW + timedelta(minutes=30)
    await alerter.cycle_finished(failed)
    assert len(sink.sent) == 1
    await alerter.cycle_finished(result())  # it recovered: a relapse alerts at once
    await alerter.cycle_finished(failed)
    clock[0] = NOW + timedelta(hours=2)
    await alerter.cycle_finished(failed)
    assert len(sink.sent) == 3


async def test_slack_sink_posts_text_and_blocks_and_survives_a_failing_endpoint() -> None:
    posted: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        return httpx.Response(200 if len(posted) == 1 else 500)

    sink = SlackWebhookSink(
        "https://hooks.example/services/T/B/s3cr3t", redactor=Redactor(["s3cr3t"]),
        transport=httpx.MockTransport(handler),
    )  # fmt: skip
    alert = Alert(AlertKind.CONNECTOR_STALE, "shop", "no cycle for 2h", "start a daemon", NOW)
    await sink.send(alert)
    await sink.send(alert)  # a 500 is logged, not raised
    await sink.aclose()
    assert posted[0]["text"] == "[clm-hub] shop: no cycle for 2h\nWhat to do: start a daemon"
    blocks = posted[0]["blocks"]
    assert isinstance(blocks, list) and "connector_stale" in json.dumps(blocks)


async def test_debouncer_runs_once_after_a_burst_but_never_later_than_max_wait() -> None:
    runs: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def action(key: str) -> None:
        runs.append((key, loop.time() - start))

    debouncer = Debouncer(
        action, delay=timedelta(seconds=0.1), max_wait=timedelta(seconds=0.25)
    )  # fmt: skip
    for _ in range(5):  # a burst: one run, 0.1 s after the last poke
        debouncer.poke("a")
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    assert [k for k, _ in runs] == ["a"]
    runs.clear()
    start = loop.time()
    for _ in range(10):  # a steady stream: still runs within max_wait
        debouncer.poke("b")
        await asyncio.sleep(0.05)
    assert runs and runs[0][0] == "b" and runs[0][1] < 0.35
    debouncer.cancel_all()


async def test_the_gate_holds_new_requests_after_close_and_lets_sent_ones_finish() -> None:
    release = asyncio.Event()

    async def app_handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slow":
            await release.wait()
        return httpx.Response(200, json={"path": request.url.path})

    gate = RequestGate(httpx.MockTransport(app_handler))
    async with httpx.AsyncClient(transport=gate, base_url="http://tool.test") as client:
        assert (await client.get("/fast")).json() == {"path": "/fast"}
        slow = asyncio.create_task(client.get("/slow"))
        await asyncio.sleep(0.05)
        assert gate.in_flight == 1
        gate.close()
        held = asyncio.create_task(client.get("/later"))
        await asyncio.sleep(0.05)
        release.set()
        assert (await slow).status_code == 200  # sent before close: finishes
        assert gate.in_flight == 0
        assert not held.done()  # never sent
        held.cancel()
    await gate.shutdown()
