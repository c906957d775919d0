"""Webhooks into a running daemon: verified, ingested once, followed by a quick cycle."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from clm_hub.linking import identity_t
from clm_hub.sandbox import serve
from clm_hub.store import open_engine
from clm_hub.store.tables import WebhookDelivery
from tests.daemon import hookbox
from tests.daemon.conftest import Daemon, migrate, wait_for, write_config

SECRET = "whsec-0123456789"
delivery_t = WebhookDelivery.__table__  # type: ignore[attr-defined]


@pytest.fixture
def tool() -> Iterator[tuple[hookbox.HookboxState, str]]:
    state = hookbox.HookboxState()
    for i in range(3):
        state.add(f"h{i}", f"p{i}@example.com")
    with serve(hookbox.create_app(state)) as url:
        yield state, url


def first_name(database_url: str, external_id: str) -> str | None:
    engine = open_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                select(identity_t.c.first_name).where(
                    identity_t.c.source == "box", identity_t.c.external_id == external_id
                )
            ).scalar_one_or_none()
    finally:
        engine.dispose()


def deliveries(database_url: str) -> int:
    engine = open_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(delivery_t)).scalar_one())
    finally:
        engine.dispose()


def contact(cid: str, name: str) -> dict[str, object]:
    return {
        "id": cid, "email": f"{cid}@example.com", "first_name": name, "tags": [],
        "updated_at": datetime.now(UTC).isoformat(),
    }  # fmt: skip


def test_signed_webhooks_update_tags_once_and_forged_or_stale_ones_change_nothing(
    tmp_path: Path,
    sqlite_url: str,
    daemons: Callable[..., Daemon],
    tool: tuple[hookbox.HookboxState, str],
) -> None:
    state, url = tool
    config = write_config(
        tmp_path, sqlite_url,
        f'[connectors.box]\nplugin = "hookbox"\nbase_url = "{url}"\napi_key = "key-0123456789"\n'
        f'webhook_secret = "{SECRET}"\nschedule = {{ interval = "1h", jitter = "0s" }}\n',
        hookbox=True,
    )  # fmt: skip
    migrate(sqlite_url)
    daemon = daemons(config, webhook_debounce="0.5s").start()
    daemon.wait_ready()
    wait_for(lambda: all(state.owned_tags(c) for c in state.contacts), what="the first push")

    # A new contact in the tool, announced by a signed webhook.
    state.add("h9", "h9@example.com", "Nina")
    headers, body = hookbox.delivery(SECRET, "evt-1", contact("h9", "Nina"))
    sent = time.monotonic()
    reply = daemon.post("/webhooks/box", headers=headers, content=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "accepted"
    assert first_name(sqlite_url, "h9") == "Nina"  # ingested before any cycle ran
    assert daemon.events("webhook.ingested", connector="box", records=1, customers=1)
    tags = wait_for(lambda: state.owned_tags("h9"), timeout=10, what="h9's tags")
    assert tags[0].startswith("clm:stage:")
    assert time.monotonic() - sent < 5
    assert len(daemon.events("cycle.started", connector="box", trigger="webhook")) == 1

    # The same event again, even with another body: acknowledged, changes nothing.
    writes = state.write_calls
    headers, body = hookbox.delivery(SECRET, "evt-1", contact("h9", "Evil"))
    reply = daemon.post("/webhooks/box", headers=headers, content=body)
    assert (reply.status_code, reply.json()["status"]) == (200, "duplicate")

    # Forged (wrong secret) and replayed long after it was sent (stale): 401, no change.
    headers, body = hookbox.delivery("not-the-secret", "evt-2", contact("h9", "Forged"))
    assert daemon.post("/webhooks/box", headers=headers, content=body).status_code == 401
    stale = int(time.time()) - 3600
    headers, body = hookbox.delivery(SECRET, "evt-3", contact("h9", "Old"), timestamp=stale)
    assert daemon.post("/webhooks/box", headers=headers, content=body).status_code == 401
    assert daemon.post("/webhooks/nope", headers=headers, content=body).status_code == 404

    time.sleep(1.0)  # longer than the debounce: a follow-up cycle would have started
    assert first_name(sqlite_url, "h9") == "Nina"
    assert deliveries(sqlite_url) == 1
    assert state.write_calls == writes
    assert len(daemon.events("cycle.started", connector="box", trigger="webhook")) == 1
    assert daemon.counter("clm_hub_webhooks_total", connector="box", outcome="accepted") == 1
    assert daemon.counter("clm_hub_webhooks_total", connector="box", outcome="duplicate") == 1
    assert daemon.counter("clm_hub_webhooks_total", connector="box", outcome="unauthorized") == 2
    assert daemon.stop()[0] == 0
    assert SECRET not in daemon.text()
