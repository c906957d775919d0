"""Hookbox: a tiny tag tool that also sends signed webhooks, with its simulator.

Self-contained on purpose (only the public plugin API): daemon tests copy this file into
a ``plugins_dir`` so the daemon process loads the connector, while the test process runs
the simulator and signs deliveries with the same code.

Signature: ``X-Hookbox-Signature`` is hex HMAC-SHA256(webhook secret, timestamp + "." +
body), ``X-Hookbox-Timestamp`` the epoch seconds it was sent, ``X-Hookbox-Event-Id`` the
event's id. Deliveries older than ``webhook_max_age_s`` are refused as replays.

``GET /v1/contacts?updated_since=ISO`` lists the contacts modified at or after that time;
the connector resumes from the newest ``updated_at`` it saw. An optional ``daily_limit``
gives the connector a daily API budget, as some tools have.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clm_hub import (
    Capability,
    Connector,
    ConnectorSettings,
    ContactRecord,
    Page,
    PushChange,
    PushOutcome,
    PushStatus,
    RegisterConnector,
    StreamCursor,
    WebhookEvent,
    WebhookRequest,
    hookimpl,
    parse_page,
)
from clm_hub.connectors import (
    Composite,
    DailyBudget,
    HttpOptions,
    RateLimiter,
    RetryPolicy,
    SlidingWindow,
)
from clm_hub.errors import AuthError, MalformedResponse

MAX_BATCH = 10


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def delivery(
    secret: str, event_id: str, contact: dict[str, Any], *, timestamp: int | None = None
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a signed ``contact.updated`` delivery."""
    body = json.dumps({"type": "contact.updated", "contact": contact}).encode()
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json",
        "X-Hookbox-Event-Id": event_id,
        "X-Hookbox-Timestamp": str(stamp),
        "X-Hookbox-Signature": sign(secret, stamp, body),
    }
    return headers, body


@dataclass
class HookboxState:
    """The tool's data, as a test seeds and inspects it (the simulator runs in a thread)."""

    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    applied: Counter[str] = field(default_factory=Counter)
    """Contact id -> how many tag updates the tool applied to it."""
    write_calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self, cid: str, email: str, first_name: str = "", *, updated_at: datetime | None = None
    ) -> None:
        stamp = updated_at or datetime(2026, 1, 1, tzinfo=UTC)
        with self.lock:
            self.contacts[cid] = {
                "id": cid, "email": email, "first_name": first_name, "tags": [],
                "updated_at": stamp.isoformat(),
            }  # fmt: skip

    def owned_tags(self, cid: str, prefix: str = "clm") -> list[str]:
        with self.lock:
            return sorted(t for t in self.contacts[cid]["tags"] if t.startswith(f"{prefix}:"))


def create_app(state: HookboxState) -> Starlette:
    async def list_contacts(request: Request) -> JSONResponse:
        since = request.query_params.get("updated_since")
        floor = datetime.fromisoformat(since) if since else None
        with state.lock:
            rows = [
                dict(c)
                for c in state.contacts.values()
                if floor is None or datetime.fromisoformat(c["updated_at"]) >= floor
            ]
        return JSONResponse({"contacts": rows})

    async def update_tags(request: Request) -> JSONResponse:
        updates = (await request.json())["updates"]
        if len(updates) > MAX_BATCH:
            return JSONResponse({"error": f"at most {MAX_BATCH} updates"}, status_code=400)
        results = []
        with state.lock:
            state.write_calls += 1
            for u in updates:
                contact = state.contacts.get(u["id"])
                if contact is None:
                    results.append({"id": u["id"], "status": "error", "message": "no such id"})
                    continue
                tags = [t for t in contact["tags"] if t not in u["remove"]]
                contact["tags"] = tags + [t for t in u["add"] if t not in tags]
                state.applied[u["id"]] += 1
                results.append({"id": u["id"], "status": "ok"})
        return JSONResponse({"results": results})

    return Starlette(
        routes=[
            Route("/v1/contacts", list_contacts),
            Route("/v1/contacts/tags", update_tags, methods=["POST"]),
        ]
    )


