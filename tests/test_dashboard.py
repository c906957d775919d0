"""The dashboard: the numbers it shows come from the store, and nothing it prints is raw."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.applications import Starlette

from clm_hub.dashboard import dashboard_routes, read_summary, render_html, summary_json
from clm_hub.store import upgrade
from clm_hub.store.tables import (
    Customer,
    CustomerState,
    RejectedRecord,
    StageTransition,
    SyncCursor,
    SyncRun,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EVIL = "<script>alert(1)</script>"


@pytest.fixture
def store(engine: Engine) -> Engine:
    """A small shop: five customers in three stages, two transitions, two connectors."""
    upgrade(engine)
    stages = [
        ("loyal", ["rfm:champions"], "promoter"),
        ("loyal", ["rfm:loyal", "rfm:champions"], None),
        ("new", ["rfm:new"], "detractor"),
        ("at-risk", [], None),
        ("at-risk", ["rfm:at-risk"], "promoter"),
    ]
    with Session(engine) as session:
        for n, (stage, segments, nps) in enumerate(stages, start=1):
            session.add(Customer(id=n, email=f"p{n}@example.com", created_at=NOW, updated_at=NOW))
            session.flush()
            session.add(
                CustomerState(
                    customer_id=n,
                    stage=stage,
                    stage_since=NOW,
                    segments=segments,
                    nps_class=nps,
                    computed_at=NOW,
                )
            )
        session.add(
            StageTransition(
                customer_id=1, from_stage=None, to_stage="new", at=NOW, reason="first order"
            )
        )
        session.add(
            StageTransition(
                customer_id=1,
                from_stage="new",
                to_stage="loyal",
                at=NOW + timedelta(seconds=1),
                reason=EVIL,
            )
        )
        for connector, status, error in (("shop", "ok", None), ("crm", "failed", EVIL)):
            session.add(
                SyncRun(
                    run_id="r1",
                    connector=connector,
                    stream="contacts",
                    status=status,
                    started_at=NOW - timedelta(minutes=5),
                    finished_at=NOW - timedelta(minutes=4),
                    error=error,
                )
            )
        session.add(
            SyncCursor(
                connector="shop",
                stream="contacts",
                updated_since=NOW - timedelta(minutes=10),
                updated_at=NOW,
            )
        )
        for n in range(3):
            session.add(
                RejectedRecord(
                    connector="crm",
                    stream="contacts",
                    external_id=str(n),
                    reason="no email",
                    created_at=NOW,
                )
            )
        session.commit()
    return engine


def test_summary_counts_stages_segments_and_nps(store: Engine) -> None:
    summary = read_summary(store, now=NOW)
    assert summary.customers == 5
    assert summary.stages == {"at-risk": 2, "loyal": 2, "new": 1}
    assert summary.segments == {
        "rfm:champions": 2,
        "rfm:at-risk": 1,
        "rfm:loyal": 1,
        "rfm:new": 1,
    }
    assert summary.nps == {"detractor": 1, "promoter": 2}


def test_summary_lists_recent_transitions_newest_first(store: Engine) -> None:
    summary = read_summary(store, now=NOW, recent=1)
    [latest] = summary.transitions
    assert (latest.customer_id, latest.from_stage, latest.to_stage) == (1, "new", "loyal")


def test_summary_shows_each_connector_run_lag_and_rejects(store: Engine) -> None:
    summary = read_summary(store, now=NOW)
    health = {c.connector: c for c in summary.connectors}
    assert health["shop"].status == "ok"
    assert health["shop"].lag_seconds == 600
    assert health["shop"].last_run_at == NOW - timedelta(minutes=4)
    assert (health["crm"].status, health["crm"].rejected, health["crm"].error) == (
        "failed",
        3,
        EVIL,
    )
    assert summary.rejected_total == 3


def test_html_escapes_everything_from_the_store(store: Engine) -> None:
    page = render_html(read_summary(store, now=NOW))
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert "p1@example.com" not in page  # no personal data on a page without login


async def test_routes_serve_the_page_and_the_same_data_as_json(store: Engine) -> None:
    app = Starlette(routes=dashboard_routes(store, now=lambda: NOW))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        page = await client.get("/")
        data = (await client.get("/api/summary")).json()
        assert (await client.get("/dashboard")).status_code == 200
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "5 customers" in page.text
    assert data == summary_json(read_summary(store, now=NOW))
    assert data["stages"] == {"at-risk": 2, "loyal": 2, "new": 1}
    assert data["generated_at"] == NOW.isoformat()


def test_an_empty_store_renders(engine: Engine) -> None:
    upgrade(engine)
    summary = read_summary(engine, now=NOW)
    assert (summary.customers, summary.connectors, summary.rejected_total) == (0, [], 0)
    assert "nothing yet" in render_html(summary)
