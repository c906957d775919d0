"""The shop behind the simulator: customers, orders, bulk operations, the bucket.

Tests and the demo seed it, change it between syncs and inspect it afterwards (which tags a
customer has, how many requests were throttled, what the connector sent). Customers and
orders live in a SQLite file (``sim_store``), so the demo's shop of a million stays off the
heap; ``customers`` and ``orders`` read them as snapshots, and ``save`` writes one back.
Every method is safe to call from the test thread while the simulator serves from its own
thread.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, MutableSequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import httpx

from clm_hub import WebhookRequest
from clm_hub.connectors import Clock, SystemClock

from .sim_store import (
    PAGE,
    TAG_SEPARATOR,
    RecordTable,
    Row,
    ShopStore,
    epoch,
    instant,
    join_tags,
    split_tags,
)
from .webhooks import sign

__all__ = [
    "SUPPORTED_VERSIONS",
    "CostBucket",
    "RequestLog",
    "ShopState",
    "SimBulkOperation",
    "SimCustomer",
    "SimOrder",
    "WebhookDelivery",
]

SUPPORTED_VERSIONS = ("2025-10", "2026-01", "2026-04", "2026-07", "2026-10")
"""API versions the simulated shop serves; others fall forward to the oldest of these."""


def _seconds(value: datetime) -> datetime:
    """Shopify timestamps have second precision."""
    return value.astimezone(UTC).replace(microsecond=0)


_ZERO = Decimal(0)


@dataclass(slots=True, weakref_slot=True)
class SimCustomer:
    """A customer as the simulated shop stores it (a snapshot: ``ShopState.save`` writes
    changes back)."""

    id: int
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    email_marketing_state: str = "NOT_SUBSCRIBED"
    tags: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: _seconds(datetime.now(UTC)))
    updated_at: datetime = field(default_factory=lambda: _seconds(datetime.now(UTC)))
    state: str = "DISABLED"
    erasure_requested: bool = False

    @property
    def gid(self) -> str:
        return f"gid://shopify/Customer/{self.id}"


@dataclass(slots=True, weakref_slot=True)
class SimOrder:
    """An order as the simulated shop stores it (amounts in the shop's currency; a
    snapshot: ``ShopState.save`` writes changes back)."""

    id: int
    total: Decimal
    customer_id: int | None = None
    email: str | None = None
    currency: str = "EUR"
    financial_status: str | None = "PAID"
    created_at: datetime = field(default_factory=lambda: _seconds(datetime.now(UTC)))
    processed_at: datetime | None = None
    updated_at: datetime = field(default_factory=lambda: _seconds(datetime.now(UTC)))
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    refunded: Decimal = _ZERO
    test: bool = False
    tags: tuple[str, ...] = ()

    @property
    def gid(self) -> str:
        return f"gid://shopify/Order/{self.id}"

    @property
    def name(self) -> str:
        return f"#{self.id}"


@dataclass
class SimBulkOperation:
    """A bulk query: which rows it returns is fixed when it starts; it completes after polls.

    ``lines`` is any collection of JSONL lines; the engine gives a ``BulkRows`` that renders
    them on download, so a result over millions of records is never held in memory.
    """

    id: int
    query: str
    created_at: datetime
    lines: Collection[str]
    root_object_count: int
    status: str = "CREATED"
    error_code: str | None = None
    completed_at: datetime | None = None
    polls: int = 0
    fail_with: str | None = None
    signature: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    @property
    def gid(self) -> str:
        return f"gid://shopify/BulkOperation/{self.id}"


class BulkRows(Collection[str]):
    """A bulk result's JSONL lines, rendered from the current records when iterated.

    Each connection's rows are the records matching its query whose id is at most the
    newest id when the operation started: records created since are left out, and so are
    those deleted since (Shopify's bulk operations also read live data, not a snapshot).
    Nothing is copied at the start, which therefore stays quick at millions of records
    (copying 3.3 million order ids took longer than a client's 30 s timeout), and a result
    is never held in memory.
    """

    def __init__(self, store: ShopStore, lock: threading.RLock) -> None:
        self._store, self._lock = store, lock
        self._parts: list[_BulkPart] = []

    def add(self, table: str, where: str, params: tuple[object, ...],
            render: Callable[[list[int]], list[str]]) -> None:  # fmt: skip
        """Append one connection's rows: those of ``table`` matching ``where`` with ids up
        to the newest now, and how to render a page of them as lines."""
        with self._lock:
            (newest,) = self._store.db.execute(f"SELECT max(id) FROM {table}").fetchone()
        self._parts.append(_BulkPart(table, where, params, newest or 0, render))

    def __len__(self) -> int:
        total = 0
        with self._lock:
            for part in self._parts:
                (count,) = self._store.db.execute(
                    f"SELECT count(*) FROM {part.table} WHERE ({part.where}) AND id <= ?",
                    (*part.params, part.newest),
                ).fetchone()
                total += int(count)
        return total

    def __iter__(self) -> Iterator[str]:
        for part in self._parts:
            last = -(2**63)
            while True:
                with self._lock:
                    ids = [
                        ident
                        for (ident,) in self._store.db.execute(
                            f"SELECT id FROM {part.table} WHERE ({part.where}) AND id > ? "
                            "AND id <= ? ORDER BY id LIMIT ?",
                            (*part.params, last, part.newest, PAGE),
                        )
                    ]
                yield from part.render(ids)
                if len(ids) < PAGE:
                    break
                last = ids[-1]

    def __contains__(self, line: object) -> bool:
        return any(line == mine for mine in self)


@dataclass(frozen=True)
class _BulkPart:
    """One connection of a bulk query: which rows, up to which id, and how to render them."""

    table: str
    where: str
    params: tuple[object, ...]
    newest: int
    render: Callable[[list[int]], list[str]]


class CostBucket:
    """Shopify's leaky bucket of query-cost points for one app and shop."""

    def __init__(self, capacity: float, restore_rate: float, monotonic: Callable[[], float]):
        self.capacity = capacity
        self.restore_rate = restore_rate
        self._monotonic = monotonic
        self._available = capacity
        self._stamp = monotonic()

    @property
    def available(self) -> float:
        now = self._monotonic()
        self._available = min(
            self.capacity, self._available + (now - self._stamp) * self.restore_rate
        )
        self._stamp = now
        return self._available

    def take(self, cost: float) -> bool:
        """Reserve ``cost`` points if they are there."""
        if self.available < cost:
            return False
        self._available -= cost
        return True

    def refund(self, points: float) -> None:
        self._available = min(self.capacity, self.available + max(0.0, points))

    def drain(self) -> None:
        """Empty the bucket, as another app on the same shop would."""
        _ = self.available
        self._available = 0.0


@dataclass(frozen=True)
class RequestLog:
    """One GraphQL request the simulator answered."""

    operation: str | None
    query: str
    variables: Mapping[str, object]
    requested_cost: float
    throttled: bool
    access_token: str | None


@dataclass(frozen=True)
class WebhookDelivery:
    """A signed webhook delivery as Shopify would POST it."""

    topic: str
    headers: Mapping[str, str]
    body: bytes

    def to_request(self, url: str, received_at: datetime) -> WebhookRequest:
        """The delivery as the hub's server hands it to ``parse_webhook``."""
        return WebhookRequest(
            method="POST",
            url=url,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.body,
            received_at=received_at,
        )

    def post(self, url: str, *, timeout: float = 5.0) -> httpx.Response:
        """Deliver it to a running hub (Shopify allows 5 s for the answer)."""
        return httpx.post(url, content=self.body, headers=dict(self.headers), timeout=timeout)


class ShopState:
    """A simulated Shopify shop; pass it to ``create_app``."""

    def __init__(
        self,
        *,
        shop: str = "clm-sim.myshopify.com",
        access_token: str = "shpat_simulated_0123456789abcdef",
        client_secret: str = "simulated-client-secret",
        clock: Clock | None = None,
        bucket_capacity: float = 2000.0,
        restore_rate: float = 100.0,
        shop_utc_offset: timedelta = timedelta(hours=1),
        log_limit: int | None = None,
        path: Path | None = None,
    ) -> None:
        """``log_limit`` bounds ``requests`` and ``outbox`` to their newest entries (the demo
        sets it so a long run does not keep every request and webhook); None keeps all.
        ``path`` is the SQLite file for the records (replaced if there); None: a temporary
        file, removed with the state."""
        self.shop = shop
        self.access_token = access_token
        self.client_secret = client_secret
        self.clock: Clock = clock or SystemClock()
        self.bucket = CostBucket(bucket_capacity, restore_rate, self.clock.monotonic)
        self.shop_zone = timezone(shop_utc_offset)
        self.lock = threading.RLock()
        self.store = ShopStore(path)
        self.customers: RecordTable[SimCustomer] = RecordTable(
            self.store, self.lock, "customers", _customer, self._write_customer
        )
        self.orders: RecordTable[SimOrder] = RecordTable(
            self.store, self.lock, "orders", _order, self._write_order
        )
        self.bulk_operations: dict[int, SimBulkOperation] = {}
        self.requests: MutableSequence[RequestLog] = (
            [] if log_limit is None else deque(maxlen=log_limit)
        )
        self.search_warnings: list[str] = []
        self.outbox: MutableSequence[WebhookDelivery] = (
            [] if log_limit is None else deque(maxlen=log_limit)
        )
        self.token_revoked = False
        self.bulk_polls_to_complete = 2
        """Polls a bulk operation takes to go CREATED -> RUNNING -> COMPLETED."""
        self.bulk_max_concurrent = 5
        """Concurrent bulk queries per app and shop (5 from 2026-01; 1 before)."""
        self.fail_next_bulk: str | None = None
        """Set to an errorCode (e.g. ``INTERNAL_SERVER_ERROR``) to fail the next bulk query."""
        self.index_lag_s = 0.0
        """Search-index lag: filtered queries miss records changed this recently."""
        self.timeout_hold_s = 5.0
        """How long a TIMEOUT fault holds the request (released early on disconnect)."""
        self.bulk_downloads_with_token = 0
        """Downloads of bulk results that carried the access token (should stay 0)."""
        self._next_customer = 7001
        self._next_order = 9001
        self._next_bulk = 1

    # -- time ------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The shop's current time (second precision, UTC)."""
        return _seconds(self.clock.utcnow())

    # -- storage ---------------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Hold the lock and one transaction around many writes (seeding a large shop)."""
        with self.lock, self.store.batch():
            yield

    def close(self) -> None:
        """Close the records' file (a temporary one is removed)."""
        with self.lock:
            self.store.close()

    def save(self, record: SimCustomer | SimOrder) -> None:
        """Write a changed snapshot back (what the merchant or a mutation changed)."""
        if isinstance(record, SimCustomer):
            self.customers.put(record.id, record)
        else:
            self.orders.put(record.id, record)

    def _write_customer(self, c: SimCustomer) -> None:
        self.store.db.execute(
            "INSERT OR REPLACE INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (c.id, c.email, _key(c.email), c.first_name, c.last_name, c.phone,
             c.email_marketing_state, join_tags(c.tags), epoch(c.created_at),
             epoch(c.updated_at), c.state, int(c.erasure_requested)),
        )  # fmt: skip

    def _write_order(self, o: SimOrder) -> None:
        self.store.db.execute(
            "INSERT OR REPLACE INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (o.id, str(o.total), o.customer_id, o.email, _key(o.email), o.currency,
             o.financial_status, epoch(o.created_at), _epoch(o.processed_at),
             epoch(o.updated_at), _epoch(o.cancelled_at), o.cancel_reason, str(o.refunded),
             int(o.test), join_tags(o.tags)),
        )  # fmt: skip

    # -- seeding and changes ---------------------------------------------------------------

    def add_customer(
        self,
        *,
        id: int | None = None,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        phone: str | None = None,
        email_marketing_state: str = "NOT_SUBSCRIBED",
        tags: Iterable[str] = (),
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> SimCustomer:
        """Create a customer; timestamps default to now."""
        with self.lock:
            number = id if id is not None else self._next_customer
            self._next_customer = max(self._next_customer, number + 1)
            created = _seconds(created_at) if created_at else self.now()
            customer = SimCustomer(
                id=number,
                email=email,
                first_name=first_name,
                last_name=last_name,
                phone=phone,
                email_marketing_state=email_marketing_state,
                tags=sorted(set(tags), key=str.lower),
                created_at=created,
                updated_at=_seconds(updated_at) if updated_at else created,
            )
            self.customers.put(number, customer)
            return customer

    def add_order(
        self,
        *,
        total: Decimal | str,
        id: int | None = None,
        customer_id: int | None = None,
        email: str | None = None,
        currency: str = "EUR",
        financial_status: str | None = "PAID",
        refunded: Decimal | str = Decimal(0),
        cancelled_at: datetime | None = None,
        test: bool = False,
        created_at: datetime | None = None,
        processed_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> SimOrder:
        """Create an order; ``processed_at`` and ``updated_at`` default to ``created_at``."""
        with self.lock:
            number = id if id is not None else self._next_order
            self._next_order = max(self._next_order, number + 1)
            created = _seconds(created_at) if created_at else self.now()
            processed = _seconds(processed_at) if processed_at else created
            updated = _seconds(updated_at) if updated_at else created
            returned = Decimal(str(refunded))
            order = SimOrder(
                id=number,
                total=Decimal(str(total)),
                customer_id=customer_id,
                email=email,
                currency=currency,
                financial_status=financial_status,
                refunded=returned if returned else _ZERO,
                cancelled_at=_seconds(cancelled_at) if cancelled_at else None,
                test=test,
                created_at=created,
                processed_at=processed,
                updated_at=updated,
            )
            self.orders.put(number, order)
            return order

    def orders_of(self, customer_id: int) -> list[SimOrder]:
        """The customer's orders, oldest id first (indexed: a customer node needs them)."""
        return self.orders.select("customer_id = ? ORDER BY id", (customer_id,))

    def update_customer(self, customer_id: int, **changes: object) -> SimCustomer:
        """Change a customer's fields as the merchant would; ``updated_at`` becomes now."""
        with self.lock:
            customer = self.customers[customer_id]
            for name, value in changes.items():
                if not hasattr(customer, name):
                    raise AttributeError(f"SimCustomer has no field {name!r}")
                setattr(customer, name, value)
            customer.updated_at = self.now()
            self._write_customer(customer)
            self.emit("customers/update", self.customer_payload(customer))
            return customer

    def update_order(self, order_id: int, **changes: object) -> SimOrder:
        """Change an order (refund, cancel ...); ``updated_at`` becomes now."""
        with self.lock:
            order = self.orders[order_id]
            for name, value in changes.items():
                if not hasattr(order, name):
                    raise AttributeError(f"SimOrder has no field {name!r}")
                setattr(order, name, value)
            order.updated_at = self.now()
            self._write_order(order)
            self.emit("orders/updated", self.order_payload(order))
            return order

    def seed(
        self,
        *,
        customers: int,
        orders: int,
        start: datetime | None = None,
        step: timedelta = timedelta(minutes=7),
    ) -> None:
        """Add a deterministic synthetic shop: people with consent and tags, and their orders.

        Timestamps run from ``start`` (default: a year before now) in ``step``s, so every
        seeded record is older than anything changed afterwards.
        """
        base = _seconds(start or self.now() - timedelta(days=365))
        with self.batch():
            made: list[SimCustomer] = []
            for i in range(customers):
                at = base + step * i
                made.append(
                    self.add_customer(
                        email=f"person{i}@example.com",
                        first_name=f"First{i}",
                        last_name=f"Last{i}",
                        phone=f"+4930{1000000 + i}" if i % 3 == 0 else None,
                        email_marketing_state="SUBSCRIBED" if i % 2 == 0 else "NOT_SUBSCRIBED",
                        tags=["VIP"] if i % 10 == 0 else [],
                        created_at=at,
                        updated_at=at,
                    )
                )
            statuses = ("PAID", "PAID", "PAID", "PARTIALLY_REFUNDED", "REFUNDED", "PENDING")
            for j in range(orders):
                at = base + step * j + timedelta(seconds=30)
                buyer = made[j % len(made)] if made and j % 17 else None
                status = statuses[j % len(statuses)]
                total = Decimal(20 + (j * 37) % 180) + Decimal("0.95")
                refunded = {
                    "REFUNDED": total,
                    "PARTIALLY_REFUNDED": Decimal("5.00"),
                }.get(status, Decimal(0))
                self.add_order(
                    total=total,
                    customer_id=buyer.id if buyer else None,
                    email=buyer.email if buyer else f"guest{j}@example.com",
                    financial_status=status,
                    refunded=refunded,
                    cancelled_at=at if j % 29 == 0 else None,
                    created_at=at,
                    processed_at=at,
                    updated_at=at,
                )

    def count_tagged(self, prefix: str) -> int:
        """How many customers carry a tag starting with ``prefix`` (case-sensitive)."""
        with self.lock:
            (found,) = self.store.db.execute(
                "SELECT count(*) FROM customers WHERE instr(tags, ?) = 1 OR instr(tags, ?) > 0",
                (prefix, TAG_SEPARATOR + prefix),
            ).fetchone()
        return int(found)

    def customer_at(self, position: int) -> SimCustomer | None:
        """The customer at ``position`` in id order (picking one at random needs no list)."""
        found = self.customers.select("1 ORDER BY id LIMIT 1 OFFSET ?", (position,))
        return found[0] if found else None

    def customer_tags(self, customer_id: int) -> list[str]:
        with self.lock:
            return list(self.customers[customer_id].tags)

    @property
    def throttled_responses(self) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.throttled)

    def revoke_token(self) -> None:
        """Make the access token invalid from now on (uninstall, rotation, expiry)."""
        self.token_revoked = True

    # -- cursors ---------------------------------------------------------------------------

    def bind_cursor(self, cursor: str, root: str, query: str | None, sort: str, rev: bool) -> None:
        with self.lock:
            self.store.db.execute(
                "INSERT OR IGNORE INTO cursors VALUES (?, ?, ?, ?, ?)",
                (cursor, root, json.dumps(query), sort, int(rev)),
            )

    def cursor_bound(self, cursor: str, root: str, query: str | None, sort: str, rev: bool) -> bool:
        with self.lock:
            found = self.store.db.execute(
                "SELECT 1 FROM cursors WHERE cursor = ? AND root = ? AND query = ? AND sort = ? "
                "AND rev = ?",
                (cursor, root, json.dumps(query), sort, int(rev)),
            ).fetchone()
            return found is not None

    def next_bulk_id(self) -> int:
        with self.lock:
            number = self._next_bulk
            self._next_bulk += 1
            return number

    # -- webhooks --------------------------------------------------------------------------

    def _stamp(self, value: datetime | None) -> str | None:
        return None if value is None else value.astimezone(self.shop_zone).isoformat()

    def customer_payload(self, customer: SimCustomer) -> dict[str, object]:
        """A customer as ``customers/*`` webhooks carry it (REST shape, shop time zone)."""
        return {
            "id": customer.id,
            "email": customer.email,
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "phone": customer.phone,
            "created_at": self._stamp(customer.created_at),
            "updated_at": self._stamp(customer.updated_at),
            "state": customer.state.lower(),
            "tags": ", ".join(customer.tags),
            "email_marketing_consent": None
            if customer.email is None
            else {
                "state": customer.email_marketing_state.lower(),
                "opt_in_level": "single_opt_in",
                "consent_updated_at": self._stamp(customer.created_at),
            },
            "admin_graphql_api_id": customer.gid,
        }

    def order_payload(self, order: SimOrder) -> dict[str, object]:
        """An order as ``orders/*`` webhooks carry it (REST shape, shop time zone)."""
        money = {"amount": f"{order.total:.2f}", "currency_code": order.currency}
        refunds: list[dict[str, object]] = []
        if order.refunded:
            refunds.append(
                {
                    "id": order.id * 10,
                    "transactions": [
                        {
                            "kind": "refund",
                            "status": "success",
                            "amount": f"{order.refunded:.2f}",
                            "currency": order.currency,
                        }
                    ],
                }
            )
        customer = self.customers.get(order.customer_id) if order.customer_id else None
        return {
            "id": order.id,
            "admin_graphql_api_id": order.gid,
            "name": order.name,
            "email": order.email,
            "created_at": self._stamp(order.created_at),
            "processed_at": self._stamp(order.processed_at),
            "updated_at": self._stamp(order.updated_at),
            "cancelled_at": self._stamp(order.cancelled_at),
            "cancel_reason": order.cancel_reason,
            "financial_status": (order.financial_status or "pending").lower(),
            "currency": order.currency,
            "total_price": f"{order.total:.2f}",
            "current_total_price": f"{order.total - order.refunded:.2f}",
            "total_price_set": {"shop_money": money, "presentment_money": money},
            "test": order.test,
            "customer": None if customer is None else {"id": customer.id, "email": customer.email},
            "refunds": refunds,
        }

    def redact_payload(
        self, customer: SimCustomer, orders: Iterable[int] = ()
    ) -> dict[str, object]:
        """The ``customers/redact`` compliance payload."""
        return {
            "shop_id": 954889,
            "shop_domain": self.shop,
            "customer": {"id": customer.id, "email": customer.email, "phone": customer.phone},
            "orders_to_redact": list(orders),
        }

    def delivery(
        self,
        topic: str,
        payload: Mapping[str, object],
        *,
        event_id: str | None = None,
        triggered_at: datetime | None = None,
        secret: str | None = None,
        api_version: str = SUPPORTED_VERSIONS[-1],
    ) -> WebhookDelivery:
        """A delivery of ``topic`` signed with the app's client secret (or ``secret``)."""
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        webhook_id = secrets.token_hex(8)
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": sign(secret or self.client_secret, body),
            "X-Shopify-Shop-Domain": self.shop,
            "X-Shopify-API-Version": api_version,
            "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-Event-Id": event_id or f"evt-{webhook_id}",
            "X-Shopify-Triggered-At": (triggered_at or self.clock.utcnow())
            .astimezone(UTC)
            .isoformat()
            .replace("+00:00", "Z"),
        }
        return WebhookDelivery(topic=topic, headers=headers, body=body)

    def emit(self, topic: str, payload: Mapping[str, object]) -> None:
        """Queue the webhook Shopify would send for a change (drain ``outbox`` to deliver)."""
        self.outbox.append(self.delivery(topic, payload))


