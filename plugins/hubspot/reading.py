"""Reading contacts, deals and orders page by page, with cursors that resume exactly.

One stream may read several object types in turn (orders: deals, then commerce orders); the
cursor after each page carries the earliest safe ``updated_since`` over all of them and a
token naming the type being read and its state (``cursor.py``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import structlog

from clm_hub import ContactRecord, OrderRecord, Page, StreamCursor, parse_page
from clm_hub.connectors import Fetched, paginate

from .api import Api, chunks
from .cursor import (
    ReadState,
    StreamToken,
    advance,
    decode_token,
    list_params,
    row_marks,
    search_body,
)
from .mapping import (
    DEALS,
    ObjectKind,
    OrderRules,
    deal_to_order,
    order_to_order,
    row_id,
    to_contact,
)
from .vendor import AssociationBatch, JsonObject, ObjectPage, from_ms, to_ms

__all__ = ["Reader"]

RecordT = TypeVar("RecordT", ContactRecord, OrderRecord)
BuildPage = Callable[[ObjectKind, list[JsonObject], StreamCursor], Awaitable[Page[RecordT]]]


@dataclass(frozen=True)
class PageRead:
    """One page of rows, the read state after it, and whether another page follows."""

    rows: list[JsonObject]
    state: ReadState
    more: bool


class Reader:
    """Pulls one portal's objects: list scans for full syncs, keyset search otherwise."""

    def __init__(
        self,
        api: Api,
        *,
        page_size: int,
        search_page_size: int,
        index_lag: timedelta,
        rules: OrderRules,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self.api = api
        self.page_size = page_size
        self.search_page_size = search_page_size
        self.index_lag = index_lag
        self.rules = rules
        self.log = log

    async def pull(
        self, kinds: Sequence[ObjectKind], since: StreamCursor | None, build: BuildPage[RecordT]
    ) -> AsyncIterator[Page[RecordT]]:
        """Pages of ``kinds``, in turn, changed since ``since`` (everything when ``None``)."""
        since_ms = to_ms(since.updated_since) if since and since.updated_since else None
        token = decode_token(since.token) if since and since.token else None
        names = [kind.name for kind in kinds]
        if since and since.token and (token is None or token.source not in names):
            self.log.warning("hubspot.cursor.unreadable", action="restart from updated_since")
            token = None
        upper = to_ms(datetime.now(UTC) - self.index_lag)
        done: dict[str, int] = dict(token.done) if token else {}
        first = names.index(token.source) if token else 0
        for index in range(first, len(kinds)):
            kind = kinds[index]
            start = token.state if token is not None and index == first else fresh(since_ms, upper)
            fetch = self._fetcher(kind)
            async for fetched in paginate(fetch, connector=self.api.connector_id, start=start):
                read = fetched.items
                if not read.more:
                    done[kind.name] = read.state.final_ms()
                cursor = stream_cursor(kinds, index, read, done, since_ms=since_ms, upper=upper)
                yield await build(kind, read.rows, cursor)

    def _fetcher(
        self, kind: ObjectKind
    ) -> Callable[[ReadState | None], Awaitable[Fetched[PageRead, ReadState]]]:
        async def fetch(state: ReadState | None) -> Fetched[PageRead, ReadState]:
            assert state is not None  # paginate starts from the state it is given
            read = await self.read_page(kind, state)
            return Fetched(read, read.state if read.more else None)

        return fetch

    async def read_page(self, kind: ObjectKind, state: ReadState) -> PageRead:
        """Fetch the page ``state`` points at and work out the state after it."""
        if state.mode == "list":
            params = list_params(kind, state, limit=self.page_size)
            page = await self.api.call("GET", kind.path, ObjectPage, params=params)
        else:
            body = search_body(kind, state, limit=self.search_page_size)
            page = await self.api.call(
                "POST", f"{kind.path}/search", ObjectPage, json=body, search=True
            )
        after, more = advance(state, row_marks(kind, page.results), page.next_after)
        return PageRead(page.results, after, more)

    async def contacts_page(
        self, kind: ObjectKind, rows: list[JsonObject], cursor: StreamCursor
    ) -> Page[ContactRecord]:
        """Contact rows -> a page of records; malformed rows are rejected with a reason."""
        return parse_page(rows, to_contact, external_id=row_id, cursor=cursor, describe=describe)

    async def orders_page(
        self, kind: ObjectKind, rows: list[JsonObject], cursor: StreamCursor
    ) -> Page[OrderRecord]:
        """Deal or order rows -> a page of records linked to their contact."""
        ids = [ident for ident in (row_id(row) for row in rows) if ident]
        contacts = await self.associated_contacts(kind, ids)
        convert = deal_to_order if kind is DEALS else order_to_order
        return parse_page(
            rows,
            lambda row: convert(row, contacts=contacts, rules=self.rules),
            external_id=lambda row: kind.id_prefix + (row_id(row) or "?"),
            cursor=cursor,
            describe=describe,
        )

    async def associated_contacts(self, kind: ObjectKind, ids: Sequence[str]) -> dict[str, str]:
        """Deal/order id -> the id of one associated contact (the oldest, for stability),
        through the v4 associations batch read."""
        found: dict[str, str] = {}
        for chunk in chunks(list(dict.fromkeys(ids))):
            body = await self.api.call(
                "POST",
                f"/crm/v4/associations/{kind.name}/contacts/batch/read",
                AssociationBatch,
                json={"inputs": [{"id": ident} for ident in chunk]},
            )
            for row in body.results:
                targets = sorted((t.toObjectId for t in row.to), key=_numeric)
                if targets:
                    found[row.from_.id] = targets[0]
        return found


def fresh(since_ms: int | None, upper: int) -> ReadState:
    """The state a read starts from: a full list scan, or a search from ``since_ms``."""
    if since_ms is None:
        return ReadState(mode="list", upper_ms=upper)
    return ReadState(mode="search", upper_ms=upper, lower_ms=since_ms)


def stream_cursor(
    kinds: Sequence[ObjectKind],
    index: int,
    read: PageRead,
    done: Mapping[str, int],
    *,
    since_ms: int | None,
    upper: int,
) -> StreamCursor:
    """The cursor after a page: the earliest safe resume point over every object type of the
    stream, and the token to carry on exactly where this page ended."""
    marks: list[int | None] = [done[kind.name] for kind in kinds[:index] if kind.name in done]
    token: StreamToken | None = None
    if read.more:
        marks.append(read.state.progress_ms)
        token = StreamToken(source=kinds[index].name, state=read.state, done=dict(done))
    else:
        marks.append(done[kinds[index].name])
        if index + 1 < len(kinds):
            state = fresh(since_ms, upper)
            token = StreamToken(source=kinds[index + 1].name, state=state, done=dict(done))
    marks.extend(since_ms for _ in kinds[index + 1 :])
    known = [mark for mark in marks if mark is not None]
    updated = from_ms(min(known)) if known and len(known) == len(marks) else None
    return StreamCursor(updated_since=updated, token=token.encode() if token else None)


def describe(row: JsonObject) -> str:
    """A rejected row as stored for inspection."""
    return json.dumps(row, default=str, sort_keys=True)


def _numeric(ident: str) -> tuple[int, str]:
    return (int(ident), "") if ident.isdigit() else (0, ident)
