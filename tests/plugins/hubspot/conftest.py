"""Fixtures for the HubSpot connector: a connector built the way the hub builds one, and the
simulator served over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

import clm_hub_plugins.hubspot as hubspot_plugin
from clm_hub.plugins import build_plugin_registry
from clm_hub.runtime import build_redactor, configure_connectors, open_connector
from clm_hub.sandbox import FaultPlan
from clm_hub.settings import HubSettings
from clm_hub.testing import LoopbackServer, VirtualClock
from clm_hub_plugins.hubspot import HubSpot
from clm_hub_plugins.hubspot.simstate import DEFAULT_TOKEN, HubSpotState, RateLimits
from clm_hub_plugins.hubspot.simulator import create_app

TOKEN = DEFAULT_TOKEN
API = "https://api.hubapi.com"
# Limits high enough that only the tests about pacing meet them.
ROOMY = RateLimits(burst_limit=10_000, daily_limit=1_000_000, search_per_second=1_000)
FAST = {"burst_limit": 10_000, "search_limit_per_second": 1_000, "index_lag_seconds": 0}
Factory = Callable[..., HubSpot]


def open_hubspot(
    base_url: str, *, clock: VirtualClock | None = None, **settings: object
) -> HubSpot:
    """A HubSpot connector configured and opened exactly as the hub does it."""
    table: dict[str, object] = {"plugin": "hubspot", "base_url": base_url, **settings}
    if "refresh_token" not in table and "access_token" not in table:
        table["access_token"] = TOKEN
    hub = HubSettings.model_validate({"connectors": {"hs": table}})
    registry = build_plugin_registry(entry_points=False, extra={"hubspot": hubspot_plugin})
    [item] = configure_connectors(hub, registry)
    assert item.ok, item.error
    connector = open_connector(item, build_redactor([item]), clock=clock or VirtualClock())
    assert isinstance(connector, HubSpot)
    return connector


@pytest.fixture
async def make_hubspot() -> AsyncIterator[Factory]:
    """``make_hubspot(base_url, **settings)``; every connector is closed afterwards."""
    opened: list[HubSpot] = []

    def make(
        base_url: str = API, *, clock: VirtualClock | None = None, **settings: object
    ) -> HubSpot:
        connector = open_hubspot(base_url, clock=clock, **settings)
        opened.append(connector)
        return connector

    yield make
    for connector in opened:
        await connector.http.aclose()


@pytest.fixture
def state() -> HubSpotState:
    return HubSpotState(rate_limits=ROOMY)


@pytest.fixture
def faults() -> FaultPlan:
    return FaultPlan()


@pytest.fixture
def sim_url(state: HubSpotState, faults: FaultPlan, loopback: LoopbackServer) -> Iterator[str]:
    """The simulator of this test's ``state`` and ``faults``, over real HTTP."""
    with loopback.serving(create_app(state, faults)) as url:
        yield url


@pytest.fixture
def sim(make_hubspot: Factory, sim_url: str) -> Factory:
    """``sim(**settings)``: a connector talking to the simulator, fast limits by default."""

    def make(**settings: object) -> HubSpot:
        return make_hubspot(sim_url, **{**FAST, **settings})

    return make


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)
