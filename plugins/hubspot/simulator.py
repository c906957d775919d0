"""A local imitation of the HubSpot CRM API, for tests, the demo and benchmarks.

``create_app(state, faults)`` serves a ``HubSpotState`` (see ``simstate.py``) with the
documented behaviour of hubspot.md: bearer auth and its 401 bodies, list endpoints paged by
``after``, CRM search (filter groups, sorts, 200 per page, the 10,000-result cap answering
400), batch read/update (100 inputs, 207 multi-status partial failures, whole-batch 400 for
a bad property or value), property and group creation (409 on duplicates), v4 association
batch reads, GDPR delete, OAuth token refresh, the 10-second, daily and search rate limits
with HubSpot's headers and 429 bodies, and faults from a ``clm_hub.sandbox.FaultPlan``.
The handlers live in ``simsearch.py`` and ``simhandlers.py``. ``signed_delivery`` builds
webhook deliveries signed the way HubSpot signs them (v3).

Run it with ``clm_hub.sandbox.serve(create_app(state))``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clm_hub import WebhookRequest
from clm_hub.sandbox import Fault, FaultPlan

from .simhandlers import (
    Call,
    Handler,
    HubSpotError,
    Json,
    associations_batch_read,
    batch_read,
    batch_update,
    create_group,
    create_property,
    gdpr_delete,
    property_endpoint,
    token,
)
from .simsearch import list_objects, search
from .simstate import HubSpotState, RecordedRequest
from .vendor import to_ms
from .webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_v3

__all__ = ["create_app", "signed_delivery", "webhook_event"]


# -- the app ----------------------------------------------------------------------------------

_INVALID_AUTH = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


def _authenticate(state: HubSpotState, header: str | None) -> tuple[bool, Response | None]:
    """(is OAuth, the 401 to send or ``None``)."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() == "bearer":
        if value in state.private_app_tokens:
            return False, None
        expires_at = state.access_tokens.get(value)
        if expires_at is not None:
            ago = time.monotonic() - expires_at
            if ago < 0:
                return True, None
            return True, _expired(int(ago))
    return False, JSONResponse(
        HubSpotError(401, _INVALID_AUTH, "INVALID_AUTHENTICATION").body, status_code=401
    )


def _expired(seconds_ago: int) -> Response:
    message = f"The OAuth token used to make this call expired {seconds_ago} second(s) ago."
    # The category for expired tokens is reported by third parties only (hubspot.md section 6).
    return JSONResponse(HubSpotError(401, message, "EXPIRED_AUTHENTICATION").body, status_code=401)


def _throttled(policy: str, headers: Mapping[str, str]) -> Response:
    body = {
        "status": "error",
        "message": f"You have reached your {policy.lower()} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
        "requestId": uuid.uuid4().hex,
    }
    if policy == "TEN_SECONDLY_ROLLING":
        headers = {**headers, "X-HubSpot-RateLimit-Remaining": "0"}
    return JSONResponse(body, status_code=429, headers=dict(headers) or None)


async def _fault_response(state: HubSpotState, fault: Fault, *, search: bool) -> Response:
    if fault is Fault.RATE_LIMIT:
        if search:
            return _throttled("SECONDLY", {})
        limits = state.rate_limits
        return _throttled(
            "TEN_SECONDLY_ROLLING",
            {
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(limits.burst_window_s * 1000)),
                "X-HubSpot-RateLimit-Max": str(limits.burst_limit),
            },
        )
    if fault is Fault.SERVER_ERROR:
        return Response(
            "<html><body>503 Service Unavailable</body></html>",
            status_code=503,
            media_type="text/html",
        )
    if fault is Fault.TIMEOUT:
        await asyncio.sleep(state.timeout_delay_s)
        return Response(status_code=504)
    if fault is Fault.MALFORMED:
        return Response(
            b'{"results": [{"id": "1", "properties": ',
            status_code=200,
            media_type="application/json",
        )
    return _expired(3)


