"""Reading the simulated shop: entities as GraphQL objects, selections, connections.

Entities are built as complete dicts (nested objects lazily, to break Customer <-> Order
cycles) and then projected onto the requested selection. Connections sort by the
``sortKey`` with the id as tie-breaker and page with keyset cursors shaped like Shopify's
(base64 of ``{"last_id", "last_value"}``), each bound to the query and sort it came from;
searches and pages are SQL queries on the shop's tables, so a page reads only its rows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from .graphql import Field, Resolved
from .sim_schema import GqlError
from .sim_search import Condition, condition, parse_search
from .sim_state import ShopState, SimBulkOperation, SimCustomer, SimOrder
from .sim_store import epoch

__all__ = ["MAX_PAGE_SIZE", "Context", "connection", "count", "iso", "project", "search"]

MAX_PAGE_SIZE = 250


# -- entities -----------------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    """A timestamp as Shopify prints it: UTC, second precision, ``Z``."""
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(amount: Decimal, currency: str) -> dict[str, object]:
    return {"__typename": "MoneyV2", "amount": str(amount), "currencyCode": currency}


def _bag(amount: Decimal, currency: str) -> dict[str, object]:
    money = _money(amount, currency)
    return {"__typename": "MoneyBag", "shopMoney": money, "presentmentMoney": money}


class Context:
    """One request's view of the shop: entity builders and the search warnings met."""

    def __init__(self, state: ShopState, origin: str) -> None:
        self.state = state
        self.origin = origin
        self.search: list[dict[str, object]] = []

    def customer(self, c: SimCustomer) -> dict[str, object]:
        # The customer's orders are read only when a selected field needs them (an order's
        # ``customer { id }`` must not read every order of its customer).
        read: list[list[SimOrder]] = []

        def orders() -> list[SimOrder]:
            if not read:
                read.append(self.state.orders_of(c.id))
            return read[0]

        def spent() -> dict[str, object]:
            paid = (o for o in orders() if o.cancelled_at is None and o.financial_status == "PAID")
            return _money(sum((o.total - o.refunded for o in paid), Decimal(0)), "EUR")

        def last_order() -> dict[str, object] | None:
            last = max(orders(), key=lambda o: (o.processed_at or o.created_at, o.id), default=None)
            return None if last is None else self.order(last)

        name = " ".join(p for p in (c.first_name, c.last_name) if p)
        return {
            "__typename": "Customer",
            "id": c.gid,
            "legacyResourceId": str(c.id),
            "firstName": c.first_name,
            "lastName": c.last_name,
            "displayName": name or c.email or "",
            "createdAt": iso(c.created_at),
            "updatedAt": iso(c.updated_at),
            "tags": list(c.tags),
            "state": c.state,
            "note": None,
            "verifiedEmail": c.email is not None,
            "numberOfOrders": lambda: str(len(orders())),
            "email": c.email,
            "phone": c.phone,
            "amountSpent": spent,
            "lastOrder": last_order,
            "defaultEmailAddress": None
            if c.email is None
            else {
                "__typename": "CustomerEmailAddress",
                "emailAddress": c.email,
                "marketingState": c.email_marketing_state,
                "marketingOptInLevel": "SINGLE_OPT_IN"
                if c.email_marketing_state == "SUBSCRIBED"
                else None,
                "marketingUpdatedAt": iso(c.created_at),
            },
            "defaultPhoneNumber": None
            if c.phone is None
            else {
                "__typename": "CustomerPhoneNumber",
                "phoneNumber": c.phone,
                "marketingState": "NOT_SUBSCRIBED",
                "marketingOptInLevel": None,
            },
        }

    def order(self, o: SimOrder) -> dict[str, object]:
        def buyer() -> dict[str, object] | None:
            found = self.state.customers.get(o.customer_id) if o.customer_id else None
            return None if found is None else self.customer(found)

        return {
            "__typename": "Order",
            "id": o.gid,
            "legacyResourceId": str(o.id),
            "name": o.name,
            "createdAt": iso(o.created_at),
            "processedAt": iso(o.processed_at),
            "updatedAt": iso(o.updated_at),
            "cancelledAt": iso(o.cancelled_at),
            "cancelReason": o.cancel_reason,
            "closedAt": None,
            "test": o.test,
            "email": o.email,
            "tags": list(o.tags),
            "currencyCode": o.currency,
            "presentmentCurrencyCode": o.currency,
            "displayFinancialStatus": o.financial_status,
            "displayFulfillmentStatus": "UNFULFILLED",
            "customer": buyer,
            "totalPriceSet": _bag(o.total, o.currency),
            "currentTotalPriceSet": _bag(o.total - o.refunded, o.currency),
            "totalRefundedSet": _bag(o.refunded, o.currency),
        }

    def bulk(self, op: SimBulkOperation) -> dict[str, object]:
        done = op.status == "COMPLETED"
        url = None
        if done and op.lines:
            url = f"{self.origin}/_bulk/{op.id}.jsonl?signature={op.signature}"
        return {
            "__typename": "BulkOperation",
            "id": op.gid,
            "status": op.status,
            "errorCode": op.error_code,
            "createdAt": iso(op.created_at),
            "completedAt": iso(op.completed_at),
            "objectCount": str(len(op.lines) if done else 0),
            "rootObjectCount": str(op.root_object_count if done else 0),
            # Rendering the file to measure it costs a pass: only when the field is asked for.
            "fileSize": (lambda: str(sum(len(line) + 1 for line in op.lines))) if url else None,
            "url": url,
            "partialDataUrl": None,
            "query": op.query,
            "type": "QUERY",
        }


