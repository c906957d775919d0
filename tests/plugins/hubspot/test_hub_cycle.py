"""A whole hub cycle against the simulator: the sync engine pulls HubSpot, then writes the
stage back through ``prepare_push`` and ``push`` with the hub's own field names."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import Engine, insert, select

import clm_hub_plugins.hubspot as hubspot_plugin
from clm_hub.linking import identity_t, order_t, state_t
from clm_hub.plugins import build_plugin_registry
from clm_hub.settings import HubSettings
from clm_hub.store import open_engine, upgrade
from clm_hub.sync import CycleResult, SyncEngine
from clm_hub_plugins.hubspot.simstate import HubSpotState
from clm_hub_plugins.hubspot.simulator import create_app

from .conftest import FAST, ROOMY, TOKEN, ago


def cycle(store: Engine, state: HubSpotState) -> CycleResult:
    table = {"plugin": "hubspot", "access_token": TOKEN, "base_url": "http://hubspot.test", **FAST}
    settings = HubSettings.model_validate(
        {"database_url": str(store.url), "connectors": {"crm": table}}
    )
    registry = build_plugin_registry(entry_points=False, extra={"hubspot": hubspot_plugin})
    transport = httpx.ASGITransport(app=create_app(state))
    return asyncio.run(SyncEngine(settings, registry, store, transport=transport).run_cycle())


def test_a_hub_cycle_pulls_contacts_and_deals_and_writes_the_stage_back(tmp_path: Path) -> None:
    state = HubSpotState(rate_limits=ROOMY)
    ann = state.add_contact("ann@example.com", firstname="Ann", modified_at=ago(days=1))
    state.add_deal(amount="129.90", contact_id=ann, closed_at=ago(days=2))
    store = open_engine(f"sqlite:///{tmp_path}/hub.sqlite3")
    upgrade(store)
    try:
        cycle(store, state)
        with store.begin() as conn:
            customer = conn.execute(
                select(identity_t.c.customer_id).where(identity_t.c.external_id == ann)
            ).scalar_one()
            totals = conn.execute(select(order_t.c.total)).scalars().all()
            now = datetime.now(UTC)
            conn.execute(
                insert(state_t),
                {"customer_id": customer, "stage": "loyal", "stage_since": now,
                 "segments": ["champions", "at-risk"], "computed_at": now, "explanation": {}},
            )  # fmt: skip
        result = cycle(store, state)
    finally:
        store.dispose()
    assert totals == [Decimal("129.90")]
    [connector] = result.connectors
    assert connector.push is not None and connector.push.error is None
    assert connector.push.counts.confirmed == 1
    props = state.contact(ann).properties
    assert (props["clm_stage"], props["clm_segment"]) == ("loyal", "at-risk;champions")
    assert state.properties["clm_stage"].option_values == ["loyal"]
