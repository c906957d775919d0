"""The webhook receiver with a built-in plugin: Shopify deliveries, redaction included."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Engine, select

from clm_hub.ingest import PageWriter
from clm_hub.linking import customer_t, identity_t
from clm_hub.plugins import build_plugin_registry
from clm_hub.records import now_utc
from clm_hub.redaction import Redactor
from clm_hub.settings import HubSettings
from clm_hub.store import upgrade
from clm_hub.webhooks import WebhookOutcome, WebhookReceiver
from clm_hub_plugins.shopify.simulator import ShopState

HOOK_URL = "https://hub.example.com/webhooks/shop"


@pytest.fixture
def shop() -> ShopState:
    return ShopState()


@pytest.fixture
async def receiver(
    engine: Engine, shop: ShopState
) -> AsyncIterator[tuple[WebhookReceiver, list[set[int]]]]:
    upgrade(engine)
    settings = HubSettings(
        connectors={
            "shop": {"plugin": "shopify", "shop_domain": shop.shop,
                     "access_token": shop.access_token, "client_secret": shop.client_secret},
        }
    )  # fmt: skip
    registry = build_plugin_registry()
    handed_on: list[set[int]] = []
    made = WebhookReceiver(
        settings, registry, engine, PageWriter(engine, now=now_utc), redactor=Redactor(),
        on_ingested=lambda _, dirty: handed_on.append(dirty),
    )  # fmt: skip
    yield made, handed_on
    await made.aclose()


async def test_shopify_customer_updates_are_ingested_once_and_redactions_erase(
    receiver: tuple[WebhookReceiver, list[set[int]]], shop: ShopState, engine: Engine
) -> None:
    webhooks, handed_on = receiver
    ana = shop.add_customer(email="ana@example.com", first_name="Ana")
    update = shop.delivery("customers/update", shop.customer_payload(ana), event_id="e-1")
    reply = await webhooks.receive("shop", update.to_request(HOOK_URL, received_at=now_utc()))
    assert (reply.outcome, reply.customers) == (WebhookOutcome.ACCEPTED, 1)
    assert len(handed_on) == 1
    with engine.connect() as conn:
        email = conn.execute(
            select(identity_t.c.email).where(identity_t.c.external_id == str(ana.id))
        ).scalar_one()
    assert email == "ana@example.com"

    again = await webhooks.receive("shop", update.to_request(HOOK_URL, received_at=now_utc()))
    assert again.outcome is WebhookOutcome.DUPLICATE
    assert len(handed_on) == 1

    forged = shop.delivery(
        "customers/update", shop.customer_payload(ana), event_id="e-2", secret="wrong"
    )
    reply = await webhooks.receive("shop", forged.to_request(HOOK_URL, received_at=now_utc()))
    assert reply.outcome is WebhookOutcome.UNAUTHORIZED

    redact = shop.delivery("customers/redact", shop.redact_payload(ana), event_id="e-3")
    reply = await webhooks.receive("shop", redact.to_request(HOOK_URL, received_at=now_utc()))
    assert reply.outcome is WebhookOutcome.ACCEPTED
    with engine.connect() as conn:
        erased = conn.execute(select(customer_t.c.email, customer_t.c.erased_at)).one()
    assert erased.email is None and erased.erased_at is not None

    unknown = await webhooks.receive("nope", redact.to_request(HOOK_URL, received_at=now_utc()))
    assert unknown.outcome is WebhookOutcome.UNKNOWN_CONNECTOR
