"""The Shopify connector: customers and orders in, customer tags out, over Admin GraphQL.

Reads are incremental on ``updated_at`` (sorted by ``UPDATED_AT``, Relay cursors), or a bulk
operation for the first full sync of a large shop (``bulk.py``). Writes are ``tagsAdd`` /
``tagsRemove`` on exactly the tags the hub gives, batched as aliased mutations
(``push.py``). Every request goes through ``transport.py``, which paces it on Shopify's
query-cost bucket and turns GraphQL errors into the hub's error types.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Generic, TypeVar

import httpx
from pydantic import ValidationError

from clm_hub import (
    Capability,
    Connector,
    ContactRecord,
    OrderRecord,
    Page,
    PushChange,
    PushOutcome,
    PushStatus,
    StreamCursor,
    WebhookEvent,
    WebhookRequest,
    parse_page,
)
from clm_hub.connectors import Clock, Fetched, HttpClient, HttpOptions, TokenBucket, paginate
from clm_hub.errors import AuthError, ConnectorError, MalformedResponse

from . import documents as docs
from .bulk import BulkRunner
from .documents import Document
from .push import batches, erase_outcome, plan_tags, tag_outcome
from .settings import ShopifySettings
from .transport import GraphQLTransport, ShopifyAccessToken, api_base_url
from .vendor import (
    Connection,
    Count,
    JsonObject,
    contact_from_node,
    customer_gid,
    legacy_id,
    order_from_node,
)
from .webhooks import parse_delivery

__all__ = ["Shopify", "updated_filter"]

RecT = TypeVar("RecT", ContactRecord, OrderRecord)

BULK_PAGE_ROWS = 1000
"""Records per page yielded while reading a bulk operation's JSONL result."""


@dataclass(frozen=True)
class _Stream(Generic[RecT]):
    name: str
    root: str
    kind: str
    document: Document
    count: Document
    fields: str
    convert: Callable[[JsonObject], RecT]


CONTACTS = _Stream(
    "contacts",
    "customers",
    "Customer",
    docs.CUSTOMERS,
    docs.CUSTOMERS_COUNT,
    docs.CUSTOMER_FIELDS,
    contact_from_node,
)
ORDERS = _Stream(
    "orders", "orders", "Order", docs.ORDERS, docs.ORDERS_COUNT, docs.ORDER_FIELDS, order_from_node
)


def updated_filter(since: datetime) -> str:
    """The search filter of an incremental read (inclusive; seconds are Shopify's precision)."""
    return f"updated_at:>='{since.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}'"


def _encode_token(scan_from: datetime | None, after: str) -> str:
    # Shopify cursors are bound to the query they came from, so the resume token carries
    # the filter's start time along with the cursor.
    start = None if scan_from is None else scan_from.astimezone(UTC).isoformat()
    return json.dumps({"from": start, "after": after}, separators=(",", ":"))


def _decode_token(token: str) -> tuple[datetime | None, str] | None:
    try:
        raw = json.loads(token)
        after, start = raw["after"], raw["from"]
        if not isinstance(after, str) or not (start is None or isinstance(start, str)):
            return None
        return (None if start is None else datetime.fromisoformat(start)), after
    except (ValueError, KeyError, TypeError):
        return None


def _row_id(kind: str) -> Callable[[JsonObject], str | None]:
    def external_id(row: JsonObject) -> str | None:
        gid = row.get("id")
        if not isinstance(gid, str):
            return None
        try:
            return legacy_id(gid, kind)
        except ValueError:
            return gid

    return external_id


def _describe(row: JsonObject) -> str:
    return json.dumps(row, default=str, separators=(",", ":"))


def _newest(records: Sequence[RecT], start: datetime | None) -> datetime | None:
    """The latest ``updated_at`` among ``records`` and ``start``."""
    newest = start
    for record in records:
        if record.updated_at and (newest is None or record.updated_at > newest):
            newest = record.updated_at
    return newest


