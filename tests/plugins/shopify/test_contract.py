"""The exact requests the connector sends, and how it reads Shopify's answers (respx)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
import respx

from clm_hub import OrderStatus, PushChange, PushStatus, StreamCursor
from clm_hub.connectors import TokenBucket
from clm_hub.errors import AuthError
from clm_hub.plugins import build_plugin_registry
from clm_hub.runtime import build_redactor, configure_connectors, open_connector
from clm_hub.settings import HubSettings
from clm_hub.testing import VirtualClock
from clm_hub_plugins import shopify as shopify_plugin
from clm_hub_plugins.shopify import Shopify
from clm_hub_plugins.shopify import documents as docs

from .conftest import SHOP, TOKEN, make_connector

ENDPOINT = "/admin/api/2026-10/graphql.json"

# The customer node from shopify.md section 2 (a live capture, values invented).
ANA: dict[str, object] = {
    "id": "gid://shopify/Customer/7001",
    "firstName": "Ana",
    "lastName": "Diaz",
    "createdAt": "2025-03-26T19:51:37Z",
    "updatedAt": "2026-11-02T08:10:00Z",
    "tags": ["lc:repeat", "VIP"],
    "defaultEmailAddress": {"emailAddress": "ana@example.com", "marketingState": "SUBSCRIBED"},
    "defaultPhoneNumber": None,
}


def order_node(**changes: object) -> dict[str, object]:
    node: dict[str, object] = {
        "id": "gid://shopify/Order/9001",
        "createdAt": "2026-10-30T10:00:00Z",
        "processedAt": "2026-10-30T10:00:00Z",
        "updatedAt": "2026-10-30T10:00:02Z",
        "cancelledAt": None,
        "test": False,
        "email": "ana@example.com",
        "customer": {"id": "gid://shopify/Customer/7001"},
        "displayFinancialStatus": "PAID",
        "totalPriceSet": {"shopMoney": {"amount": "55.0", "currencyCode": "EUR"}},
        "totalRefundedSet": {"shopMoney": {"amount": "0.0", "currencyCode": "EUR"}},
    }
    node.update(changes)
    return node


def cost(
    requested: float, actual: float | None, available: float = 1990.0, maximum: float = 2000.0
) -> dict[str, object]:
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": maximum,
                "currentlyAvailable": available,
                "restoreRate": 100.0,
            },
        }
    }


def page(root: str, nodes: list[dict[str, object]], end: str | None = None) -> dict[str, object]:
    return {
        "data": {
            root: {"pageInfo": {"hasNextPage": end is not None, "endCursor": end}, "nodes": nodes}
        },
        "extensions": cost(252, 2 + len(nodes)),
    }


def sent(call: respx.models.Call) -> dict[str, object]:
    body: dict[str, object] = json.loads(call.request.content)
    return body


@pytest.fixture
async def connector(clock: VirtualClock) -> AsyncIterator[Shopify]:
    c = make_connector(clock, headroom=0.0)
    yield c
    await c.http.aclose()


@pytest.fixture
def shopify_api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=f"https://{SHOP}", assert_all_called=True) as router:
        yield router


def test_plugin_registers_the_connector_through_its_hook() -> None:
    settings = HubSettings(
        connectors={"shop": {"plugin": "shopify", "shop_domain": "clm-test", "access_token": TOKEN}}
    )
    registry = build_plugin_registry(entry_points=False, extra={"shopify": shopify_plugin})
    [item] = configure_connectors(settings, registry)
    opened = open_connector(item, build_redactor([item]))
    assert isinstance(opened, Shopify)
    assert opened.settings.shop_domain == "clm-test.myshopify.com"
    assert isinstance(opened.http.limiter, TokenBucket)


async def test_check_posts_to_the_versioned_endpoint_with_the_access_token(
    connector: Shopify, shopify_api: respx.MockRouter
) -> None:
    route = shopify_api.post(ENDPOINT).respond(
        200, json={"data": {"shop": {"name": "clm-test"}}, "extensions": cost(1, 1)}
    )
    await connector.check()
    request = route.calls.last.request
    assert request.headers["X-Shopify-Access-Token"] == TOKEN
    assert "Authorization" not in request.headers
    assert request.headers["Content-Type"] == "application/json"
    assert sent(route.calls.last) == {"query": docs.CHECK.text, "variables": {}}


async def test_api_version_setting_changes_the_url(
    clock: VirtualClock, shopify_api: respx.MockRouter
) -> None:
    route = shopify_api.post("/admin/api/2026-07/graphql.json").respond(
        200, json={"data": {"shop": {"name": "clm-test"}}, "extensions": cost(1, 1)}
    )
    connector = make_connector(clock, api_version="2026-07")
    await connector.check()
    assert route.called


async def test_pull_contacts_sends_the_incremental_filter_sorted_by_updated_at(
    connector: Shopify, shopify_api: respx.MockRouter
) -> None:
    route = shopify_api.post(ENDPOINT).respond(200, json=page("customers", []))
    since = StreamCursor(updated_since=datetime(2026, 11, 1, 0, 0, 0, 999, tzinfo=UTC))
    [_] = [p async for p in connector.pull_contacts(since)]
    body = sent(route.calls.last)
    assert body["variables"] == {
        "first": 250,
        "after": None,
        "query": "updated_at:>='2026-11-01T00:00:00Z'",
    }
    query = str(body["query"])
    assert "customers(first: $first, after: $after, query: $query, sortKey: UPDATED_AT)" in query
    assert "pageInfo { hasNextPage endCursor }" in query


async def test_pull_contacts_maps_the_documented_customer_node(
    connector: Shopify, shopify_api: respx.MockRouter
) -> None:
    shopify_api.post(ENDPOINT).respond(200, json=page("customers", [ANA]))
    [result] = [p async for p in connector.pull_contacts(None)]
    [ana] = result.records
    assert ana.external_id == "7001"
    assert (ana.email, ana.phone, ana.first_name, ana.last_name) == (
        "ana@example.com",
        None,
        "Ana",
        "Diaz",
    )
    assert ana.marketing_consent is True
    assert ana.tags == ("lc:repeat", "VIP")
    assert ana.created_at == datetime(2025, 3, 26, 19, 51, 37, tzinfo=UTC)
    assert result.cursor == StreamCursor(updated_since=datetime(2026, 11, 2, 8, 10, tzinfo=UTC))


async def test_pull_follows_end_cursor_and_yields_a_resumable_cursor(
    connector: Shopify, shopify_api: respx.MockRouter
) -> None:
    later = {**ANA, "id": "gid://shopify/Customer/7002", "updatedAt": "2026-11-03T00:00:00Z"}
    route = shopify_api.post(ENDPOINT).mock(
        side_effect=[
            httpx.Response(200, json=page("customers", [ANA], end="c2")),
            httpx.Response(200, json=page("customers", [later])),
        ]
    )
    first, second = [p async for p in connector.pull_contacts(None)]
    assert sent(route.calls[1])["variables"] == {"first": 250, "after": "c2", "query": None}
    assert first.cursor is not None and first.cursor.token is not None
    assert json.loads(first.cursor.token) == {"from": None, "after": "c2"}
    assert second.cursor == StreamCursor(updated_since=datetime(2026, 11, 3, tzinfo=UTC))


async def test_resuming_from_a_token_repeats_the_original_filter(
    connector: Shopify, shopify_api: respx.MockRouter
) -> None:
    route = shopify_api.post(ENDPOINT).respond(200, json=page("customers", []))
    token = json.dumps({"from": "2026-11-01T00:00:00+00:00", "after": "c7"})
    since = StreamCursor(updated_since=datetime(2026, 11, 5, tzinfo=UTC), token=token)
    [_] = [p async for p in connector.pull_contacts(since)]
    assert sent(route.calls.last)["variables"] == {
        "first": 250,
        "after": "c7",
        "query": "updated_at:>='2026-11-01T00:00:00Z'",
    }


async def test_malformed_customer_is_rejected_and_the_page_goes_on(
    connector: Shopify, shopify_api: respx.MockRouter
) -> None:
    broken = {**ANA, "id": "gid://shopify/Customer/7003", "updatedAt": "yesterday"}
    shopify_api.post(ENDPOINT).respond(200, json=page("customers", [ANA, broken]))
    [result] = [p async for p in connector.pull_contacts(None)]
    assert [r.external_id for r in result.records] == ["7001"]
    [rejected] = result.rejected
    assert rejected.external_id == "7003"
    assert "updatedAt" in rejected.reason


@pytest.mark.parametrize(
    ("changes", "status", "refunded"),
    [
        ({}, OrderStatus.PAID, Decimal("0")),
        ({"displayFinancialStatus": "PENDING"}, OrderStatus.PENDING, Decimal("0")),
        ({"displayFinancialStatus": "AUTHORIZED"}, OrderStatus.PENDING, Decimal("0")),
        ({"displayFinancialStatus": "VOIDED"}, OrderStatus.CANCELLED, Decimal("0")),
        ({"cancelledAt": "2026-10-31T09:00:00Z"}, OrderStatus.CANCELLED, Decimal("0")),
        (
            {
                "displayFinancialStatus": "PARTIALLY_REFUNDED",
                "totalRefundedSet": {"shopMoney": {"amount": "5.5", "currencyCode": "EUR"}},
            },
            OrderStatus.PARTIALLY_REFUNDED,
            Decimal("5.5"),
        ),
        (
            {
                "displayFinancialStatus": "REFUNDED",
                "totalRefundedSet": {"shopMoney": {"amount": "55.0", "currencyCode": "EUR"}},
            },
            OrderStatus.REFUNDED,
            Decimal("55.0"),
        ),
    ],
)
async def test_order_status_follows_financial_status_cancellation_and_refunds(
    connector: Shopify,
    shopify_api: respx.MockRouter,
    changes: dict[str, object],
    status: OrderStatus,
    refunded: Decimal,
) -> None:
    shopify_api.post(ENDPOINT).respond(200, json=page("orders", [order_node(**changes)]))
    [result] = [p async for p in connector.pull_orders(None)]
    [order] = result.records
    assert (order.status, order.refunded, order.total, order.currency) == (
        status,
        refunded,
        Decimal("55.0"),
        "EUR",
    )
    assert (order.external_id, order.customer_external_id) == ("9001", "7001")


async def test_order_is_placed_at_processed_at_not_created_at(
    connector: Shopify, shopify_api: respx.MockRouter
) -> None:
    imported = order_node(processedAt="2024-02-01T12:00:00Z")
    shopify_api.post(ENDPOINT).respond(200, json=page("orders", [imported]))
    [result] = [p async for p in connector.pull_orders(None)]
    assert result.records[0].placed_at == datetime(2024, 2, 1, 12, tzinfo=UTC)


async def test_guest_order_links_by_email_only(
    connector: Shopify, shopify_api: respx.MockRouter
) -> None:
    shopify_api.post(ENDPOINT).respond(200, json=page("orders", [order_node(customer=None)]))
    [result] = [p async for p in connector.pull_orders(None)]
    [order] = result.records
    assert (order.customer_external_id, order.email) == (None, "ana@example.com")


async def test_test_orders_are_skipped(connector: Shopify, shopify_api: respx.MockRouter) -> None:
    test_order = order_node(id="gid://shopify/Order/9002", test=True)
    shopify_api.post(ENDPOINT).respond(200, json=page("orders", [order_node(), test_order]))
    [result] = [p async for p in connector.pull_orders(None)]
    assert [o.external_id for o in result.records] == ["9001"]
    assert result.rejected == []


async def test_throttled_answer_is_retried_after_the_time_the_bucket_needs(
    connector: Shopify, shopify_api: respx.MockRouter, clock: VirtualClock
) -> None:
    throttled = {
        "errors": [
            {
                "message": "Throttled",
                "extensions": {
                    "code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits",
                },
            }
        ],
        "extensions": cost(252, None, available=118),
    }
    shopify_api.post(ENDPOINT).mock(
        side_effect=[
            httpx.Response(200, json=throttled),
            httpx.Response(200, json=page("customers", [ANA])),
        ]
    )
    [result] = [p async for p in connector.pull_contacts(None)]
    assert len(result.records) == 1
    # Documented wait: (requested - currentlyAvailable) / restoreRate = (252 - 118) / 100.
    assert clock.slept == pytest.approx(1.34)
    assert connector.http.stats.throttled == 1


async def test_bucket_adopts_the_reported_throttle_status(
    connector: Shopify, shopify_api: respx.MockRouter
) -> None:
    shopify_api.post(ENDPOINT).respond(
        200,
        json={
            "data": {"shop": {"name": "clm-test"}},
            "extensions": cost(1, 1, available=1500.0, maximum=4000.0),
        },
    )
    await connector.check()
    bucket = connector.http.limiter
    assert isinstance(bucket, TokenBucket)
    assert (bucket.capacity, bucket.refill_rate) == (4000.0, 100.0)
    assert bucket.available == pytest.approx(1500.0)


async def test_missing_scope_raises_auth_error_naming_the_scope(
    connector: Shopify, shopify_api: respx.MockRouter
) -> None:
    route = shopify_api.post(ENDPOINT).respond(
        200,
        json={
            "data": {"customers": None},
            "errors": [
                {
                    "message": "Access denied for customers field. Required access: "
                    "`read_customers` access scope.",
                    "path": ["customers"],
                    "extensions": {"code": "ACCESS_DENIED"},
                }
            ],
            "extensions": cost(252, 2),
        },
    )
    with pytest.raises(AuthError, match="read_customers"):
        [p async for p in connector.pull_contacts(None)]
    assert route.call_count == 1


async def test_rejected_token_raises_auth_error_without_retry(
    connector: Shopify, shopify_api: respx.MockRouter
) -> None:
    route = shopify_api.post(ENDPOINT).respond(
        401,
        json={
            "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
        },
    )
    with pytest.raises(AuthError, match="access_token") as info:
        await connector.check()
    assert route.call_count == 1
    assert TOKEN not in str(info.value)


async def test_push_sends_aliased_tags_add_and_remove_with_only_the_given_tags(
    connector: Shopify, shopify_api: respx.MockRouter
) -> None:
    ok = {"node": {"id": "gid://shopify/Customer/7001"}, "userErrors": []}
    route = shopify_api.post(ENDPOINT).respond(
        200,
        json={
            "data": {"c0add": ok, "c0remove": ok, "c1add": ok},
            "extensions": cost(30, 30),
        },
    )
    outcomes = await connector.push(
        [
            PushChange(
                external_id="7001",
                add_tags=frozenset({"clm:stage:loyal", "clm:segment:champions"}),
                remove_tags=frozenset({"clm:stage:new"}),
            ),
            PushChange(external_id="7002", add_tags=frozenset({"clm:stage:new"})),
        ]
    )
    assert [o.status for o in outcomes] == [PushStatus.OK, PushStatus.OK]
    body = sent(route.calls.last)
    assert body["variables"] == {
        "c0addId": "gid://shopify/Customer/7001",
        "c0addTags": ["clm:segment:champions", "clm:stage:loyal"],
        "c0removeId": "gid://shopify/Customer/7001",
        "c0removeTags": ["clm:stage:new"],
        "c1addId": "gid://shopify/Customer/7002",
        "c1addTags": ["clm:stage:new"],
    }
    query = str(body["query"])
    assert "c0add: tagsAdd(id: $c0addId, tags: $c0addTags)" in query
    assert "c0remove: tagsRemove(id: $c0removeId, tags: $c0removeTags)" in query
    assert "customerUpdate" not in query


async def test_push_maps_user_errors_to_the_record_they_belong_to(
    connector: Shopify, shopify_api: respx.MockRouter
) -> None:
    missing = {
        "node": None,
        "userErrors": [{"field": ["id"], "message": "Customer does not exist"}],
    }
    shopify_api.post(ENDPOINT).respond(
        200,
        json={
            "data": {
                "c0add": {"node": {"id": "gid://shopify/Customer/7001"}, "userErrors": []},
                "c1add": missing,
            },
            "extensions": cost(20, 20),
        },
    )
    outcomes = await connector.push(
        [
            PushChange(external_id="7001", add_tags=frozenset({"clm:stage:new"})),
            PushChange(external_id="404", add_tags=frozenset({"clm:stage:new"})),
        ]
    )
    assert [(o.external_id, o.status, o.reason) for o in outcomes] == [
        ("7001", PushStatus.OK, None),
        ("404", PushStatus.FAILED, "tagsAdd: Customer does not exist"),
    ]


async def test_push_splits_batches_to_keep_each_request_within_the_cost_limit(
    clock: VirtualClock, shopify_api: respx.MockRouter
) -> None:
    connector = make_connector(clock, push_mutations_per_request=4)

    def answer(request: httpx.Request) -> httpx.Response:
        aliases = [k.removesuffix("Id") for k in json.loads(request.content)["variables"]]
        data: dict[str, object] = {
            a: {"node": None, "userErrors": []} for a in aliases if not a.endswith("Tags")
        }
        return httpx.Response(200, json={"data": data, "extensions": cost(10, 10)})

    route = shopify_api.post(ENDPOINT).mock(side_effect=answer)
    changes = [
        PushChange(
            external_id=str(7001 + i),
            add_tags=frozenset({"clm:stage:loyal"}),
            remove_tags=frozenset({"clm:stage:new"}),
        )
        for i in range(5)
    ]
    outcomes = await connector.push(changes)
    assert all(o.status is PushStatus.OK for o in outcomes)
    sizes = [str(sent(call)["query"]).count(": tags") for call in route.calls]
    assert sizes == [4, 4, 2]


async def test_push_refuses_tags_shopify_would_split_without_calling_it(
    connector: Shopify,
) -> None:
    with respx.mock(assert_all_called=False) as router:
        route = router.post(f"https://{SHOP}{ENDPOINT}")
        [outcome] = await connector.push(
            [PushChange(external_id="7001", add_tags=frozenset({"clm:stage:a,b"}))]
        )
    assert outcome.status is PushStatus.FAILED
    assert "comma" in (outcome.reason or "")
    assert not route.called


async def test_erase_requests_data_erasure_per_customer(
    connector: Shopify, shopify_api: respx.MockRouter
) -> None:
    route = shopify_api.post(ENDPOINT).respond(
        200,
        json={
            "data": {
                "e0": {"customerId": "gid://shopify/Customer/7001", "userErrors": []},
                "e1": {
                    "customerId": None,
                    "userErrors": [
                        {
                            "field": ["customerId"],
                            "message": "Failed to request customer data erasure.",
                            "code": "FAILED_TO_REQUEST",
                        }
                    ],
                },
            },
            "extensions": cost(20, 20),
        },
    )
    outcomes = await connector.erase(["7001", "7002"])
    assert [o.status for o in outcomes] == [PushStatus.OK, PushStatus.RETRY]
    assert sent(route.calls.last)["variables"] == {
        "e0": "gid://shopify/Customer/7001",
        "e1": "gid://shopify/Customer/7002",
    }