def _key(email: str | None) -> str | None:
    return None if email is None else email.lower()


def _epoch(value: datetime | None) -> int | None:
    return None if value is None else epoch(value)


def _when(value: int | None) -> datetime | None:
    return None if value is None else instant(value)


def _customer(row: Row) -> SimCustomer:
    (ident, email, _, first, last, phone, marketing, tags, created, updated, state,
     erasure) = row  # fmt: skip
    return SimCustomer(
        id=int(ident),
        email=email,
        first_name=first,
        last_name=last,
        phone=phone,
        email_marketing_state=str(marketing),
        tags=split_tags(str(tags)),
        created_at=instant(int(created)),
        updated_at=instant(int(updated)),
        state=str(state),
        erasure_requested=bool(erasure),
    )


def _order(row: Row) -> SimOrder:
    (ident, total, customer_id, email, _, currency, status, created, processed, updated,
     cancelled, reason, refunded, test, tags) = row  # fmt: skip
    returned = Decimal(str(refunded))
    return SimOrder(
        id=int(ident),
        total=Decimal(str(total)),
        customer_id=customer_id,
        email=email,
        currency=str(currency),
        financial_status=status,
        created_at=instant(int(created)),
        processed_at=_when(processed),
        updated_at=instant(int(updated)),
        cancelled_at=_when(cancelled),
        cancel_reason=reason,
        refunded=returned if returned else _ZERO,
        test=bool(test),
        tags=tuple(split_tags(str(tags))),
    )
