"""Tag push and erasure against the simulator over real HTTP."""

from __future__ import annotations

from clm_hub import PushChange, PushStatus
from clm_hub.testing import VirtualClock
from clm_hub_plugins.shopify import Shopify
from clm_hub_plugins.shopify.simulator import ShopState

from .conftest import make_connector


async def test_tag_push_adds_and_removes_only_the_given_tags(
    shopify: Shopify, state: ShopState
) -> None:
    customer = state.add_customer(
        email="ana@example.com", tags=["VIP", "wholesale", "clm:stage:new"]
    )
    [outcome] = await shopify.push(
        [
            PushChange(
                external_id=str(customer.id),
                add_tags=frozenset({"clm:stage:loyal", "clm:segment:champions"}),
                remove_tags=frozenset({"clm:stage:new"}),
            )
        ]
    )
    assert outcome.status is PushStatus.OK
    assert state.customer_tags(customer.id) == [
        "clm:segment:champions",
        "clm:stage:loyal",
        "VIP",
        "wholesale",
    ]


async def test_pushing_the_same_change_twice_is_harmless(
    shopify: Shopify, state: ShopState
) -> None:
    customer = state.add_customer(email="ana@example.com", tags=["VIP"])
    change = PushChange(external_id=str(customer.id), add_tags=frozenset({"clm:stage:new"}))
    first = await shopify.push([change])
    second = await shopify.push([change])
    assert [first[0].status, second[0].status] == [PushStatus.OK, PushStatus.OK]
    assert state.customer_tags(customer.id) == ["clm:stage:new", "VIP"]


async def test_unknown_customer_fails_alone_and_the_others_land(
    shopify: Shopify, state: ShopState
) -> None:
    known = [state.add_customer(email=f"p{i}@example.com") for i in range(3)]
    changes = [
        PushChange(external_id=str(c.id), add_tags=frozenset({"clm:stage:new"})) for c in known
    ]
    changes.insert(1, PushChange(external_id="999999", add_tags=frozenset({"clm:stage:new"})))
    outcomes = await shopify.push(changes)
    assert [(o.external_id, o.status) for o in outcomes] == [
        (str(known[0].id), PushStatus.OK),
        ("999999", PushStatus.FAILED),
        (str(known[1].id), PushStatus.OK),
        (str(known[2].id), PushStatus.OK),
    ]
    assert outcomes[1].reason == "tagsAdd: Customer does not exist"
    assert all(state.customer_tags(c.id) == ["clm:stage:new"] for c in known)


async def test_a_full_batch_goes_out_in_requests_within_the_cost_limit(
    shopify: Shopify, state: ShopState
) -> None:
    people = [state.add_customer(email=f"p{i}@example.com") for i in range(Shopify.max_push_batch)]
    changes = [
        PushChange(
            external_id=str(p.id),
            add_tags=frozenset({"clm:stage:loyal"}),
            remove_tags=frozenset({"clm:stage:new"}),
        )
        for p in people
    ]
    outcomes = await shopify.push(changes)
    assert {o.status for o in outcomes} == {PushStatus.OK}
    pushes = [r for r in state.requests if r.operation == "PushTags"]
    assert [r.requested_cost for r in pushes] == [500, 500]
    assert state.throttled_responses == 0


async def test_push_into_a_small_bucket_is_paced_not_throttled(
    clock: VirtualClock, shop_url: str, state: ShopState
) -> None:
    state.bucket.capacity = state.bucket.restore_rate = 200.0
    people = [state.add_customer(email=f"p{i}@example.com") for i in range(40)]
    connector = make_connector(clock, base_url=shop_url, bucket_size=200, restore_rate=200)
    outcomes = await connector.push(
        [PushChange(external_id=str(p.id), add_tags=frozenset({"clm:x"})) for p in people]
    )
    assert {o.status for o in outcomes} == {PushStatus.OK}
    # 40 mutations x 10 points through a 200-point bucket (180 after headroom).
    assert state.throttled_responses == 0
    assert len([r for r in state.requests if r.operation == "PushTags"]) == 3
    assert clock.slept > 0


async def test_erase_enqueues_erasure_and_treats_unknown_customers_as_done(
    shopify: Shopify, state: ShopState
) -> None:
    customer = state.add_customer(email="gone@example.com")
    outcomes = await shopify.erase([str(customer.id), "424242"])
    assert [o.status for o in outcomes] == [PushStatus.OK, PushStatus.OK]
    assert outcomes[1].reason == "Customer does not exist"
    assert state.customers[customer.id].erasure_requested
