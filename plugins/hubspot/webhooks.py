"""HubSpot webhook deliveries: v3 signatures and the event payload.

v3 (hubspot.md section 7): ``X-HubSpot-Signature-v3`` is base64(HMAC-SHA256(client secret,
method + uri + body + timestamp)), ``uri`` being the full URL as called and ``timestamp`` the
``X-HubSpot-Request-Timestamp`` header (epoch ms). Deliveries older than 5 minutes are
rejected. HubSpot's validation guide also has the receiver URL-decode a fixed set of
characters in the URI before hashing; both forms are accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import TypeAdapter, ValidationError

from .vendor import WebhookEventPayload, from_ms

__all__ = [
    "MAX_AGE",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryPlan",
    "SignatureProblem",
    "delivery_id",
    "parse_events",
    "plan_delivery",
    "sign_v3",
    "verify_v3",
]

SIGNATURE_HEADER = "x-hubspot-signature-v3"
TIMESTAMP_HEADER = "x-hubspot-request-timestamp"
MAX_AGE = timedelta(minutes=5)

# Characters HubSpot's v3 guide decodes in the request URI before hashing.
_DECODED = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip
_EVENTS = TypeAdapter(list[WebhookEventPayload])


class SignatureProblem(ValueError):
    """Why a delivery failed verification (missing header, stale, forged)."""


def sign_v3(*, secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> str:
    """The ``X-HubSpot-Signature-v3`` value HubSpot sends for this request."""
    source = method.upper().encode() + uri.encode() + body + str(timestamp_ms).encode()
    digest = hmac.new(secret.encode(), source, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _decode_uri(uri: str) -> str:
    for encoded, plain in _DECODED.items():
        uri = uri.replace(encoded, plain).replace(encoded.lower(), plain)
    return uri


def verify_v3(
    *,
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    headers: Mapping[str, str],
    now: datetime,
) -> None:
    """Raise ``SignatureProblem`` unless the delivery is signed with ``secret`` and fresh."""
    signature = headers.get(SIGNATURE_HEADER)
    raw_timestamp = headers.get(TIMESTAMP_HEADER)
    if not signature or not raw_timestamp:
        raise SignatureProblem(
            f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header (not a v3 delivery)"
        )
    try:
        timestamp_ms = int(raw_timestamp)
    except ValueError:
        raise SignatureProblem(f"{TIMESTAMP_HEADER} is not epoch milliseconds") from None
    age = now - from_ms(timestamp_ms)
    if abs(age) > MAX_AGE:
        raise SignatureProblem(
            f"delivery timestamp is {age.total_seconds():.0f} s from now; more than "
            f"{MAX_AGE.total_seconds():.0f} s means a replay or a wrong clock"
        )
    candidates = {uri, _decode_uri(uri)}
    for candidate in candidates:
        expected = sign_v3(
            secret=secret, method=method, uri=candidate, body=body, timestamp_ms=timestamp_ms
        )
        if hmac.compare_digest(expected.encode(), signature.encode()):
            return
    raise SignatureProblem(
        "signature does not match: wrong client_secret, or the URL differs from the one "
        "configured in HubSpot (set webhook_url when behind a proxy)"
    )


def parse_events(body: bytes) -> Sequence[WebhookEventPayload]:
    """The events of a delivery; ``ValueError`` if the body is not HubSpot's JSON array."""
    try:
        return _EVENTS.validate_python(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"delivery is not a JSON array of HubSpot events: {exc}") from None


@dataclass(frozen=True)
class DeliveryPlan:
    """What a delivery asks the connector to do: events carry ids only."""

    fetch_contacts: tuple[str, ...]
    fetch_deals: tuple[str, ...]
    deleted_contacts: tuple[str, ...]
    erased_contacts: tuple[str, ...]
    ignored: int


def plan_delivery(
    events: Sequence[WebhookEventPayload], *, owned: Collection[str], deals: bool
) -> DeliveryPlan:
    """Sort a delivery's events into contacts (and deals) to fetch, deleted and erased ones.

    ``contact.propertyChange`` events on the hub's own properties are our writes coming
    back and are dropped; deal events count only when ``deals`` are read as orders.
    """
    fetch: dict[str, None] = {}
    fetch_deals: dict[str, None] = {}
    deleted: set[str] = set()
    erased: set[str] = set()
    ignored = 0
    for event in events:
        kind, _, action = event.subscriptionType.partition(".")
        object_id = str(event.objectId)
        if kind == "contact":
            if action == "privacyDeletion":
                erased.add(object_id)
            elif action == "deletion":
                deleted.add(object_id)
            elif action == "merge":
                primary = str(event.primaryObjectId or event.objectId)
                fetch[primary] = None
                deleted.update(str(i) for i in event.mergedObjectIds if str(i) != primary)
            elif action == "propertyChange" and event.propertyName in owned:
                ignored += 1
            else:
                fetch[object_id] = None
        elif kind == "deal" and action != "deletion" and deals:
            fetch_deals[object_id] = None
        else:
            ignored += 1
    return DeliveryPlan(
        fetch_contacts=tuple(i for i in fetch if i not in deleted | erased),
        fetch_deals=tuple(fetch_deals),
        deleted_contacts=tuple(sorted(deleted - erased)),
        erased_contacts=tuple(sorted(erased)),
        ignored=ignored,
    )


def delivery_id(events: Sequence[WebhookEventPayload]) -> str:
    """A stable id for a delivery: HubSpot's retries resend the same events, and an
    ``eventId`` alone is not guaranteed unique."""
    parts = sorted(f"{e.eventId}:{e.occurredAt}:{e.objectId}:{e.subscriptionType}" for e in events)
    return "hubspot-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]
