"""Alert sinks from plugins (the `register_alert_sinks` hook), and each alert's trigger."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from clm_hub import hookimpl
from clm_hub.alerts import Alert, AlertKind, RegisterAlertSink, collect_alert_sinks
from clm_hub.daemon import Daemon as DaemonObject
from clm_hub.errors import PluginError
from clm_hub.lifecycle import StageCatchUp
from clm_hub.plugins import build_plugin_registry
from clm_hub.redaction import Redactor
from clm_hub.sandbox import serve
from clm_hub.scheduler import AlertSettings, DaemonSettings
from clm_hub.settings import HubSettings
from clm_hub.stages.config import load_rules
from clm_hub.store import upgrade
from clm_hub.testing import synthetic
from tests.daemon import hookbox
from tests.daemon.conftest import Daemon, migrate, wait_for, write_config


class Inbox:
    """A sink: keeps every alert it is sent."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def send(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def kinds(self, connector: str) -> set[AlertKind]:
        return {a.kind for a in self.alerts if a.connector == connector}


class Broken:
    async def send(self, alert: Alert) -> None:
        raise RuntimeError("the pager is down")


class InboxPlugin:
    """A plugin offering a broken sink first, then the inbox: the inbox still gets it all."""

    def __init__(self) -> None:
        self.inbox = Inbox()

    @hookimpl
    def register_alert_sinks(self, register: RegisterAlertSink) -> None:
        register(Broken())
        register(self.inbox)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("sqlite_url")
    return url


@pytest.fixture
def tool() -> Iterator[str]:
    state = hookbox.HookboxState()
    for i in range(5):
        state.add(f"h{i}", f"p{i}@example.com")
    with serve(hookbox.create_app(state)) as url:
        yield url


@pytest.fixture
async def daemon(
    engine: Engine, database_url: str, tool: str
) -> AsyncIterator[tuple[DaemonObject, InboxPlugin, Clock]]:
    upgrade(engine)
    plugin, clock = InboxPlugin(), Clock()
    every = {"interval": "10m", "jitter": "0s"}
    settings = HubSettings(
        database_url=database_url,
        connectors={
            "down": {"plugin": "synthetic", "fail_after_pages": 0, "schedule": every},
            "messy": {"plugin": "synthetic", "id_prefix": "m", "contacts": 40, "orders": 0,
                      "bad_every": 2, "schedule": every},
            "capped": {"plugin": "hookbox", "base_url": tool, "api_key": "key-0123456789",
                       "daily_limit": 1, "schedule": every},
        },
    )  # fmt: skip
    registry = build_plugin_registry(
        entry_points=False,
        extra={"hookbox": hookbox, "synthetic": synthetic, "inbox": plugin},
    )
    config = DaemonSettings(alerts=AlertSettings(rejected_min=5))
    recompute = StageCatchUp(engine, load_rules(None), now=clock)
    made = DaemonObject(settings, registry, engine, config=config, recompute=recompute, now=clock)
    yield made, plugin, clock
    await made.gate.shutdown()
    await made.webhooks.aclose()


async def test_every_trigger_reaches_plugin_sinks_with_what_to_do(
    daemon: tuple[DaemonObject, InboxPlugin, Clock],
) -> None:
    made, plugin, clock = daemon
    inbox = plugin.inbox
    for connector_id in ("down", "messy", "capped"):
        await made.run_connector(connector_id)

    assert inbox.kinds("down") == {AlertKind.CYCLE_FAILED}
    assert inbox.kinds("messy") == {AlertKind.CYCLE_PARTIAL, AlertKind.REJECTED_SPIKE}
    # One API call a day: the pull gets it, the push finds the budget spent.
    assert inbox.kinds("capped") == {AlertKind.BUDGET_EXHAUSTED, AlertKind.CYCLE_FAILED}

    # Ten hours later no cycle has run (no scheduler here): every connector is stale.
    clock.now += timedelta(hours=10)
    await made.housekeeping()
    stale = [a for a in inbox.alerts if a.kind is AlertKind.CONNECTOR_STALE]
    assert {a.connector for a in stale} == {"down", "messy", "capped"}

    by_kind = {a.kind: a for a in inbox.alerts}
    assert set(by_kind) == set(AlertKind)
    hints = {
        AlertKind.CYCLE_FAILED: "clm-hub status",
        AlertKind.CYCLE_PARTIAL: "clm-hub status",
        AlertKind.REJECTED_SPIKE: "reasons",
        AlertKind.BUDGET_EXHAUSTED: "schedule",
        AlertKind.CONNECTOR_STALE: "/readyz",
    }
    for kind, hint in hints.items():
        assert hint in by_kind[kind].action, kind
    # The broken sink registered first cost the inbox nothing; the metric counts each once.
    assert (
        made.metrics.registry.get_sample_value("clm_hub_alerts_total", {"kind": "connector_stale"})
        == 3
    )


def test_a_registration_that_is_not_a_sink_is_refused_naming_the_plugin() -> None:
    class Wrong:
        @hookimpl
        def register_alert_sinks(self, register: RegisterAlertSink) -> None:
            register(object())  # type: ignore[arg-type]

    registry = build_plugin_registry(entry_points=False, extra={"wrong": Wrong()})
    with pytest.raises(PluginError, match=r"plugin 'wrong' registered .* no `async def send"):
        collect_alert_sinks(registry.manager, HubSettings(), Redactor())


def test_the_outbound_webhook_is_a_sink_only_when_its_url_is_set() -> None:
    registry = build_plugin_registry(entry_points=False)
    assert collect_alert_sinks(registry.manager, HubSettings(), Redactor()) == []
    settings = HubSettings.model_validate(
        {"daemon": {"alerts": {"webhook_url": "https://hooks.example/services/T/B/x"}}}
    )
    sinks = collect_alert_sinks(registry.manager, settings, Redactor())
    assert [type(s).__name__ for s in sinks] == ["SlackWebhookSink"]


SINK_PLUGIN = """\
import json
import os

from clm_hub import hookimpl


class FileSink:
    def __init__(self, path):
        self.path = path

    async def send(self, alert):
        with open(self.path, "a") as out:
            out.write(json.dumps({"kind": alert.kind.value, "connector": alert.connector,
                                  "action": alert.action}) + "\\n")


@hookimpl
def register_alert_sinks(register, settings):
    register(FileSink(os.environ["HUB_TEST_ALERT_FILE"]))
"""


def test_a_daemon_process_delivers_alerts_to_a_plugins_sink(
    tmp_path: Path, sqlite_url: str, daemons: Callable[..., Daemon]
) -> None:
    config = write_config(
        tmp_path, sqlite_url,
        '[connectors.down]\nplugin = "synthetic"\nfail_after_pages = 0\n'
        'schedule = { interval = "1h", jitter = "0s" }\n',
    )  # fmt: skip
    (tmp_path / "plugins" / "file_sink.py").write_text(SINK_PLUGIN)
    migrate(sqlite_url)
    alerts = tmp_path / "alerts.jsonl"
    daemon = daemons(config)
    daemon.env["HUB_TEST_ALERT_FILE"] = str(alerts)
    daemon.start()
    daemon.wait_ready()
    wait_for(lambda: alerts.exists() and alerts.read_text(), what="the alert in the file")
    received: list[dict[str, Any]] = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert received[0]["kind"] == "cycle_failed" and received[0]["connector"] == "down"
    assert "clm-hub status" in received[0]["action"]
    assert daemon.stop()[0] == 0
