"""The synthetic tool's side: deterministic data served as pages of JSON, like a remote API.

``SyntheticApi`` generates contacts, orders and survey answers as a pure function of
``SyntheticSettings`` (nothing is held beyond the page being built) and answers one page
request at a time: the records of a stream with ``updated_at >= updated_since`` in
``updated_at`` order, ``page_size`` from an ``offset``. The rows are in the hub's own
record shape (``external_id``, ``placed_at`` ...), so the connector's whole work is to
parse and validate them.

The same pages are served in-process (tests) or over HTTP by ``create_app``, an ASGI app
a benchmark runs in its own process, so that generating the data is not charged to the
hub, as with a real tool::

    GET /{contacts|orders|survey_responses}?offset=N[&updated_since=ISO]
    200, a JSON array; X-Cursor: updated_at of the last row; X-Next-Offset when more follow
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs

from pydantic import Field

from clm_hub.connectors.base import ConnectorSettings
from clm_hub.records import OrderStatus

__all__ = ["EPOCH", "ApiPage", "ApiStream", "SyntheticApi", "SyntheticSettings", "create_app"]

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
_PAID, _REFUNDED, _CANCELLED = (
    OrderStatus.PAID.value, OrderStatus.REFUNDED.value, OrderStatus.CANCELLED.value,
)  # fmt: skip
Row = dict[str, object]
ApiStream = Literal["contacts", "orders", "survey_responses"]


class SyntheticSettings(ConnectorSettings):
    """What to generate. Emails are ``person<i>@example.com`` for every source, so two
    synthetic connectors with overlapping ``first_person`` ranges share people.

    With ``base_url`` set the connector fetches the pages over HTTP from ``create_app``
    serving the same settings; without it, it asks ``SyntheticApi`` in-process."""

    seed: int = 1
    contacts: int = Field(default=100, ge=0)
    orders: int = Field(default=300, ge=0)
    survey_responses: int = Field(default=0, ge=0)
    first_person: int = Field(default=0, ge=0)
    id_prefix: str = "s"
    page_size: int = Field(default=100, ge=1)
    bad_every: int = Field(default=0, ge=0)
    """Every n-th generated row is malformed (0: none), to exercise rejection."""
    edit_round: int = Field(default=0, ge=0)
    """Each round changes a tenth of the contacts and orders, later in time."""
    fail_after_pages: int | None = None
    """Raise an upstream error after this many pages of each stream (a tool going down)."""
    page_delay: float = 0.0
    """Seconds to wait before each page (a slow tool)."""


def _h(*values: int) -> int:
    """A cheap deterministic hash of integers (no global random state)."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = ((x ^ v) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x


@dataclass(frozen=True)
class ApiPage:
    """One answer of the API: the JSON body and where the stream goes on."""

    body: bytes
    cursor: datetime | None
    """``updated_at`` of the page's last row: where a later pull may resume."""
    next_offset: int | None
    """The offset of the next page of this pull; ``None`` after the last one."""


