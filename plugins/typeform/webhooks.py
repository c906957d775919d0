"""Typeform webhook deliveries: the ``Typeform-Signature`` header and the payload.

The signature (surveys.md A6) is ``sha256=`` + base64(HMAC-SHA256(secret, raw body)):
base64, not hex, over the exact bytes received, before any JSON parsing. Deliveries carry
no timestamp, so a replay cannot be told by its signature; the hub drops a delivery whose
``event_id`` it has seen, and re-ingesting the same response changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping

from pydantic import ValidationError

from .vendor import WebhookDelivery, WebhookResponse

__all__ = [
    "SIGNATURE_HEADER",
    "SignatureProblem",
    "parse_delivery",
    "parse_form_response",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "typeform-signature"
_PREFIX = "sha256="


class SignatureProblem(ValueError):
    """Why a delivery failed verification (no header, wrong format, forged)."""


def sign(secret: str, body: bytes) -> str:
    """The ``Typeform-Signature`` value Typeform sends with ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return _PREFIX + base64.b64encode(digest).decode()


def verify(*, secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Raise ``SignatureProblem`` unless ``body`` is signed with ``secret``."""
    received = headers.get(SIGNATURE_HEADER)
    if not received:
        raise SignatureProblem(
            "missing Typeform-Signature header: the webhook has no secret in Typeform, or "
            "the delivery did not come from Typeform"
        )
    if not received.startswith(_PREFIX):
        raise SignatureProblem("Typeform-Signature is not of the form sha256=<base64>")
    if not hmac.compare_digest(sign(secret, body).encode(), received.strip().encode()):
        raise SignatureProblem(
            "signature does not match: wrong webhook_secret, or the body was changed on the way"
        )


def parse_delivery(body: bytes) -> WebhookDelivery:
    """The delivery's envelope; ``ValueError`` if it is not Typeform's JSON."""
    try:
        return WebhookDelivery.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"delivery is not a Typeform webhook body: {exc}") from None


def parse_form_response(delivery: WebhookDelivery) -> WebhookResponse:
    """The ``form_response`` of a delivery; ``ValueError`` if it is missing or malformed."""
    if delivery.form_response is None:
        raise ValueError(f"{delivery.event_type} delivery without form_response")
    try:
        return WebhookResponse.model_validate(delivery.form_response)
    except ValidationError as exc:
        raise ValueError(f"form_response does not parse: {exc}") from None
