"""The daemon's HTTP app in-process: readiness details, body limits, shutdown answers."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, insert

from clm_hub.customer_ids import CustomerIds
from clm_hub.daemon import Daemon
from clm_hub.errors import ConfigError
from clm_hub.leases import read_lease
from clm_hub.plugins import build_plugin_registry
from clm_hub.scheduler import DaemonSettings
from clm_hub.settings import HubSettings
from clm_hub.store import upgrade
from clm_hub.store.tables import SyncRun
from tests.daemon import hookbox

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
run_t = SyncRun.__table__  # type: ignore[attr-defined]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def daemon(sqlite_url: str, engine: Engine, clock: Clock) -> AsyncIterator[Daemon]:
    upgrade(engine)
    settings = HubSettings(
        database_url=sqlite_url,
        connectors={
            "box": {"plugin": "hookbox", "api_key": "key-0123456789", "webhook_secret": "s3cr3t",
                    "schedule": {"interval": "10m", "jitter": "0s"}},
        },
    )  # fmt: skip
    registry = build_plugin_registry(entry_points=False, extra={"hookbox": hookbox})
    config = DaemonSettings(webhook_max_bytes=2048)
    made = Daemon(settings, registry, engine, config=config, now=clock)
    yield made
    await made.gate.shutdown()
    await made.webhooks.aclose()


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=daemon.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as c:
        yield c


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("sqlite_url")
    return url


async def test_readiness_names_every_failing_check(
    client: httpx.AsyncClient, engine: Engine, clock: Clock
) -> None:
    assert (await client.get("/healthz")).status_code == 200
    reply = await client.get("/readyz")
    assert reply.status_code == 503  # the scheduler is not running in this test
    checks = reply.json()["checks"]
    assert checks["database"]["ok"] and not checks["scheduler"]["ok"]
    assert checks["connector:box"] == {"ok": True, "detail": "last cycle never; limit 1800s"}

    with engine.begin() as conn:
        conn.execute(
            insert(run_t).values(
                run_id="r1", connector="box", stream="contacts", status="ok",
                started_at=NOW, finished_at=NOW + timedelta(seconds=5),
            )
        )  # fmt: skip
    clock.now = NOW + timedelta(minutes=40)  # three 10-minute periods and more
    checks = (await client.get("/readyz")).json()["checks"]
    assert checks["connector:box"] == {"ok": False, "detail": "last cycle 2395s ago; limit 1800s"}


async def test_a_webhook_body_over_the_limit_gets_413(client: httpx.AsyncClient) -> None:
    reply = await client.post("/webhooks/box", content=b"x" * 4096)
    assert reply.status_code == 413


async def test_webhooks_get_503_while_the_daemon_shuts_down(
    client: httpx.AsyncClient, daemon: Daemon
) -> None:
    daemon._stopping = True
    headers, body = hookbox.delivery("s3cr3t", "evt-1", {"id": "h1", "email": "a@b.c",
                                     "updated_at": NOW.isoformat()})  # fmt: skip
    reply = await client.post("/webhooks/box", headers=headers, content=body)
    assert reply.status_code == 503
    assert reply.json()["status"] == "unavailable"


async def test_a_malformed_but_signed_body_gets_400(client: httpx.AsyncClient) -> None:
    body = b'{"contact": {"id": "h1"}}'
    stamp = int(NOW.timestamp())
    headers = {
        "X-Hookbox-Event-Id": "evt-9", "X-Hookbox-Timestamp": str(stamp),
        "X-Hookbox-Signature": hookbox.sign("s3cr3t", stamp, body),
    }  # fmt: skip
    reply = await client.post("/webhooks/box", headers=headers, content=body)
    assert reply.status_code == 400


async def test_a_taken_port_is_a_clear_start_up_error_that_leaves_no_claim(
    sqlite_url: str, engine: Engine
) -> None:
    upgrade(engine)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = HubSettings(database_url=sqlite_url, http_port=port)
        registry = build_plugin_registry(entry_points=False)
        daemon = Daemon(settings, registry, engine, config=DaemonSettings())
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            await daemon.run()
        await daemon.gate.shutdown()
    assert read_lease(engine, "daemon") is None


async def test_stage_recompute_retries_a_locked_sqlite_and_keeps_webhook_customers(
    sqlite_url: str, engine: Engine
) -> None:
    upgrade(engine)
    calls: list[set[int]] = []
    failures = [sqlite3.OperationalError("database is locked")] * 2 + [ValueError("bug")]

    def recompute(ids: CustomerIds) -> None:
        calls.append(set(ids))
        if failures:
            raise failures.pop(0)

    settings = HubSettings(database_url=sqlite_url)
    registry = build_plugin_registry(entry_points=False)
    daemon = Daemon(settings, registry, engine, config=DaemonSettings(), recompute=recompute)
    daemon._pending.add({7})  # a customer changed by a webhook
    with pytest.raises(ValueError, match="bug"):
        daemon._recompute_stages(CustomerIds({1}))
    assert calls == [{1, 7}] * 3  # locked twice, then a real error: not retried
    daemon._recompute_stages(CustomerIds({2}))
    assert calls[-1] == {1, 2, 7}  # the customers of the failed attempt are not forgotten
    await daemon.gate.shutdown()
