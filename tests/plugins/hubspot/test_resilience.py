"""Pacing, faults and OAuth against the simulator over real HTTP (real clock for pacing)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from clm_hub import ContactRecord, Page, StreamCursor
from clm_hub.errors import AuthError, RateLimited
from clm_hub.sandbox import Fault, FaultPlan
from clm_hub_plugins.hubspot.auth import HubSpotOAuth
from clm_hub_plugins.hubspot.simstate import HubSpotState, RateLimits

from .conftest import ROOMY, Factory, ago

OAUTH = {"client_id": "app-1", "client_secret": "app-secret-1", "refresh_token": "refresh-1"}


def seed(state: HubSpotState, count: int) -> list[str]:
    return [
        state.add_contact(f"p{i}@example.com", modified_at=ago(hours=1, seconds=-i))
        for i in range(count)
    ]


async def read_all(pages: AsyncIterator[Page[ContactRecord]]) -> list[str]:
    return [r.external_id async for page in pages for r in page.records]


async def test_burst_of_requests_is_paced_so_none_is_throttled(
    state: HubSpotState, sim: Factory
) -> None:
    state.rate_limits = RateLimits(burst_limit=5, burst_window_s=0.5, search_per_second=1_000)
    ids = seed(state, 10)
    hubspot = sim(page_size=1, burst_limit=5, burst_window_seconds=0.5)
    assert await read_all(hubspot.pull_contacts(None)) == ids
    assert len(state.calls("/crm/v3/objects/contacts")) == 10
    assert sum(state.throttled.values()) == 0
    assert hubspot.http.stats.throttled == 0


async def test_searches_are_paced_to_their_own_per_second_limit(
    state: HubSpotState, sim: Factory
) -> None:
    state.rate_limits = RateLimits(burst_limit=10_000, search_per_second=6)
    ids = seed(state, 15)
    hubspot = sim(search_page_size=3, search_limit_per_second=5)
    got = await read_all(hubspot.pull_contacts(StreamCursor(updated_since=ago(days=1))))
    assert set(got) == set(ids)
    assert len(state.calls("/crm/v3/objects/contacts/search")) == 7  # more than 5 in 1 s
    assert sum(state.throttled.values()) == 0


async def test_recovers_from_a_storm_of_429s(
    state: HubSpotState, faults: FaultPlan, sim: Factory
) -> None:
    state.rate_limits = RateLimits(burst_limit=10_000, burst_window_s=0.2, search_per_second=1_000)
    ids = seed(state, 4)
    faults.inject(Fault.RATE_LIMIT, times=3, path_prefix="/crm/v3/objects/contacts")
    hubspot = sim(page_size=2, burst_window_seconds=0.2)
    assert await read_all(hubspot.pull_contacts(None)) == ids
    assert len(faults.applied) == 3
    assert hubspot.http.stats.throttled == 3


async def test_daily_budget_from_hubspots_headers_stops_before_hubspot_says_429(
    state: HubSpotState, sim: Factory
) -> None:
    state.rate_limits = RateLimits(burst_limit=10_000, daily_limit=3, search_per_second=1_000)
    seed(state, 6)
    hubspot = sim(page_size=1, headroom=0)  # configured for 250,000 a day; HubSpot says 3
    with pytest.raises(RateLimited, match="daily API budget used up"):
        await read_all(hubspot.pull_contacts(None))
    assert len(state.requests) == 3
    assert sum(state.throttled.values()) == 0


async def test_recovers_from_server_errors(
    state: HubSpotState, faults: FaultPlan, sim: Factory
) -> None:
    ids = seed(state, 3)
    faults.inject(Fault.SERVER_ERROR, times=2)
    hubspot = sim()
    assert await read_all(hubspot.pull_contacts(None)) == ids
    assert hubspot.http.stats.retries == 2


async def test_recovers_from_malformed_json(
    state: HubSpotState, faults: FaultPlan, sim: Factory
) -> None:
    ids = seed(state, 3)
    faults.inject(Fault.MALFORMED, times=2, path_prefix="/crm/v3/objects/contacts/search")
    hubspot = sim()
    assert set(await read_all(hubspot.pull_contacts(StreamCursor(updated_since=ago(days=1))))) == (
        set(ids)
    )
    assert hubspot.http.stats.retries == 2


async def test_a_request_that_times_out_is_sent_again(
    state: HubSpotState, faults: FaultPlan, sim: Factory
) -> None:
    state.timeout_delay_s = 0.6
    ids = seed(state, 2)
    faults.inject(Fault.TIMEOUT, times=1)
    hubspot = sim(timeout_seconds=0.2)
    assert await read_all(hubspot.pull_contacts(None)) == ids
    assert hubspot.http.stats.retries == 1


async def test_oauth_token_is_refreshed_when_hubspot_says_it_expired(
    state: HubSpotState, sim: Factory
) -> None:
    state.add_oauth_app(OAUTH["client_id"], OAUTH["client_secret"], OAUTH["refresh_token"])
    ids = seed(state, 2)
    hubspot = sim(**OAUTH)
    await hubspot.check()
    state.expire_access_tokens()  # e.g. revoked, or our clock ran slow
    assert await read_all(hubspot.pull_contacts(None)) == ids
    auth = hubspot.http.client.auth
    assert isinstance(auth, HubSpotOAuth) and auth.refreshes == 2
    assert [r.status for r in state.calls("/crm/v3/objects/contacts")] == [200, 401, 200]


async def test_oauth_calls_carry_no_daily_headers_and_still_pass(
    state: HubSpotState, sim: Factory
) -> None:
    state.add_oauth_app(OAUTH["client_id"], OAUTH["client_secret"], OAUTH["refresh_token"])
    state.rate_limits = ROOMY
    hubspot = sim(**OAUTH)
    await hubspot.check()
    assert [r.path for r in state.requests] == ["/oauth/v1/token", "/crm/v3/objects/contacts"]


async def test_expired_token_with_a_private_app_token_is_an_auth_error_not_retried(
    state: HubSpotState, faults: FaultPlan, sim: Factory
) -> None:
    faults.inject(Fault.EXPIRED_TOKEN)
    with pytest.raises(AuthError, match=r"401.*access_token"):
        await sim().check()
    assert len(state.requests) == 1


async def test_wrong_private_app_token_is_refused_with_hubspots_401(
    state: HubSpotState, sim: Factory
) -> None:
    with pytest.raises(AuthError, match="Private apps"):
        await sim(access_token="pat-na1-wrong").check()
    assert state.requests[0].status == 401