class HookboxSettings(ConnectorSettings):
    api_key: SecretStr
    webhook_secret: SecretStr | None = None
    webhook_max_age_s: float = 300.0
    limit: int = 1000
    window: float = 1.0
    daily_limit: int | None = None
    """API calls allowed per day (then ``BudgetExhausted``); unset: no daily budget."""


def _contact(row: dict[str, Any]) -> ContactRecord:
    return ContactRecord(
        external_id=row["id"],
        email=row["email"],
        first_name=row.get("first_name") or None,
        tags=tuple(row.get("tags", ())),
        updated_at=datetime.fromisoformat(row["updated_at"]),
    )


class Hookbox(Connector[HookboxSettings]):
    """Contacts in, tags out, and signed ``contact.updated`` webhooks."""

    name = "hookbox"
    settings_model = HookboxSettings
    default_base_url = "http://hookbox.test"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CONTACTS, Capability.TAG_PUSH, Capability.WEBHOOKS}
    )
    max_push_batch = MAX_BATCH

    @classmethod
    def http_options(cls, settings: HookboxSettings) -> HttpOptions:
        return HttpOptions(
            base_url=settings.base_url or cls.default_base_url,
            headers={"Authorization": f"Bearer {settings.api_key.get_secret_value()}"},
            limiter=_limiter(settings),
            retry=RetryPolicy(attempts=3, initial_wait=0.01, max_wait=1.0, jitter=0.0),
        )

    async def pull_contacts(self, since: StreamCursor | None) -> AsyncIterator[Page[ContactRecord]]:
        floor = since.updated_since if since is not None else None
        params = {"updated_since": floor.isoformat()} if floor is not None else {}
        body = await self.http.json("GET", "/v1/contacts", params=params)
        page = parse_page(body["contacts"], _contact, external_id=lambda row: row.get("id"))
        newest = max((r.updated_at for r in page.records if r.updated_at), default=floor)
        cursor = StreamCursor(updated_since=newest) if newest is not None else None
        yield page.model_copy(update={"cursor": cursor})

    async def push(self, changes: Sequence[PushChange]) -> Sequence[PushOutcome]:
        updates = [
            {"id": c.external_id, "add": sorted(c.add_tags), "remove": sorted(c.remove_tags)}
            for c in changes
        ]
        body = await self.http.json("POST", "/v1/contacts/tags", json={"updates": updates})
        return [
            PushOutcome(
                external_id=r["id"],
                status=PushStatus.OK if r["status"] == "ok" else PushStatus.FAILED,
                reason=r.get("message"),
            )
            for r in body["results"]
        ]

    async def parse_webhook(self, request: WebhookRequest) -> WebhookEvent:
        secret = self.settings.webhook_secret
        if secret is None:
            raise AuthError(self.connector_id, "no webhook_secret configured", status_code=401)
        stamp = request.headers.get("x-hookbox-timestamp", "")
        signature = request.headers.get("x-hookbox-signature", "")
        if not stamp.isdigit():
            raise AuthError(self.connector_id, "missing X-Hookbox-Timestamp", status_code=401)
        expected = sign(secret.get_secret_value(), int(stamp), request.body)
        if not hmac.compare_digest(expected, signature):
            raise AuthError(self.connector_id, "signature does not match", status_code=401)
        age = request.received_at.timestamp() - int(stamp)
        if age > self.settings.webhook_max_age_s:
            raise AuthError(self.connector_id, f"delivery is {age:.0f} s old", status_code=401)
        try:
            payload = json.loads(request.body)
            contact = _contact(payload["contact"])
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedResponse(self.connector_id, f"bad body: {exc}") from None
        return WebhookEvent(
            event_id=request.headers.get("x-hookbox-event-id", ""), contacts=[contact]
        )


def _limiter(settings: HookboxSettings) -> RateLimiter:
    window = SlidingWindow(settings.limit, settings.window)
    if settings.daily_limit is None:
        return window
    return Composite(window, DailyBudget("hookbox", settings.daily_limit))


def ago(**delta: float) -> datetime:
    """A moment that long before now (UTC)."""
    return datetime.now(UTC) - timedelta(**delta)


@hookimpl
def register_connectors(register: RegisterConnector) -> None:
    register(Hookbox)
