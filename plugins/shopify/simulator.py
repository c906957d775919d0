"""A simulator of the Shopify Admin GraphQL API, for tests, the demo and benchmarks.

``create_app(state, faults)`` returns a Starlette app serving:

- ``POST /admin/api/{version}/graphql.json``: access-token auth (401 with Shopify's body),
  version fall-forward (``X-Shopify-API-Version`` says which version answered), and the
  query subset the connector uses (see ``sim_engine``): customers/orders connections with
  ``query:`` search syntax, ``sortKey`` and bound cursors, counts, ``shop``, ``tagsAdd`` /
  ``tagsRemove`` with ``userErrors``, bulk query operations, ``customerRequestDataErasure``,
  calculated query cost with the leaky bucket and ``THROTTLED`` errors;
- ``GET /_bulk/{id}.jsonl``: a bulk operation's JSONL result, behind a signed URL as on
  Shopify's storage (no access token needed, and none should be sent).

``ShopState`` holds the data; ``ShopState.delivery`` builds signed webhook deliveries.
Faults come from a ``clm_hub.sandbox.FaultPlan``: ``RATE_LIMIT`` drains the bucket (as
another app would) so the request is throttled, ``SERVER_ERROR`` answers 500/503,
``TIMEOUT`` holds the request, ``MALFORMED`` answers 200 with broken JSON,
``EXPIRED_TOKEN`` answers 401.

Run it with ``clm_hub.sandbox.serve(create_app(state))``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Iterable, Iterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from clm_hub.sandbox import Fault, FaultPlan

from .sim_engine import BadRequest, execute
from .sim_state import (
    SUPPORTED_VERSIONS,
    BulkRows,
    CostBucket,
    RequestLog,
    ShopState,
    SimBulkOperation,
    SimCustomer,
    SimOrder,
    WebhookDelivery,
)

__all__ = [
    "SUPPORTED_VERSIONS",
    "UNAUTHORIZED_BODY",
    "BulkRows",
    "CostBucket",
    "RequestLog",
    "ShopState",
    "SimBulkOperation",
    "SimCustomer",
    "SimOrder",
    "WebhookDelivery",
    "create_app",
]

UNAUTHORIZED_BODY = {
    "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
}
_VERSION = re.compile(r"^(\d{4}-\d{2}|unstable)$")


def _served_version(requested: str) -> str | None:
    """The version that answers: the requested one, else the oldest supported (fall-forward)."""
    if not _VERSION.match(requested):
        return None
    if requested == "unstable" or requested in SUPPORTED_VERSIONS:
        return requested
    return SUPPORTED_VERSIONS[0]


async def _hold(request: Request, seconds: float) -> None:
    """Keep a request open, as a hung upstream does, until the client gives up."""
    waited = 0.0
    while waited < seconds and not await request.is_disconnected():
        await asyncio.sleep(0.05)
        waited += 0.05


def _chunks(lines: Iterable[str], size: int = 500) -> Iterator[bytes]:
    """The JSONL file in chunks of ``size`` lines, rendered as the client reads them."""
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield "".join(f"{item}\n" for item in batch).encode("utf-8")
            batch.clear()
    if batch:
        yield "".join(f"{item}\n" for item in batch).encode("utf-8")


def create_app(state: ShopState, faults: FaultPlan | None = None) -> Starlette:
    """The ASGI app simulating ``state``'s shop; ``faults`` injects failures in order."""
    plan = faults or FaultPlan()
    server_errors = itertools.cycle((500, 503))

    async def graphql(request: Request) -> Response:
        fault = plan.next_fault(request.url.path)
        if fault is Fault.TIMEOUT:
            await _hold(request, state.timeout_hold_s)
            return JSONResponse({"errors": "Gateway Timeout"}, status_code=504)
        if fault is Fault.SERVER_ERROR:
            status = next(server_errors)
            message = "Internal Server Error" if status == 500 else "Service Unavailable"
            return JSONResponse({"errors": message}, status_code=status)
        if fault is Fault.EXPIRED_TOKEN:
            return JSONResponse(UNAUTHORIZED_BODY, status_code=401)
        token = request.headers.get("x-shopify-access-token")
        if token != state.access_token or state.token_revoked:
            return JSONResponse(UNAUTHORIZED_BODY, status_code=401)
        served = _served_version(request.path_params["version"])
        if served is None:
            return JSONResponse({"errors": "Not Found"}, status_code=404)
        if fault is Fault.MALFORMED:
            return Response(
                b'{"data":{"customers":{"pageInfo":',
                media_type="application/json",
                headers={"X-Shopify-API-Version": served},
            )
        if fault is Fault.RATE_LIMIT:
            with state.lock:
                state.bucket.drain()
        try:
            body = json.loads(await request.body())
            origin = str(request.base_url).rstrip("/")
            answer = execute(state, body, origin=origin, access_token=token)
        except (ValueError, BadRequest):
            return JSONResponse(
                {"errors": {"query": "Required parameter missing or invalid"}}, status_code=400
            )
        return JSONResponse(answer, headers={"X-Shopify-API-Version": served})

    async def bulk_result(request: Request) -> Response:
        if request.headers.get("x-shopify-access-token"):
            state.bulk_downloads_with_token += 1
        fault = plan.next_fault(request.url.path)
        if fault is Fault.SERVER_ERROR:
            return Response(b"backend error", status_code=503)
        with state.lock:
            op = state.bulk_operations.get(int(request.path_params["op"]))
            valid = (
                op is not None
                and op.status == "COMPLETED"
                and request.query_params.get("signature") == op.signature
            )
        if op is None or not valid:
            return Response(b"<Error><Code>AccessDenied</Code></Error>", status_code=403)
        return StreamingResponse(_chunks(op.lines), media_type="application/jsonl")

    async def not_found(request: Request) -> Response:
        return JSONResponse({"errors": "Not Found"}, status_code=404)

    return Starlette(
        routes=[
            Route("/admin/api/{version}/graphql.json", graphql, methods=["POST"]),
            Route("/_bulk/{op:int}.jsonl", bulk_result, methods=["GET"]),
            Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "DELETE"]),
        ]
    )