def project(value: object, selections: Sequence[Field]) -> Resolved:
    """``value`` reduced to the selected fields, under their aliases."""
    if callable(value):
        value = value()
    if value is None:
        return None
    if isinstance(value, list):
        return [project(item, selections) for item in value]
    if isinstance(value, dict):
        if not selections:
            return None
        out: dict[str, Resolved] = {}
        for item in selections:
            raw = value.get(item.name)
            out[item.key] = project(raw, item.selections)
        return out
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


# -- connections --------------------------------------------------------------------------

Record = SimCustomer | SimOrder
_SORT_READERS: dict[str, Callable[[Record], int | datetime]] = {
    "UPDATED_AT": lambda r: r.updated_at,
    "CREATED_AT": lambda r: r.created_at,
    "PROCESSED_AT": lambda r: (
        (r.processed_at or r.created_at) if isinstance(r, SimOrder) else r.created_at
    ),
}


def _sort_value(record: Record, sort: str) -> int | datetime:
    reader = _SORT_READERS.get(sort)
    return record.id if reader is None else reader(record)


def _encode_cursor(record: Record, sort: str) -> str:
    value = _sort_value(record, sort)
    shown = iso(value) if isinstance(value, datetime) else str(value)
    raw = json.dumps({"last_id": record.id, "last_value": shown}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[int | datetime, int] | None:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        last_id = int(raw["last_id"])
        shown = str(raw["last_value"])
        value: int | datetime = (
            datetime.fromisoformat(shown) if sort in _SORT_READERS else int(shown)
        )
    except (ValueError, KeyError, TypeError):
        return None
    return value, last_id


def _sort_expression(root: str, sort: str) -> str:
    """The SQL a ``sortKey`` orders by (each has an index with the id after it)."""
    if sort == "PROCESSED_AT":
        return "coalesce(processed_at, created_at)" if root == "orders" else "created_at"
    return {"UPDATED_AT": "updated_at", "CREATED_AT": "created_at"}.get(sort, "id")


def search(ctx: Context, root: str, query: object) -> Condition:
    """The SQL condition for the customers or orders a ``query:`` search matches (all of
    them without one); warnings go to the context as Shopify reports them."""
    state = ctx.state
    if not isinstance(query, str) or not query.strip():
        return "1", ()
    now = state.now()
    terms, warnings = parse_search(query)
    parts: list[str] = []
    params: list[object] = []
    for term in terms:
        made = condition(root, term, now)
        if isinstance(made, dict):
            warnings.append(made)
        else:
            parts.append(made[0])
            params.extend(made[1])
    if warnings:
        ctx.search.append({"path": [root], "query": query, "warnings": warnings})
        state.search_warnings.extend(str(w["message"]) for w in warnings)
    if state.index_lag_s > 0:
        # The search index is eventually consistent: very recent changes are not there yet.
        horizon = now - timedelta(seconds=state.index_lag_s)
        parts.append("updated_at <= ?")
        params.append(int(horizon.timestamp() // 1))
    return " AND ".join(f"({part})" for part in parts) or "1", tuple(params)


def count(ctx: Context, root: str, query: object) -> int:
    """How many customers or orders a ``query:`` search matches."""
    where, params = search(ctx, root, query)
    with ctx.state.lock:
        (found,) = ctx.state.store.db.execute(
            f"SELECT count(*) FROM {root} WHERE {where}", params
        ).fetchone()
    return int(found)


def connection(ctx: Context, item: Field, args: Mapping[str, Resolved]) -> dict[str, object]:
    """One page of a ``customers`` / ``orders`` connection, checked like Shopify checks it."""
    root = item.name
    if args.get("last") is not None or args.get("before") is not None:
        raise GqlError("The simulator supports forward pagination (first/after) only.")
    first = args.get("first")
    if not isinstance(first, int):
        raise GqlError("you must provide one of first or last", "BAD_REQUEST")
    if first < 0 or first > MAX_PAGE_SIZE:
        raise GqlError(
            f"The page size ({first}) is invalid: first must be between 0 and {MAX_PAGE_SIZE}.",
            "BAD_REQUEST",
        )
    default_sort = "ID" if root == "customers" else "PROCESSED_AT"
    sort = str(args.get("sortKey") or default_sort)
    reverse = bool(args.get("reverse"))
    query = args.get("query")
    query_text = query if isinstance(query, str) else None
    where, params = search(ctx, root, query)
    after = args.get("after")
    if isinstance(after, str):
        position = _decode_cursor(after, sort)
        if position is None or not ctx.state.cursor_bound(after, root, query_text, sort, reverse):
            raise GqlError("Invalid cursor for current pagination sort or query.", "BAD_REQUEST")
        value, last_id = position
        stored = epoch(value) if isinstance(value, datetime) else value
        beyond = "<" if reverse else ">"
        where = f"({where}) AND ({_sort_expression(root, sort)}, id) {beyond} (?, ?)"
        params = (*params, stored, last_id)
    order = "DESC" if reverse else "ASC"
    table = ctx.state.customers if root == "customers" else ctx.state.orders
    records: list[Record] = list(
        table.select(
            f"{where} ORDER BY {_sort_expression(root, sort)} {order}, id {order} LIMIT ?",
            (*params, first + 1),
        )
    )
    page = records[:first]
    cursors = [_encode_cursor(r, sort) for r in page]
    for cursor in cursors:
        ctx.state.bind_cursor(cursor, root, query_text, sort, reverse)
    build = ctx.customer if root == "customers" else ctx.order
    nodes = [build(r) for r in page]  # type: ignore[arg-type]
    edge_type = "CustomerEdge" if root == "customers" else "OrderEdge"
    return {
        "__typename": "CustomerConnection" if root == "customers" else "OrderConnection",
        "pageInfo": {
            "__typename": "PageInfo",
            "hasNextPage": len(records) > first,
            "hasPreviousPage": after is not None,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
        "nodes": nodes,
        "edges": [
            {"__typename": edge_type, "cursor": c, "node": n}
            for c, n in zip(cursors, nodes, strict=True)
        ],
    }