def _endpoint(
    state: HubSpotState,
    faults: FaultPlan,
    handler: Handler,
    *,
    authenticated: bool = True,
    search: bool = False,
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        fault = faults.next_fault(path)
        if fault is not None:
            response = await _fault_response(state, fault, search=search)
        else:
            with state.lock:
                response = _answer(state, request, body, handler, authenticated, search)
        with state.lock:
            state.requests.append(
                RecordedRequest(request.method, path, request.url.query, body, response.status_code)
            )
        return response

    return endpoint


def _answer(
    state: HubSpotState,
    request: Request,
    body: bytes,
    handler: Handler,
    authenticated: bool,
    search: bool,
) -> Response:
    headers: Mapping[str, str] = {}
    if authenticated:
        oauth, refusal = _authenticate(state, request.headers.get("authorization"))
        if refusal is not None:
            return refusal
        admission = state.admit(search=search, oauth=oauth)
        if admission.policy is not None:
            return _throttled(admission.policy, admission.headers)
        headers = admission.headers
    base_url = f"{request.url.scheme}://{request.url.netloc}"
    call = Call(request.path_params, request.query_params, body, base_url)
    try:
        status, payload = handler(state, call)
    except HubSpotError as exc:
        status, payload = exc.status, exc.body
    if payload is None:
        return Response(status_code=status, headers=dict(headers))
    return JSONResponse(payload, status_code=status, headers=dict(headers))


def create_app(state: HubSpotState, faults: FaultPlan | None = None) -> Starlette:
    """The simulated HubSpot API over ``state``, failing as ``faults`` says."""
    plan = faults or FaultPlan()

    def route(path: str, handler: Handler, method: str, **options: bool) -> Route:
        endpoint = _endpoint(state, plan, handler, **options)
        return Route(path, endpoint, methods=[method])

    def get_property(s: HubSpotState, c: Call) -> tuple[int, Json]:
        return property_endpoint(s, c, "GET")

    def patch_property(s: HubSpotState, c: Call) -> tuple[int, Json]:
        return property_endpoint(s, c, "PATCH")

    objects = "/crm/v3/objects/{object_type}"
    properties = "/crm/v3/properties/{object_type}"
    return Starlette(
        routes=[
            route("/oauth/v1/token", token, "POST", authenticated=False),
            route(objects, list_objects, "GET"),
            route(f"{objects}/search", search, "POST", search=True),
            route(f"{objects}/batch/read", batch_read, "POST"),
            route(f"{objects}/batch/update", batch_update, "POST"),
            route("/crm/v3/objects/contacts/gdpr-delete", gdpr_delete, "POST"),
            route(f"{properties}/groups", create_group, "POST"),
            route(properties, create_property, "POST"),
            route(f"{properties}/{{name}}", get_property, "GET"),
            route(f"{properties}/{{name}}", patch_property, "PATCH"),
            route(
                "/crm/v4/associations/{from_type}/{to_type}/batch/read",
                associations_batch_read,
                "POST",
            ),
        ]
    )


# -- webhooks ---------------------------------------------------------------------------------


def webhook_event(
    object_id: str | int,
    *,
    event_id: int,
    subscription_type: str = "contact.propertyChange",
    property_name: str | None = None,
    property_value: str | None = None,
    occurred_at: datetime | None = None,
    portal_id: int = 1234567,
    app_id: int = 999,
    change_source: str = "CRM_UI",
) -> dict[str, Json]:
    """One event as HubSpot puts it in a delivery (ids only, no record data)."""
    event: dict[str, Json] = {
        "eventId": event_id,
        "subscriptionId": 77,
        "portalId": portal_id,
        "appId": app_id,
        "occurredAt": to_ms(occurred_at or datetime.now(UTC)),
        "subscriptionType": subscription_type,
        "attemptNumber": 0,
        "objectId": int(object_id),
        "changeSource": change_source,
    }
    if property_name is not None:
        event["propertyName"] = property_name
        event["propertyValue"] = property_value
    return event


def signed_delivery(
    events: Sequence[Mapping[str, Json]],
    *,
    url: str,
    client_secret: str,
    timestamp: datetime | None = None,
    received_at: datetime | None = None,
    method: str = "POST",
) -> WebhookRequest:
    """A webhook delivery signed with v3 as HubSpot sends it, as the hub receives it."""
    body = json.dumps(list(events), separators=(",", ":")).encode()
    sent = timestamp or datetime.now(UTC)
    stamp = to_ms(sent)
    signature = sign_v3(secret=client_secret, method=method, uri=url, body=body, timestamp_ms=stamp)
    return WebhookRequest(
        method=method,
        url=url,
        headers={
            "content-type": "application/json",
            SIGNATURE_HEADER: signature,
            TIMESTAMP_HEADER: str(stamp),
        },
        body=body,
        received_at=received_at or datetime.now(UTC),
    )
