"""Tagbox: a tiny tool with contacts that carry tags, its simulator and its connector.

The simulator behaves like the tools the hub writes to: batch tag updates with a size
limit, per-record errors in a 200 body, a whole batch refused (400) when one record is
invalid, and a sliding-window rate limit answered with 429 and ``Retry-After``. Tests
read its state to see exactly which tags every contact ends up with and how many write
calls were made.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    hookimpl,
    parse_page,
)
from clm_hub.connectors import HttpOptions, RetryPolicy, SlidingWindow

MAX_BATCH = 10


@dataclass
class TagboxState:
    """The tool's data, as a test seeds and inspects it."""

    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_ids: dict[str, str] = field(default_factory=dict)
    """Contact id -> error message the tool reports for it (in a 200 body)."""
    poison_ids: set[str] = field(default_factory=set)
    """Contacts that make the whole batch fail with 400."""
    limit: int = 1000
    window: float = 1.0
    write_calls: int = 0
    throttled: int = 0
    batches: list[list[str]] = field(default_factory=list)
    _stamps: deque[float] = field(default_factory=deque)

    def add(self, cid: str, email: str, tags: Sequence[str] = ()) -> None:
        self.contacts[cid] = {
            "id": cid, "email": email, "tags": list(tags),
            "updated_at": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
        }  # fmt: skip

    def tags(self, cid: str) -> list[str]:
        return sorted(self.contacts[cid]["tags"])


def create_app(state: TagboxState) -> Starlette:
    def limited() -> JSONResponse | None:
        now = time.monotonic()
        while state._stamps and state._stamps[0] <= now - state.window:
            state._stamps.popleft()
        if len(state._stamps) >= state.limit:
            state.throttled += 1
            wait = state._stamps[0] + state.window - now
            return JSONResponse(
                {"error": "rate limited"}, status_code=429, headers={"Retry-After": f"{wait:.3f}"}
            )
        state._stamps.append(now)
        return None

    async def list_contacts(request: Request) -> JSONResponse:
        return JSONResponse({"contacts": list(state.contacts.values())})

    async def update_tags(request: Request) -> JSONResponse:
        if (refused := limited()) is not None:
            return refused
        updates = (await request.json())["updates"]
        if len(updates) > MAX_BATCH:
            return JSONResponse({"error": f"at most {MAX_BATCH} updates"}, status_code=400)
        if any(u["id"] in state.poison_ids for u in updates):
            return JSONResponse({"error": "invalid contact in batch"}, status_code=400)
        state.write_calls += 1
        state.batches.append([u["id"] for u in updates])
        results = []
        for u in updates:
            if u["id"] in state.fail_ids or u["id"] not in state.contacts:
                message = state.fail_ids.get(u["id"], "no such contact")
                results.append({"id": u["id"], "status": "error", "message": message})
                continue
            contact = state.contacts[u["id"]]
            tags = [t for t in contact["tags"] if t not in u["remove"]]
            contact["tags"] = tags + [t for t in u["add"] if t not in tags]
            contact["updated_at"] = datetime.now(UTC).isoformat()
            results.append({"id": u["id"], "status": "ok"})
        return JSONResponse({"results": results})

    return Starlette(
        routes=[
            Route("/v1/contacts", list_contacts),
            Route("/v1/contacts/tags", update_tags, methods=["POST"]),
        ]
    )


class TagboxSettings(ConnectorSettings):
    api_key: SecretStr
    limit: int = 1000
    window: float = 1.0


class Tagbox(Connector[TagboxSettings]):
    name = "tagbox"
    settings_model = TagboxSettings
    default_base_url = "http://tagbox.test"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CONTACTS, Capability.TAG_PUSH}
    )
    max_push_batch = MAX_BATCH

    @classmethod
    def http_options(cls, settings: TagboxSettings) -> HttpOptions:
        return HttpOptions(
            base_url=settings.base_url or cls.default_base_url,
            headers={"Authorization": f"Bearer {settings.api_key.get_secret_value()}"},
            limiter=SlidingWindow(settings.limit, settings.window),
            retry=RetryPolicy(attempts=3, initial_wait=0.01, max_wait=2.0, jitter=0.0),
        )

    async def pull_contacts(self, since: StreamCursor | None) -> AsyncIterator[Page[ContactRecord]]:
        body = await self.http.json("GET", "/v1/contacts")
        yield parse_page(
            body["contacts"],
            lambda row: ContactRecord(
                external_id=row["id"],
                email=row["email"],
                tags=tuple(row["tags"]),
                updated_at=datetime.fromisoformat(row["updated_at"]),
            ),
            external_id=lambda row: row.get("id"),
        )

    async def push(self, changes: Sequence[PushChange]) -> Sequence[PushOutcome]:
        body = await self.http.json(
            "POST",
            "/v1/contacts/tags",
            json={
                "updates": [
                    {
                        "id": c.external_id,
                        "add": sorted(c.add_tags),
                        "remove": sorted(c.remove_tags),
                    }
                    for c in changes
                ]
            },
        )
        return [
            PushOutcome(
                external_id=r["id"],
                status=PushStatus.OK if r["status"] == "ok" else PushStatus.FAILED,
                reason=r.get("message"),
            )
            for r in body["results"]
        ]


@hookimpl
def register_connectors(register: RegisterConnector) -> None:
    register(Tagbox)
