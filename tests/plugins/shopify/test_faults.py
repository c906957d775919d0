"""Pacing and recovery against the simulator: bucket, throttling storms, 5xx, bad bodies."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from clm_hub import PushChange, PushStatus
from clm_hub.errors import AuthError, RateLimited
from clm_hub.sandbox import Fault, FaultPlan
from clm_hub.testing import VirtualClock
from clm_hub_plugins.shopify import Shopify
from clm_hub_plugins.shopify.simulator import ShopState

from .conftest import SECRET, TOKEN, make_connector

GRAPHQL = "/admin/api/"


async def count_contacts(connector: Shopify) -> int:
    return sum([len(p.records) async for p in connector.pull_contacts(None)])


async def test_burst_is_paced_by_the_bucket_without_throttled_answers(
    clock: VirtualClock, shop_url: str, state: ShopState
) -> None:
    state.bucket.capacity, state.bucket.restore_rate = 300.0, 50.0
    state.seed(customers=600, orders=0)
    connector = make_connector(
        clock, base_url=shop_url, page_size=50, bucket_size=300, restore_rate=50
    )
    assert await count_contacts(connector) == 600
    # 12 pages x 52 points = 624 points through a 300-point bucket keeping 10 % headroom:
    # the connector has to wait for about (624 - 270) / 50 s of refill, and no more.
    assert state.throttled_responses == 0
    assert clock.slept == pytest.approx((624 - 270) / 50, rel=0.1)


async def test_page_size_shrinks_to_fit_a_bucket_smaller_than_a_full_page(
    clock: VirtualClock, shop_url: str, state: ShopState
) -> None:
    state.bucket.capacity, state.bucket.restore_rate = 100.0, 50.0
    state.seed(customers=200, orders=0)
    connector = make_connector(clock, base_url=shop_url, bucket_size=100, restore_rate=50)
    assert await count_contacts(connector) == 200
    assert state.throttled_responses == 0
    assert {r.variables["first"] for r in state.requests if r.operation == "Customers"} == {88}


async def test_throttled_storm_is_waited_out(
    shopify: Shopify, state: ShopState, faults: FaultPlan, clock: VirtualClock
) -> None:
    state.seed(customers=300, orders=0)
    faults.inject(Fault.RATE_LIMIT, times=3, path_prefix=GRAPHQL)
    assert await count_contacts(shopify) == 300
    assert state.throttled_responses == 3
    assert shopify.http.stats.throttled == 3
    # Each storm drained the bucket; each retry waited what a 252-point query needs to
    # refill plus the 10 % headroom (200 points), at 100 points per second. Later pages are
    # then paced by the bucket, which the storm left nearly empty.
    waits = [s for s in clock.sleeps if s > 0.01]
    assert waits[:3] == pytest.approx([4.52, 4.52, 4.52])


async def test_endless_throttling_ends_in_rate_limited(
    shopify: Shopify, state: ShopState, faults: FaultPlan
) -> None:
    state.seed(customers=10, orders=0)
    faults.inject(Fault.RATE_LIMIT, times=10, path_prefix=GRAPHQL)
    with pytest.raises(RateLimited):
        await count_contacts(shopify)


async def test_push_answers_retry_when_shopify_stays_throttled(
    shopify: Shopify, state: ShopState, faults: FaultPlan
) -> None:
    customer = state.add_customer(email="ana@example.com")
    faults.inject(Fault.RATE_LIMIT, times=10, path_prefix=GRAPHQL)
    [outcome] = await shopify.push(
        [PushChange(external_id=str(customer.id), add_tags=frozenset({"clm:x"}))]
    )
    assert outcome.status is PushStatus.RETRY
    assert state.customer_tags(customer.id) == []


async def test_server_errors_are_retried(
    shopify: Shopify, state: ShopState, faults: FaultPlan
) -> None:
    state.seed(customers=300, orders=0)
    faults.inject(Fault.SERVER_ERROR, times=2, path_prefix=GRAPHQL)
    assert await count_contacts(shopify) == 300
    assert shopify.http.stats.retries == 2


async def test_malformed_json_is_retried(
    shopify: Shopify, state: ShopState, faults: FaultPlan
) -> None:
    state.seed(customers=300, orders=0)
    faults.inject(Fault.MALFORMED, times=1, path_prefix=GRAPHQL)
    assert await count_contacts(shopify) == 300
    assert shopify.http.stats.retries == 1


async def test_hung_request_times_out_and_is_retried(
    clock: VirtualClock, shop_url: str, state: ShopState, faults: FaultPlan
) -> None:
    state.seed(customers=20, orders=0)
    state.timeout_hold_s = 3.0
    faults.inject(Fault.TIMEOUT, times=1, path_prefix=GRAPHQL)
    connector = make_connector(clock, base_url=shop_url, request_timeout_s=0.3)
    assert await count_contacts(connector) == 20
    assert connector.http.stats.retries == 1


async def test_expired_token_raises_auth_error_without_retries(
    shopify: Shopify, state: ShopState, faults: FaultPlan
) -> None:
    state.seed(customers=10, orders=0)
    faults.inject(Fault.EXPIRED_TOKEN, times=1, path_prefix=GRAPHQL)
    with pytest.raises(AuthError, match="access_token"):
        await count_contacts(shopify)
    assert shopify.http.stats.api_calls == 1
    assert shopify.http.stats.retries == 0


async def test_token_and_secret_never_reach_logs_or_errors(
    shopify: Shopify, state: ShopState, faults: FaultPlan
) -> None:
    state.seed(customers=300, orders=0)
    faults.inject(Fault.RATE_LIMIT, times=1, path_prefix=GRAPHQL)
    faults.inject(Fault.SERVER_ERROR, times=1, path_prefix=GRAPHQL)
    with capture_logs() as logs:
        await count_contacts(shopify)
        state.revoke_token()
        with pytest.raises(AuthError) as refused:
            await shopify.check()
        delivery = state.delivery("customers/update", {"id": 1}, secret="forged")
        with pytest.raises(AuthError) as forged:
            await shopify.parse_webhook(delivery.to_request("https://hub/wh", state.clock.utcnow()))
    seen = repr(logs) + str(refused.value) + str(forged.value)
    assert [e["event"] for e in logs].count("http.retry") == 2
    assert TOKEN not in seen and SECRET not in seen


async def test_revoked_token_fails_check(shopify: Shopify, state: ShopState) -> None:
    await shopify.check()
    state.revoke_token()
    with pytest.raises(AuthError):
        await shopify.check()