class SyntheticApi:
    """Pages of generated records, sorted by ``updated_at``, honouring ``updated_since``."""

    def __init__(self, settings: SyntheticSettings) -> None:
        self.settings = settings
        self._orders: dict[tuple[ApiStream, datetime | None], Sequence[int]] = {}

    def page(self, stream: ApiStream, updated_since: datetime | None, offset: int) -> ApiPage:
        """The page of ``stream`` starting at ``offset`` among the rows due since then."""
        s = self.settings
        make, stamp_of = self._stream(stream)
        order = self._order(stream, updated_since, stamp_of)
        indices = order[offset : offset + s.page_size]
        rows = [make(i) for i in indices]
        end = offset + len(indices)
        return ApiPage(
            body=json.dumps(rows, separators=(",", ":")).encode(),
            cursor=stamp_of(indices[-1]) if len(indices) else None,
            next_offset=end if end < len(order) else None,
        )

    def _stream(self, stream: ApiStream) -> tuple[Callable[[int], Row], Callable[[int], datetime]]:
        s = self.settings
        if stream == "contacts":
            return self._contact, lambda i: self._stamp(1, i, s.contacts)
        if stream == "orders":
            return self._order_row, lambda j: self._stamp(2, j, s.orders)
        return self._response, lambda k: EPOCH + timedelta(hours=k)

    def _count(self, stream: ApiStream) -> int:
        s = self.settings
        return {"contacts": s.contacts, "orders": s.orders}.get(stream, s.survey_responses)

    def _order(
        self, stream: ApiStream, since: datetime | None, stamp_of: Callable[[int], datetime]
    ) -> Sequence[int]:
        count = self._count(stream)
        if self.settings.edit_round == 0 or stream == "survey_responses":
            # Stamps grow with the index: no sort, and memory stays flat at any size.
            first = 0 if since is None else bisect_left(range(count), since, key=stamp_of)
            return range(first, count)
        key = (stream, since)
        if key not in self._orders:  # edited rows move: sort once per pull, not per page
            order = sorted(range(count), key=lambda i: (stamp_of(i), i))
            if since is not None:
                order = [i for i in order if stamp_of(i) >= since]
            self._orders = {key: order}
        return self._orders[key]

    def _edited(self, kind: int, i: int) -> int:
        """How many edit rounds touched row ``i`` (0 when untouched)."""
        s = self.settings
        if not s.edit_round:
            return 0
        return sum(1 for r in range(1, s.edit_round + 1) if _h(s.seed, kind, i, r) % 10 == 0)

    def _stamp(self, kind: int, i: int, total: int) -> datetime:
        rounds = self._edited(kind, i)
        base = EPOCH + timedelta(seconds=i * 600 // (total // 1000 + 1))
        return base + timedelta(days=400 * rounds) if rounds else base

    def _contact(self, i: int) -> Row:
        s = self.settings
        person = s.first_person + i
        edits = self._edited(1, i)
        h = _h(s.seed, 1, person)
        row: Row = {
            "external_id": f"{s.id_prefix}c{person}",
            "email": f"  Person{person}@Example.com "
            if h % 3 == 0
            else f"person{person}@example.com",
            "phone": f"+1 415 555 {person % 10000:04d}" if h % 5 == 0 else None,
            "first_name": f"First{person}" + (f" v{edits}" if edits else ""),
            "last_name": f"Last{person}",
            "created_at": (EPOCH - timedelta(days=h % 700)).isoformat(),
            "updated_at": self._stamp(1, i, s.contacts).isoformat(),
        }
        if s.bad_every and (i + 1) % s.bad_every == 0:
            row["updated_at"] = "not a timestamp"
        return row

    def _order_row(self, j: int) -> Row:
        s = self.settings
        h = _h(s.seed, 2, j)
        customer = s.first_person + (h % max(1, s.contacts))
        status = _PAID
        if h % 20 == 0:
            status = _REFUNDED
        elif h % 33 == 0:
            status = _CANCELLED
        row: Row = {
            "external_id": f"{s.id_prefix}o{j}",
            "customer_external_id": f"{s.id_prefix}c{customer}",
            "email": f"person{customer}@example.com",
            "placed_at": (EPOCH + timedelta(minutes=j * 7 % 500_000)).isoformat(),
            "updated_at": self._stamp(2, j, s.orders).isoformat(),
            "total": f"{(h >> 8) % 20000 / 100 + 1 + self._edited(2, j):.2f}",
            "currency": "USD",
            "status": status,
        }
        if s.bad_every and (j + 1) % s.bad_every == 0:
            row["total"] = "-5"
        return row

    def _response(self, k: int) -> Row:
        s = self.settings
        h = _h(s.seed, 3, k)
        customer = s.first_person + (h % max(1, s.contacts))
        return {
            "external_id": f"{s.id_prefix}r{k}",
            "customer_external_id": f"{s.id_prefix}c{customer}",
            "score": h % 11,
            "answered_at": (EPOCH + timedelta(hours=k)).isoformat(),
        }


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_STREAMS: dict[str, ApiStream] = {
    "/contacts": "contacts",
    "/orders": "orders",
    "/survey_responses": "survey_responses",
}


def create_app(settings: SyntheticSettings) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The API over HTTP: a plain ASGI app (no framework: it serves benchmarks)."""
    api = SyntheticApi(settings)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        stream = _STREAMS.get(scope["path"])
        if stream is None:
            await _respond(send, 404, b'{"error":"not found"}', {})
            return
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
        try:
            offset = int(query.get("offset", "0"))
            since = query.get("updated_since")
            moment = datetime.fromisoformat(since) if since else None
        except ValueError:
            await _respond(send, 400, b'{"error":"bad offset or updated_since"}', {})
            return
        page_number = offset // settings.page_size
        if settings.fail_after_pages is not None and page_number >= settings.fail_after_pages:
            await _respond(send, 503, b'{"error":"synthetic outage"}', {})
            return
        page = api.page(stream, moment, offset)
        headers = {}
        if page.cursor is not None:
            headers["x-cursor"] = page.cursor.isoformat()
        if page.next_offset is not None:
            headers["x-next-offset"] = str(page.next_offset)
        await _respond(send, 200, page.body, headers)

    return app


async def _respond(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
