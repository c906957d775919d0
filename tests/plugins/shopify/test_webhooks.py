"""Webhook deliveries: HMAC verification, topics, and the records they become."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from clm_hub import OrderStatus, PushChange, WebhookRequest
from clm_hub.errors import AuthError, ConfigError, MalformedResponse
from clm_hub.testing import VirtualClock
from clm_hub_plugins.shopify import Shopify
from clm_hub_plugins.shopify.simulator import ShopState, WebhookDelivery

from .conftest import SECRET, make_connector

HOOK_URL = "https://hub.example.com/wh/shopify"


@pytest.fixture
async def connector(clock: VirtualClock) -> AsyncIterator[Shopify]:
    c = make_connector(clock)
    yield c
    await c.http.aclose()


@pytest.fixture
def customer_update(state: ShopState) -> WebhookDelivery:
    customer = state.add_customer(
        email="ana@example.com",
        first_name="Ana",
        tags=["VIP", "clm:stage:new"],
        email_marketing_state="SUBSCRIBED",
        created_at=datetime(2025, 3, 26, 19, 51, 37, tzinfo=UTC),
    )
    return state.delivery("customers/update", state.customer_payload(customer), event_id="e-1")


def received(
    delivery: WebhookDelivery, clock: VirtualClock, *, body: bytes | None = None
) -> WebhookRequest:
    request = delivery.to_request(HOOK_URL, received_at=clock.utcnow())
    return request if body is None else request.model_copy(update={"body": body})


def test_simulator_signs_with_base64_hmac_sha256_of_the_raw_body(
    customer_update: WebhookDelivery,
) -> None:
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), customer_update.body, hashlib.sha256).digest()
    ).decode()
    assert customer_update.headers["X-Shopify-Hmac-Sha256"] == expected


async def test_signed_customer_update_becomes_a_contact(
    connector: Shopify, customer_update: WebhookDelivery, clock: VirtualClock
) -> None:
    event = await connector.parse_webhook(received(customer_update, clock))
    [contact] = event.contacts
    assert event.event_id == "e-1"
    assert (contact.external_id, contact.email, contact.first_name) == (
        "7001",
        "ana@example.com",
        "Ana",
    )
    assert contact.tags == ("clm:stage:new", "VIP")
    assert contact.marketing_consent is True
    # REST payloads carry the shop's offset (+01:00); records are in UTC.
    assert contact.created_at == datetime(2025, 3, 26, 19, 51, 37, tzinfo=UTC)


async def test_altered_body_is_refused(
    connector: Shopify, customer_update: WebhookDelivery, clock: VirtualClock
) -> None:
    forged = customer_update.body.replace(b"ana@example.com", b"eve@example.com")
    with pytest.raises(AuthError, match="signature"):
        await connector.parse_webhook(received(customer_update, clock, body=forged))


async def test_delivery_signed_with_another_secret_is_refused(
    connector: Shopify, state: ShopState, clock: VirtualClock
) -> None:
    customer = state.add_customer(email="x@example.com")
    delivery = state.delivery(
        "customers/update", state.customer_payload(customer), secret="another-app"
    )
    with pytest.raises(AuthError):
        await connector.parse_webhook(received(delivery, clock))


async def test_unsigned_delivery_is_refused(
    connector: Shopify, customer_update: WebhookDelivery, clock: VirtualClock
) -> None:
    request = received(customer_update, clock)
    headers = {k: v for k, v in request.headers.items() if k != "x-shopify-hmac-sha256"}
    with pytest.raises(AuthError):
        await connector.parse_webhook(request.model_copy(update={"headers": headers}))


async def test_delivery_for_another_shop_is_refused(
    connector: Shopify, customer_update: WebhookDelivery, clock: VirtualClock
) -> None:
    request = received(customer_update, clock)
    headers = {**request.headers, "x-shopify-shop-domain": "other.myshopify.com"}
    with pytest.raises(AuthError, match=r"other\.myshopify\.com"):
        await connector.parse_webhook(request.model_copy(update={"headers": headers}))


async def test_stale_delivery_is_refused(
    connector: Shopify, state: ShopState, clock: VirtualClock
) -> None:
    customer = state.add_customer(email="x@example.com")
    old = clock.utcnow() - timedelta(days=3)
    delivery = state.delivery(
        "customers/update", state.customer_payload(customer), triggered_at=old
    )
    with pytest.raises(AuthError, match="stale"):
        await connector.parse_webhook(received(delivery, clock))


async def test_webhooks_need_the_client_secret(
    clock: VirtualClock, customer_update: WebhookDelivery
) -> None:
    connector = make_connector(clock, client_secret=None)
    with pytest.raises(ConfigError, match="client_secret"):
        await connector.parse_webhook(received(customer_update, clock))


async def test_event_id_falls_back_to_the_webhook_id(
    connector: Shopify, customer_update: WebhookDelivery, clock: VirtualClock
) -> None:
    request = received(customer_update, clock)
    headers = {k: v for k, v in request.headers.items() if k != "x-shopify-event-id"}
    event = await connector.parse_webhook(request.model_copy(update={"headers": headers}))
    assert event.event_id == customer_update.headers["X-Shopify-Webhook-Id"]


async def test_orders_paid_becomes_an_order_in_utc_with_its_refunds(
    connector: Shopify, state: ShopState, clock: VirtualClock
) -> None:
    buyer = state.add_customer(email="ana@example.com")
    order = state.add_order(
        total="55.00",
        refunded="5.00",
        customer_id=buyer.id,
        email=buyer.email,
        financial_status="PARTIALLY_REFUNDED",
        created_at=datetime(2026, 10, 30, 10, tzinfo=UTC),
    )
    delivery = state.delivery("orders/paid", state.order_payload(order))
    event = await connector.parse_webhook(received(delivery, clock))
    [record] = event.orders
    assert (record.external_id, record.customer_external_id) == (str(order.id), str(buyer.id))
    assert (record.total, record.refunded, record.currency) == (
        Decimal("55.00"),
        Decimal("5.00"),
        "EUR",
    )
    assert record.status is OrderStatus.PARTIALLY_REFUNDED
    assert record.placed_at == datetime(2026, 10, 30, 10, tzinfo=UTC)


async def test_orders_cancelled_marks_the_order_cancelled(
    connector: Shopify, state: ShopState, clock: VirtualClock
) -> None:
    order = state.add_order(total="10.00", email="g@example.com")
    state.update_order(order.id, cancelled_at=state.now(), financial_status="VOIDED")
    delivery = state.delivery("orders/cancelled", state.order_payload(order))
    event = await connector.parse_webhook(received(delivery, clock))
    assert event.orders[0].status is OrderStatus.CANCELLED


async def test_customers_delete_marks_the_contact_deleted(
    connector: Shopify, state: ShopState, clock: VirtualClock
) -> None:
    payload = {"id": 7009, "admin_graphql_api_id": "gid://shopify/Customer/7009"}
    event = await connector.parse_webhook(
        received(state.delivery("customers/delete", payload), clock)
    )
    [contact] = event.contacts
    assert (contact.external_id, contact.deleted) == ("7009", True)


async def test_customers_redact_asks_the_hub_to_erase_the_customer(
    connector: Shopify, state: ShopState, clock: VirtualClock
) -> None:
    customer = state.add_customer(email="gone@example.com")
    delivery = state.delivery("customers/redact", state.redact_payload(customer, [9001]))
    event = await connector.parse_webhook(received(delivery, clock))
    assert list(event.erase_external_ids) == [str(customer.id)]
    assert not event.contacts and not event.orders


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        (
            "customers/data_request",
            {
                "shop_id": 954889,
                "shop_domain": "clm-test.myshopify.com",
                "orders_requested": [299938],
                "customer": {"id": 191167, "email": "a@example.com"},
                "data_request": {"id": 9999},
            },
        ),
        ("shop/redact", {"shop_id": 954889, "shop_domain": "clm-test.myshopify.com"}),
    ],
)
async def test_other_compliance_topics_are_acknowledged_without_records(
    connector: Shopify,
    state: ShopState,
    clock: VirtualClock,
    topic: str,
    payload: dict[str, object],
) -> None:
    event = await connector.parse_webhook(received(state.delivery(topic, payload), clock))
    assert not event.contacts and not event.orders and not event.erase_external_ids


async def test_authentic_but_unreadable_payload_is_malformed(
    connector: Shopify, state: ShopState, clock: VirtualClock
) -> None:
    delivery = state.delivery("orders/create", {"id": 1, "currency": "EUR"})
    with pytest.raises(MalformedResponse, match="total_price"):
        await connector.parse_webhook(received(delivery, clock))


async def test_tag_push_queues_a_signed_customers_update_delivery(
    shopify: Shopify, state: ShopState, clock: VirtualClock
) -> None:
    customer = state.add_customer(email="ana@example.com")
    await shopify.push([PushChange(external_id=str(customer.id), add_tags=frozenset({"clm:x"}))])
    [delivery] = state.outbox
    event = await shopify.parse_webhook(received(delivery, clock))
    assert event.contacts[0].tags == ("clm:x",)