class Shopify(Connector[ShopifySettings]):
    """Shopify: customers and orders in (paged or bulk), stage tags out, webhooks, erasure."""

    name = "shopify"
    version = "1.0.0"
    settings_model = ShopifySettings
    default_base_url = "https://{shop}/admin/api/{api_version}"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.CONTACTS,
            Capability.ORDERS,
            Capability.TAG_PUSH,
            Capability.WEBHOOKS,
            Capability.ERASE,
        }
    )
    max_push_batch = docs.MAX_QUERY_COST // (2 * docs.MUTATION_COST)
    """50 changes: each may need a tagsAdd and a tagsRemove, and one document may cost 1000."""
    reports_tags = True

    def __init__(
        self, settings: ShopifySettings, http: HttpClient, *, connector_id: str | None = None
    ) -> None:
        super().__init__(settings, http, connector_id=connector_id)
        self.graphql = GraphQLTransport(http, settings, self.connector_id, self.log)
        self._node_cost: dict[str, float] = {}

    @classmethod
    def http_options(cls, settings: ShopifySettings, *, clock: Clock | None = None) -> HttpOptions:
        """The Admin API base URL, token auth and the query-cost bucket."""
        base = api_base_url(settings)
        return HttpOptions(
            base_url=base,
            headers={"Accept": "application/json"},
            auth=ShopifyAccessToken(settings.access_token.get_secret_value(), base),
            limiter=TokenBucket(
                settings.bucket_size,
                settings.restore_rate,
                headroom=settings.headroom,
                clock=clock,
            ),
            timeout=httpx.Timeout(
                settings.request_timeout_s, connect=min(10.0, settings.request_timeout_s)
            ),
        )

    async def check(self) -> None:
        """One cheap authenticated query (the shop's name)."""
        answer = await self.graphql.execute(docs.CHECK, {})
        self.graphql.require_clean(answer, docs.CHECK)

    # -- pulls ---------------------------------------------------------------------------

    async def pull_contacts(self, since: StreamCursor | None) -> AsyncIterator[Page[ContactRecord]]:
        """Customers changed since the cursor, oldest change first."""
        async for page in self._pull(CONTACTS, since):
            yield page

    async def pull_orders(self, since: StreamCursor | None) -> AsyncIterator[Page[OrderRecord]]:
        """Orders changed since the cursor, oldest change first (test orders skipped)."""
        async for page in self._pull(ORDERS, since):
            yield page

    async def _pull(
        self, stream: _Stream[RecT], since: StreamCursor | None
    ) -> AsyncIterator[Page[RecT]]:
        if since is None and await self._use_bulk(stream):
            async for page in self._bulk(stream):
                yield page
            return
        async for page in self._paged(stream, since):
            yield page

    def _keep(self, stream: _Stream[RecT], row: JsonObject) -> bool:
        if stream is not ORDERS or self.settings.include_test_orders:
            return True
        return row.get("test") is not True

    def _first(self, stream: _Stream[RecT]) -> int:
        """Page size that keeps one query within the bucket and Shopify's per-query maximum."""
        node_cost = self._node_cost.get(stream.document.name, 1.0)
        fits = math.floor((self.graphql.budget() - 2.0) / node_cost)
        return max(1, min(self.settings.page_size, fits))

    async def _paged(
        self, stream: _Stream[RecT], since: StreamCursor | None
    ) -> AsyncIterator[Page[RecT]]:
        scan_from = since.updated_since if since else None
        after: str | None = None
        if since is not None and since.token:
            resumed = _decode_token(since.token)
            if resumed is not None:
                scan_from, after = resumed
        query = None if scan_from is None else updated_filter(scan_from)
        newest = since.updated_since if since else None

        async def fetch(token: str | None) -> Fetched[list[dict[str, object]], str]:
            first = self._first(stream)
            node_cost = self._node_cost.get(stream.document.name, 1.0)
            answer = await self.graphql.execute(
                stream.document,
                {"first": first, "after": token, "query": query},
                cost=2.0 + first * node_cost,
            )
            self.graphql.require_clean(answer, stream.document)
            if answer.requested_cost:
                # Learn what Shopify charges per node, so later pages fit the bucket.
                self._node_cost[stream.document.name] = max(
                    0.1, (answer.requested_cost - 2.0) / first
                )
            try:
                connection = Connection.model_validate(answer.data.get(stream.root))
            except ValidationError:
                raise MalformedResponse(
                    self.connector_id, f"{stream.document.name}: no {stream.root} connection"
                ) from None
            info = connection.page_info
            if info.has_next_page and not info.end_cursor:
                raise MalformedResponse(
                    self.connector_id, f"{stream.document.name}: hasNextPage without endCursor"
                )
            return Fetched(connection.nodes, info.end_cursor if info.has_next_page else None)

        async for fetched in paginate(fetch, connector=self.connector_id, start=after):
            rows = [row for row in fetched.items if self._keep(stream, row)]
            page = parse_page(
                rows, stream.convert, external_id=_row_id(stream.kind), describe=_describe
            )
            newest = _newest(page.records, newest)
            token = _encode_token(scan_from, fetched.next_token) if fetched.next_token else None
            cursor = None
            if newest is not None or token is not None:
                cursor = StreamCursor(updated_since=newest, token=token)
            yield page.model_copy(update={"cursor": cursor})

    # -- bulk operations -----------------------------------------------------------------

    async def _use_bulk(self, stream: _Stream[RecT]) -> bool:
        mode = self.settings.bulk_first_sync
        if mode != "auto":
            return mode == "always"
        answer = await self.graphql.execute(stream.count, {"limit": self.settings.bulk_threshold})
        self.graphql.require_clean(answer, stream.count)
        raw = answer.data.get(f"{stream.root}Count")
        if raw is None:
            return False
        count = Count.model_validate(raw)
        return count.count >= self.settings.bulk_threshold or count.precision == "AT_LEAST"

    async def _bulk(self, stream: _Stream[RecT]) -> AsyncIterator[Page[RecT]]:
        runner = BulkRunner(self.graphql, self.log)
        finished = await runner.run(stream.root, stream.fields)
        if finished is None:
            self.log.warning("shopify.bulk_fallback_to_paging", stream=stream.name)
            async for page in self._paged(stream, None):
                yield page
            return
        newest: datetime | None = None
        rows: list[JsonObject] = []

        def cut() -> Page[RecT]:
            nonlocal newest, rows
            page = parse_page(
                rows, stream.convert, external_id=_row_id(stream.kind), describe=_describe
            )
            newest = _newest(page.records, newest)
            rows = []
            return page

        if finished.url:
            async for row in runner.rows(finished.url):
                if self._keep(stream, row):
                    rows.append(row)
                if len(rows) >= BULK_PAGE_ROWS:
                    yield cut()
        last = cut()
        # JSONL rows come in no particular order, so only the last page carries a cursor, and
        # it never points past the operation's start: changes made while it ran are re-read.
        started = finished.created_at
        resume = newest if started is None or newest is None else min(newest, started)
        resume = resume or started
        self.log.info("shopify.bulk_finished", stream=stream.name, objects=finished.object_count)
        cursor = None if resume is None else StreamCursor(updated_since=resume)
        yield last.model_copy(update={"cursor": cursor})

    # -- push and erase ------------------------------------------------------------------

    def _mutations_per_request(self) -> int:
        fits = int(self.graphql.budget() // docs.MUTATION_COST)
        return max(2, min(self.settings.push_mutations_per_request, fits))

    async def push(self, changes: Sequence[PushChange]) -> Sequence[PushOutcome]:
        """Add and remove exactly the given tags on each customer; one outcome per change."""
        outcomes, planned = plan_tags(changes)
        groups = batches(planned, self._mutations_per_request())
        for number, group in enumerate(groups):
            document, variables = docs.push_document([m for p in group for m in p.mutations])
            try:
                answer = await self.graphql.execute(document, variables)
            except AuthError:
                raise
            except ConnectorError as exc:
                status = PushStatus.RETRY if exc.retriable else PushStatus.FAILED
                for item in group:
                    outcomes[item.index] = PushOutcome(
                        external_id=item.external_id, status=status, reason=str(exc)
                    )
                if exc.retriable:
                    # Shopify is down or throttling beyond the retries: stop here.
                    for later in groups[number + 1 :]:
                        for item in later:
                            outcomes[item.index] = PushOutcome(
                                external_id=item.external_id,
                                status=PushStatus.RETRY,
                                reason="not sent: an earlier batch could not reach Shopify",
                            )
                    break
                continue
            for item in group:
                outcomes[item.index] = tag_outcome(item, answer)
        return [outcomes[index] for index in range(len(changes))]

    async def erase(self, external_ids: Sequence[str]) -> Sequence[PushOutcome]:
        """Ask Shopify to erase each customer's personal data (customerRequestDataErasure)."""
        outcomes: dict[int, PushOutcome] = {}
        planned: list[tuple[int, str, str]] = []
        for index, external_id in enumerate(external_ids):
            try:
                planned.append((index, external_id, customer_gid(external_id)))
            except ValueError as exc:
                outcomes[index] = PushOutcome(
                    external_id=external_id, status=PushStatus.FAILED, reason=str(exc)
                )
        limit = self._mutations_per_request()
        for start in range(0, len(planned), limit):
            group = planned[start : start + limit]
            document, variables = docs.erase_document([(f"e{i}", gid) for i, _, gid in group])
            try:
                answer = await self.graphql.execute(document, variables)
            except AuthError:
                raise
            except ConnectorError as exc:
                status = PushStatus.RETRY if exc.retriable else PushStatus.FAILED
                for index, external_id, _ in group:
                    outcomes[index] = PushOutcome(
                        external_id=external_id, status=status, reason=str(exc)
                    )
                continue
            for index, external_id, _ in group:
                outcomes[index] = erase_outcome(external_id, f"e{index}", answer)
        return [outcomes[index] for index in range(len(external_ids))]

    # -- webhooks ------------------------------------------------------------------------

    async def parse_webhook(self, request: WebhookRequest) -> WebhookEvent:
        """Verify ``X-Shopify-Hmac-Sha256`` and turn the delivery into records."""
        return parse_delivery(self.settings, self.connector_id, request, self.log)
