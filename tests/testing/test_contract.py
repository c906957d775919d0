"""The contract kit catches broken connectors and harnesses, with messages that say how.

Each flawed connector is the real Shopify connector with one behaviour broken, run
against the Shopify simulator through its harness, so only the flaw can trip the kit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest

from clm_hub import (
    Connector,
    ContactRecord,
    Page,
    PushChange,
    PushOutcome,
    PushStatus,
    RegisterConnector,
    StreamCursor,
    hookimpl,
)
from clm_hub.connectors import Clock, HttpOptions, Unlimited
from clm_hub.errors import AuthError
from clm_hub.testing import (
    ContractViolation,
    LoopbackServer,
    RateLimitPlan,
    Scenario,
    ScenarioSkipped,
    run_scenario,
)
from clm_hub.testing.contract import (
    auth_failure,
    full_pull,
    incremental_pull,
    pacing,
    partial_failure,
    push_fields,
    push_tags,
)
from clm_hub_plugins.shopify import Shopify, ShopifySettings
from clm_hub_plugins.shopify.testkit import ShopifyHarness


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    loopback = LoopbackServer()
    yield loopback
    loopback.stop()


class _Offer:
    """A plugin offering one connector class."""

    def __init__(self, connector: type[Connector[Any]]) -> None:
        self.connector = connector

    @hookimpl
    def register_connectors(self, register: RegisterConnector) -> None:
        register(self.connector)


def harness_for(connector: type[Shopify]) -> ShopifyHarness:
    harness = ShopifyHarness()
    harness.plugin = _Offer(connector)
    return harness


def violation(scenario: Scenario, harness: ShopifyHarness, server: LoopbackServer) -> str:
    with pytest.raises(ContractViolation) as caught:
        run_scenario(scenario, harness, server=server)
    return str(caught.value)


class CursorBlind(Shopify):
    def pull_contacts(self, since: StreamCursor | None) -> AsyncIterator[Page[ContactRecord]]:
        return super().pull_contacts(None)


class RepeatsFirstPage(Shopify):
    async def pull_contacts(self, since: StreamCursor | None) -> AsyncIterator[Page[ContactRecord]]:
        first = True
        async for page in super().pull_contacts(since):
            yield page
            if first:
                yield page
            first = False


class OkForEverything(Shopify):
    async def push(self, changes: Sequence[PushChange]) -> Sequence[PushOutcome]:
        await super().push(changes)
        return [PushOutcome(external_id=c.external_id, status=PushStatus.OK) for c in changes]


class StripsForeignTags(Shopify):
    async def push(self, changes: Sequence[PushChange]) -> Sequence[PushOutcome]:
        widened = [c.model_copy(update={"remove_tags": c.remove_tags | {"VIP"}}) for c in changes]
        return await super().push(widened)


class Unpaced(Shopify):
    @classmethod
    def http_options(cls, settings: ShopifySettings, *, clock: Clock | None = None) -> HttpOptions:
        return replace(super().http_options(settings, clock=clock), limiter=Unlimited())


class SwallowsAuthErrors(Shopify):
    async def push(self, changes: Sequence[PushChange]) -> Sequence[PushOutcome]:
        try:
            return await super().push(changes)
        except AuthError as exc:
            return [
                PushOutcome(external_id=c.external_id, status=PushStatus.FAILED, reason=str(exc))
                for c in changes
            ]


class LimitThatDoesNotBite(ShopifyHarness):
    def limit_rate(self) -> RateLimitPlan:
        return RateLimitPlan(settings={}, burst=5, per_second=10)


class WithoutTagHelpers(ShopifyHarness):
    tags = None  # type: ignore[assignment]


def test_incremental_pull_that_ignores_the_cursor_fails(server: LoopbackServer) -> None:
    message = violation(incremental_pull, harness_for(CursorBlind), server)
    assert "unchanged contact(s) older than its cursor" in message


def test_pull_that_repeats_a_page_fails(server: LoopbackServer) -> None:
    message = violation(full_pull, harness_for(RepeatsFirstPage), server)
    assert "returned more than once" in message


def test_push_reporting_ok_for_a_refused_record_fails(server: LoopbackServer) -> None:
    message = violation(partial_failure, harness_for(OkForEverything), server)
    assert "came back ok" in message


def test_push_that_removes_a_foreign_tag_fails(server: LoopbackServer) -> None:
    message = violation(push_tags, harness_for(StripsForeignTags), server)
    assert "foreign tags ['VIP']" in message


def test_connector_that_does_not_pace_fails(server: LoopbackServer) -> None:
    message = violation(pacing, harness_for(Unpaced), server)
    assert "answered 429" in message or "gave up with RateLimited" in message


def test_push_turning_refused_credentials_into_outcomes_fails(server: LoopbackServer) -> None:
    message = violation(auth_failure, harness_for(SwallowsAuthErrors), server)
    assert message == "a push with refused credentials did not raise AuthError"


def test_harness_whose_rate_limit_does_not_bite_fails(server: LoopbackServer) -> None:
    message = violation(pacing, LimitThatDoesNotBite(), server)
    assert "limit_rate did not limit the simulator" in message


def test_harness_without_the_helpers_a_capability_needs_is_named(
    server: LoopbackServer,
) -> None:
    message = violation(push_tags, WithoutTagHelpers(), server)
    assert "must implement TagsHarness" in message


def test_scenario_for_an_undeclared_capability_is_skipped(server: LoopbackServer) -> None:
    with pytest.raises(ScenarioSkipped, match="does not declare field_push"):
        run_scenario(push_fields, ShopifyHarness(), server=server)
