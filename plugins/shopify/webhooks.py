"""Shopify webhook deliveries: signature, freshness, topics, and the records they carry.

Signature: ``X-Shopify-Hmac-Sha256`` is base64(HMAC-SHA256(app client secret, raw body)),
checked on the raw bytes before any JSON parsing, with a constant-time compare.
Payloads are REST-shaped (snake_case, integer ids) at the subscription's API version.
The idempotency key is ``X-Shopify-Event-Id`` (the same on every retry and on duplicate
deliveries of one event), else ``X-Shopify-Webhook-Id``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from structlog.typing import FilteringBoundLogger

from clm_hub import WebhookEvent, WebhookRequest
from clm_hub.errors import AuthError, ConfigError, MalformedResponse

from .settings import ShopifySettings
from .vendor import RestCustomer, RestOrder, contact_from_rest, order_from_rest

__all__ = [
    "COMPLIANCE_TOPICS",
    "CUSTOMER_TOPICS",
    "ORDER_TOPICS",
    "parse_delivery",
    "sign",
    "verify",
]

CUSTOMER_TOPICS = frozenset({"customers/create", "customers/update"})
ORDER_TOPICS = frozenset({"orders/create", "orders/updated", "orders/paid", "orders/cancelled"})
COMPLIANCE_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})


def sign(secret: str, body: bytes) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value Shopify sends for ``body``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(secret: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is the body's HMAC under ``secret`` (constant-time)."""
    return hmac.compare_digest(sign(secret, body).encode("ascii"), signature.strip().encode())


class _Rest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Id(_Rest):
    id: int


class _CustomersRedact(_Rest):
    customer: _Id
    orders_to_redact: list[int] = Field(default_factory=list)


class _DataRequest(_Rest):
    customer: _Id
    orders_requested: list[int] = Field(default_factory=list)


def _header(request: WebhookRequest, name: str) -> str | None:
    for key, value in request.headers.items():
        if key.lower() == name:
            return value
    return None


def _check_fresh(settings: ShopifySettings, connector_id: str, request: WebhookRequest) -> None:
    raw = _header(request, "x-shopify-triggered-at")
    if settings.webhook_max_age_s is None or not raw:
        return
    try:
        triggered = datetime.fromisoformat(raw)
    except ValueError:
        return
    if triggered.tzinfo is None or request.received_at.tzinfo is None:
        return
    age = request.received_at - triggered
    if age > timedelta(seconds=settings.webhook_max_age_s):
        raise AuthError(
            connector_id,
            f"webhook triggered {age} ago, older than webhook_max_age_s "
            f"({settings.webhook_max_age_s:.0f} s): refused as stale",
            status_code=401,
        )


def parse_delivery(
    settings: ShopifySettings,
    connector_id: str,
    request: WebhookRequest,
    log: FilteringBoundLogger,
) -> WebhookEvent:
    """Verify one delivery and turn it into a ``WebhookEvent``.

    Raises ``AuthError`` for a bad signature, another shop's delivery or a stale one (answer
    401: Shopify's compliance checks require it), ``MalformedResponse`` for an authentic
    body that does not parse, ``ConfigError`` when no client secret is configured.
    """
    if settings.client_secret is None:
        raise ConfigError(
            f"connectors.{connector_id}: set client_secret (the app's client secret / API "
            "secret key) to accept Shopify webhooks"
        )
    signature = _header(request, "x-shopify-hmac-sha256")
    if not signature or not verify(
        settings.client_secret.get_secret_value(), request.body, signature
    ):
        raise AuthError(
            connector_id,
            "webhook signature (X-Shopify-Hmac-Sha256) does not match the body: the delivery "
            "is forged or altered, or client_secret is not this app's client secret",
            status_code=401,
        )
    shop = _header(request, "x-shopify-shop-domain")
    if shop and shop.strip().lower() != settings.shop_domain:
        raise AuthError(
            connector_id,
            f"webhook is for shop {shop!r}, but this connector reads {settings.shop_domain!r}",
            status_code=401,
        )
    _check_fresh(settings, connector_id, request)

    event_id = (
        _header(request, "x-shopify-event-id")
        or _header(request, "x-shopify-webhook-id")
        or "sha256:" + hashlib.sha256(request.body).hexdigest()
    )
    topic = (_header(request, "x-shopify-topic") or "").strip().lower()
    try:
        payload = json.loads(request.body)
    except ValueError:
        raise MalformedResponse(connector_id, f"{topic} webhook body is not JSON") from None
    try:
        return _event(topic, event_id, payload, log)
    except (ValidationError, ValueError) as exc:
        raise MalformedResponse(
            connector_id, f"{topic} webhook payload does not parse: {_reason(exc)}"
        ) from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        )
    return str(exc)


def _event(topic: str, event_id: str, payload: object, log: FilteringBoundLogger) -> WebhookEvent:
    if topic in CUSTOMER_TOPICS:
        customer = contact_from_rest(RestCustomer.model_validate(payload))
        return WebhookEvent(event_id=event_id, contacts=[customer])
    if topic == "customers/delete":
        deleted = _Id.model_validate(payload)
        return WebhookEvent(
            event_id=event_id,
            contacts=[
                contact_from_rest(RestCustomer(id=deleted.id)).model_copy(update={"deleted": True})
            ],
        )
    if topic in ORDER_TOPICS:
        return WebhookEvent(
            event_id=event_id, orders=[order_from_rest(RestOrder.model_validate(payload))]
        )
    if topic == "customers/redact":
        redact = _CustomersRedact.model_validate(payload)
        log.info(
            "shopify.webhook.customer_redact",
            customer=redact.customer.id,
            orders=len(redact.orders_to_redact),
        )
        return WebhookEvent(event_id=event_id, erase_external_ids=[str(redact.customer.id)])
    if topic == "customers/data_request":
        request = _DataRequest.model_validate(payload)
        # The hub keeps only what the shop already has; the merchant answers the request.
        log.warning(
            "shopify.webhook.data_request",
            customer=request.customer.id,
            orders=len(request.orders_requested),
        )
        return WebhookEvent(event_id=event_id)
    if topic == "shop/redact":
        # WebhookEvent cannot say "erase everything from this source"; ops must act.
        log.warning("shopify.webhook.shop_redact", action="erase this connector's data")
        return WebhookEvent(event_id=event_id)
    log.info("shopify.webhook.ignored_topic", topic=topic)
    return WebhookEvent(event_id=event_id)
