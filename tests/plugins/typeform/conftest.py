"""Fixtures for the Typeform connector: a connector built the way the hub builds one, a
respx router for the API contract, and the simulator served over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import respx

import clm_hub_plugins.typeform as typeform_plugin
from clm_hub.plugins import build_plugin_registry
from clm_hub.runtime import build_redactor, configure_connectors, open_connector
from clm_hub.sandbox import FaultPlan
from clm_hub.settings import HubSettings
from clm_hub.testing import LoopbackServer, VirtualClock
from clm_hub_plugins.typeform import Typeform
from clm_hub_plugins.typeform.simstate import DEFAULT_TOKEN, TypeformState
from clm_hub_plugins.typeform.simulator import create_app

TOKEN = DEFAULT_TOKEN
API = "https://api.typeform.com"
SECRET = "whsec-simulated-0123456789abcdef0123"
# Fast enough that only the tests about pacing meet the limit.
FAST = {"requests_per_second": 10_000}
Factory = Callable[..., Typeform]


def open_typeform(
    base_url: str | None = API, *, clock: VirtualClock | None = None, **settings: object
) -> Typeform:
    """A Typeform connector configured and opened exactly as the hub does it; roomy
    pacing unless ``requests_per_second`` is given."""
    table: dict[str, object] = {"plugin": "typeform", "token": TOKEN, **FAST, **settings}
    if base_url is not None:
        table["base_url"] = base_url
    hub = HubSettings.model_validate({"connectors": {"surveys": table}})
    registry = build_plugin_registry(entry_points=False, extra={"typeform": typeform_plugin})
    [item] = configure_connectors(hub, registry)
    assert item.ok, item.error
    connector = open_connector(item, build_redactor([item]), clock=clock or VirtualClock())
    assert isinstance(connector, Typeform)
    return connector


@pytest.fixture
async def make_typeform() -> AsyncIterator[Factory]:
    """``make_typeform(base_url, **settings)``; every connector is closed afterwards."""
    opened: list[Typeform] = []

    def make(
        base_url: str | None = API, *, clock: VirtualClock | None = None, **settings: object
    ) -> Typeform:
        connector = open_typeform(base_url, clock=clock, **settings)
        opened.append(connector)
        return connector

    yield make
    for connector in opened:
        await connector.http.aclose()


@pytest.fixture
def typeform_api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=True) as router:
        yield router


@pytest.fixture
def state() -> TypeformState:
    return TypeformState(requests_per_second=10_000, retry_after_s=0.05)


@pytest.fixture
def faults() -> FaultPlan:
    return FaultPlan()


@pytest.fixture
def sim_url(state: TypeformState, faults: FaultPlan, loopback: LoopbackServer) -> Iterator[str]:
    """The simulator of this test's ``state`` and ``faults``, over real HTTP."""
    with loopback.serving(create_app(state, faults)) as url:
        yield url


@pytest.fixture
def sim(make_typeform: Factory, sim_url: str) -> Factory:
    """``sim(**settings)``: a connector talking to the simulator, with fast limits."""

    def make(**settings: object) -> Typeform:
        return make_typeform(sim_url, **{**FAST, **settings})

    return make
