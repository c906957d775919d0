"""The HTTP client's contract: retries, Retry-After, typed errors, counters, redaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx

from clm_hub.connectors.http import HttpClient, HttpOptions, RetryPolicy, build_http_client
from clm_hub.connectors.ratelimit import RateLimiter, SlidingWindow, Unlimited
from clm_hub.errors import (
    AuthError,
    MalformedResponse,
    RateLimited,
    RequestRejected,
    UpstreamError,
)
from clm_hub.redaction import MASK, Redactor
from clm_hub.testing import VirtualClock

BASE = "https://api.acme.test"
TOKEN = "sk-live-51c0ffee-secret"


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def acme_api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=True) as router:
        yield router


def make_client(
    clock: VirtualClock, limiter: RateLimiter | None = None, attempts: int = 4
) -> HttpClient:
    options = HttpOptions(
        base_url=BASE,
        headers={"Authorization": f"Bearer {TOKEN}"},
        limiter=limiter or Unlimited(),
        retry=RetryPolicy(attempts=attempts, initial_wait=1.0, max_wait=30.0, jitter=0.0),
    )
    return build_http_client(
        connector="acme", options=options, redactor=Redactor([TOKEN]), clock=clock
    )


@pytest.fixture
async def client(clock: VirtualClock) -> AsyncIterator[HttpClient]:
    async with make_client(clock) as c:
        yield c


async def test_5xx_is_retried_until_success(
    client: HttpClient, acme_api: respx.MockRouter, clock: VirtualClock
) -> None:
    acme_api.get("/v2/contacts").mock(
        side_effect=[httpx.Response(503), httpx.Response(502), httpx.Response(200, json={"ok": 1})]
    )
    assert await client.json("GET", "/v2/contacts") == {"ok": 1}
    assert client.stats.api_calls == 3
    assert client.stats.retries == 2
    assert clock.sleeps == [1.0, 2.0]  # exponential backoff, jitter off


async def test_429_waits_exactly_retry_after_seconds(
    client: HttpClient, acme_api: respx.MockRouter, clock: VirtualClock
) -> None:
    acme_api.get("/v2/contacts").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(200, json=[]),
        ]
    )
    await client.json("GET", "/v2/contacts")
    assert client.stats.throttled == 1
    assert clock.slept == pytest.approx(7.0)


async def test_429_retry_after_as_http_date(
    client: HttpClient, acme_api: respx.MockRouter, clock: VirtualClock
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    acme_api.get("/v2/contacts").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200)]
    )
    await client.request("GET", "/v2/contacts")
    assert 15 <= clock.slept <= 21


async def test_429_holds_the_limiter_for_concurrent_requests(acme_api: respx.MockRouter) -> None:
    clock = VirtualClock()
    limiter = SlidingWindow(100, 10, skew=0.0, clock=clock)
    acme_api.get("/v2/contacts").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "5"}), httpx.Response(200)]
    )
    async with make_client(clock, limiter) as client:
        await client.request("GET", "/v2/contacts")
    # The retry slept 5 s; the limiter's hold expired exactly then, so no second wait.
    assert clock.slept == pytest.approx(5.0)


async def test_persistent_429_ends_in_rate_limited(
    client: HttpClient, acme_api: respx.MockRouter
) -> None:
    acme_api.get("/v2/contacts").mock(
        return_value=httpx.Response(429, headers={"Retry-After": "1"})
    )
    with pytest.raises(RateLimited) as info:
        await client.request("GET", "/v2/contacts")
    assert info.value.retry_after == 1.0
    assert client.stats.api_calls == 4


async def test_401_is_not_retried_and_says_what_to_do(
    client: HttpClient, acme_api: respx.MockRouter
) -> None:
    route = acme_api.get("/v2/contacts").mock(return_value=httpx.Response(401))
    with pytest.raises(AuthError, match=r"clm-hub check") as info:
        await client.request("GET", "/v2/contacts")
    assert route.call_count == 1
    assert info.value.connector == "acme"
    assert info.value.status_code == 401


async def test_other_4xx_is_rejected_without_retry(
    client: HttpClient, acme_api: respx.MockRouter
) -> None:
    route = acme_api.post("/v2/contacts").mock(
        return_value=httpx.Response(400, json={"message": "email is invalid"})
    )
    with pytest.raises(RequestRejected, match="email is invalid"):
        await client.request("POST", "/v2/contacts", json={})
    assert route.call_count == 1


async def test_timeouts_are_retried(client: HttpClient, acme_api: respx.MockRouter) -> None:
    acme_api.get("/v2/contacts").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json={"ok": True})]
    )
    assert await client.json("GET", "/v2/contacts") == {"ok": True}
    assert client.stats.retries == 1


async def test_network_errors_end_in_upstream_error(
    client: HttpClient, acme_api: respx.MockRouter
) -> None:
    acme_api.get("/v2/contacts").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(UpstreamError, match="GET /v2/contacts failed"):
        await client.request("GET", "/v2/contacts")


async def test_malformed_json_is_retried_then_reported(
    client: HttpClient, acme_api: respx.MockRouter
) -> None:
    acme_api.get("/v2/contacts").mock(return_value=httpx.Response(200, content=b"{not json"))
    with pytest.raises(MalformedResponse, match="not JSON"):
        await client.json("GET", "/v2/contacts")
    assert client.stats.api_calls == 4


async def test_error_in_a_200_body_is_retried_through_parse(
    client: HttpClient, acme_api: respx.MockRouter, clock: VirtualClock
) -> None:
    acme_api.post("/graphql").mock(
        side_effect=[
            httpx.Response(200, json={"errors": [{"extensions": {"code": "THROTTLED"}}]}),
            httpx.Response(200, json={"data": {"ok": True}}),
        ]
    )

    def parse(response: httpx.Response) -> object:
        body = response.json()
        if body.get("errors"):
            raise RateLimited("acme", "throttled", retry_after=3.0, status_code=200)
        return body["data"]

    assert await client.call("POST", "/graphql", json={}, parse=parse) == {"ok": True}
    assert clock.slept == pytest.approx(3.0)


async def test_secrets_and_query_strings_never_reach_error_messages(
    client: HttpClient, acme_api: respx.MockRouter
) -> None:
    acme_api.get("/v2/contacts").mock(
        return_value=httpx.Response(400, text=f"bad token {TOKEN} for https://x.test/?key={TOKEN}")
    )
    with pytest.raises(RequestRejected) as info:
        await client.request("GET", "/v2/contacts", params={"api_key": TOKEN})
    message = str(info.value)
    assert TOKEN not in message
    assert MASK in message
    assert "api_key" not in message


async def test_rate_limit_headers_pace_the_next_request(acme_api: respx.MockRouter) -> None:
    from clm_hub.connectors.ratelimit import WindowHeaders

    clock = VirtualClock()
    limiter = SlidingWindow(
        100,
        10,
        clock=clock,
        headers=WindowHeaders(remaining="X-RateLimit-Remaining", reset="X-RateLimit-Reset"),
    )
    acme_api.get("/v2/contacts").mock(
        side_effect=[
            httpx.Response(200, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "4"}),
            httpx.Response(200),
        ]
    )
    async with make_client(clock, limiter) as client:
        await client.request("GET", "/v2/contacts")
        await client.request("GET", "/v2/contacts")
    assert clock.slept == pytest.approx(4.0)
    assert client.stats.throttled == 0


async def test_a_spent_daily_budget_fails_at_once_instead_of_retrying(
    acme_api: respx.MockRouter,
) -> None:
    from clm_hub.connectors.ratelimit import DailyBudget
    from clm_hub.errors import BudgetExhausted

    clock = VirtualClock()
    acme_api.get("/v2/contacts").respond(200)
    async with make_client(clock, DailyBudget("acme", 1, clock=clock)) as client:
        await client.request("GET", "/v2/contacts")
        with pytest.raises(BudgetExhausted, match="daily API budget used up"):
            await client.request("GET", "/v2/contacts")
    assert client.stats.api_calls == 1
    assert clock.slept == 0
