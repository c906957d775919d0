"""The daemon's HTTP endpoints (an ASGI app served in the daemon's own event loop).

- ``GET /healthz``: the process is alive and its event loop answers (always 200).
- ``GET /readyz``: 200 when the store answers, the scheduler takes work and every
  connector's last cycle is recent enough; 503 with the failing checks otherwise.
- ``GET /metrics``: Prometheus text format.
- ``POST /webhooks/{connector}``: a tool's webhook delivery, verified by its plugin.

The app holds no state of its own: everything comes from the ``DaemonView`` it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clm_hub.connectors.base import WebhookRequest
from clm_hub.dashboard import dashboard_routes
from clm_hub.metrics import CONTENT_TYPE
from clm_hub.records import now_utc
from clm_hub.webhooks import WebhookReply

__all__ = ["Check", "DaemonView", "Readiness", "create_app"]


@dataclass(frozen=True)
class Check:
    """One readiness condition."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks)

    def body(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks},
        }


class DaemonView(Protocol):
    """What the endpoints need from the daemon."""

    async def readiness(self) -> Readiness: ...

    async def metrics_text(self) -> bytes: ...

    async def webhook(self, connector_id: str, request: WebhookRequest) -> WebhookReply: ...

    @property
    def engine(self) -> Engine:
        """The store (the dashboard reads it)."""
        ...


def create_app(
    daemon: DaemonView,
    *,
    max_body: int,
    now: Callable[[], datetime] = now_utc,
) -> Starlette:
    """The Starlette app serving ``daemon``."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        readiness = await daemon.readiness()
        return JSONResponse(readiness.body(), status_code=200 if readiness.ready else 503)

    async def metrics(request: Request) -> Response:
        return Response(await daemon.metrics_text(), media_type=CONTENT_TYPE)

    async def webhook(request: Request) -> Response:
        connector_id = request.path_params["connector"]
        body = await _read_body(request, max_body)
        if body is None:
            return JSONResponse(
                {"status": "too_large", "message": f"the body exceeds {max_body} bytes"},
                status_code=413,
            )
        delivery = WebhookRequest(
            method=request.method,
            url=str(request.url),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            received_at=now(),
        )
        reply = await daemon.webhook(connector_id, delivery)
        return JSONResponse(reply.body(), status_code=reply.status_code)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/webhooks/{connector}", webhook, methods=["POST"]),
            *dashboard_routes(daemon.engine, now=now),
        ]
    )


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or ``None`` once it is longer than ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
