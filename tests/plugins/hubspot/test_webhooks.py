"""Webhook deliveries: v3 signatures, freshness, and fetching the records they name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clm_hub import WebhookRequest
from clm_hub.errors import AuthError
from clm_hub_plugins.hubspot import HubSpot
from clm_hub_plugins.hubspot.simstate import DEFAULT_CLIENT_SECRET, HubSpotState
from clm_hub_plugins.hubspot.simulator import signed_delivery, webhook_event
from clm_hub_plugins.hubspot.webhooks import parse_events, plan_delivery, sign_v3

from .conftest import Factory

URL = "https://hub.example.com/webhooks/hubspot?source=crm"


@pytest.fixture
def hooked(sim: Factory) -> Factory:
    def make(**settings: object) -> HubSpot:
        return sim(client_secret=DEFAULT_CLIENT_SECRET, **settings)

    return make


def test_signature_is_base64_hmac_sha256_over_method_uri_body_and_timestamp() -> None:
    # HubSpot's v3 recipe, computed independently of the connector's code.
    import base64
    import hashlib
    import hmac

    body = b'[{"eventId":1}]'
    source = b"POST" + URL.encode() + body + b"1717230000123"
    expected = base64.b64encode(hmac.new(b"secret", source, hashlib.sha256).digest()).decode()
    assert (
        sign_v3(secret="secret", method="POST", uri=URL, body=body, timestamp_ms=1717230000123)
        == expected
    )


async def test_valid_delivery_returns_the_changed_contacts_fetched_in_one_batch(
    state: HubSpotState, hooked: Factory
) -> None:
    ann = state.add_contact("ann@example.com", firstname="Ann")
    bob = state.add_contact("bob@example.com")
    events = [
        webhook_event(ann, event_id=1, property_name="firstname", property_value="Ann"),
        webhook_event(bob, event_id=2, subscription_type="contact.creation"),
        webhook_event(ann, event_id=3, property_name="email", property_value="ann@example.com"),
    ]
    delivery = signed_delivery(events, url=URL, client_secret=DEFAULT_CLIENT_SECRET)
    event = await hooked().parse_webhook(delivery)
    assert sorted(c.external_id for c in event.contacts) == sorted([ann, bob])
    assert {c.first_name for c in event.contacts if c.external_id == ann} == {"Ann"}
    assert len(state.calls("/crm/v3/objects/contacts/batch/read")) == 1
    assert event.event_id.startswith("hubspot-")


async def test_same_delivery_sent_again_has_the_same_event_id(
    state: HubSpotState, hooked: Factory
) -> None:
    ann = state.add_contact("ann@example.com")
    events = [webhook_event(ann, event_id=7, occurred_at=datetime(2026, 3, 1, tzinfo=UTC))]
    hubspot = hooked()
    first = await hubspot.parse_webhook(
        signed_delivery(events, url=URL, client_secret=DEFAULT_CLIENT_SECRET)
    )
    retry = await hubspot.parse_webhook(
        signed_delivery(events, url=URL, client_secret=DEFAULT_CLIENT_SECRET)
    )
    assert first.event_id == retry.event_id


async def test_forged_signature_is_rejected(state: HubSpotState, hooked: Factory) -> None:
    delivery = signed_delivery(
        [webhook_event(1, event_id=1)], url=URL, client_secret="someone-elses-secret"
    )
    with pytest.raises(AuthError, match="signature does not match"):
        await hooked().parse_webhook(delivery)
    assert state.requests == []


async def test_tampered_body_is_rejected(hooked: Factory) -> None:
    delivery = signed_delivery(
        [webhook_event(1, event_id=1)], url=URL, client_secret=DEFAULT_CLIENT_SECRET
    )
    tampered = WebhookRequest(
        **{**delivery.model_dump(), "body": delivery.body.replace(b'"objectId":1', b'"objectId":2')}
    )
    with pytest.raises(AuthError, match="signature does not match"):
        await hooked().parse_webhook(tampered)


async def test_delivery_older_than_five_minutes_is_rejected(hooked: Factory) -> None:
    sent = datetime.now(UTC) - timedelta(minutes=6)
    delivery = signed_delivery(
        [webhook_event(1, event_id=1)], url=URL, client_secret=DEFAULT_CLIENT_SECRET, timestamp=sent
    )
    with pytest.raises(AuthError, match="replay"):
        await hooked().parse_webhook(delivery)


async def test_delivery_without_v3_headers_is_rejected(hooked: Factory) -> None:
    delivery = signed_delivery(
        [webhook_event(1, event_id=1)], url=URL, client_secret=DEFAULT_CLIENT_SECRET
    )
    unsigned = WebhookRequest(**{**delivery.model_dump(), "headers": {}})
    with pytest.raises(AuthError, match="missing"):
        await hooked().parse_webhook(unsigned)


async def test_configured_webhook_url_is_what_the_signature_covers(hooked: Factory) -> None:
    public = "https://hub.example.com/hs"
    delivery = signed_delivery([], url=public, client_secret=DEFAULT_CLIENT_SECRET)
    behind_proxy = WebhookRequest(**{**delivery.model_dump(), "url": "http://10.0.0.5:8787/hs"})
    event = await hooked(webhook_url=public).parse_webhook(behind_proxy)
    assert event.contacts == []


def test_plan_drops_our_own_writes_and_sorts_deletions_from_changes() -> None:
    events = parse_events(
        b'[{"eventId":1,"occurredAt":1,"subscriptionType":"contact.propertyChange",'
        b'"objectId":5,"propertyName":"clm_stage","propertyValue":"vip"},'
        b'{"eventId":2,"occurredAt":1,"subscriptionType":"contact.deletion","objectId":6},'
        b'{"eventId":3,"occurredAt":1,"subscriptionType":"contact.privacyDeletion","objectId":7},'
        b'{"eventId":4,"occurredAt":1,"subscriptionType":"contact.merge","objectId":8,'
        b'"primaryObjectId":8,"mergedObjectIds":[8,9]},'
        b'{"eventId":5,"occurredAt":1,"subscriptionType":"deal.creation","objectId":900}]'
    )
    plan = plan_delivery(events, owned={"clm_stage"}, deals=True)
    assert plan.fetch_contacts == ("8",)
    assert plan.deleted_contacts == ("6", "9")
    assert plan.erased_contacts == ("7",)
    assert plan.fetch_deals == ("900",)
    assert plan.ignored == 1


async def test_deleted_and_erased_contacts_come_back_as_such(
    state: HubSpotState, hooked: Factory
) -> None:
    events = [
        webhook_event(6, event_id=1, subscription_type="contact.deletion"),
        webhook_event(7, event_id=2, subscription_type="contact.privacyDeletion"),
        webhook_event(8, event_id=3, subscription_type="contact.creation"),  # gone since
    ]
    delivery = signed_delivery(events, url=URL, client_secret=DEFAULT_CLIENT_SECRET)
    event = await hooked().parse_webhook(delivery)
    assert [(c.external_id, c.deleted) for c in event.contacts] == [("6", True), ("8", True)]
    assert list(event.erase_external_ids) == ["7"]
