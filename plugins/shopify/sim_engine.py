"""Executes the Admin GraphQL documents a client sends against a ``ShopState``.

Validation and cost come from ``sim_schema``, reads from ``sim_data``; this module holds the
mutations (``tagsAdd`` / ``tagsRemove`` with ``userErrors``, bulk query operations,
``customerRequestDataErasure``), the leaky bucket check (``THROTTLED`` when the bucket is
short, ``MAX_COST_EXCEEDED`` above 1000 points) and the answer with ``extensions.cost``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

from .graphql import Field, GraphQLSyntaxError, Operation, Resolved, parse
from .sim_data import Context, connection, count, project, search
from .sim_schema import (
    CONNECTIONS,
    MUTATION_COST,
    MUTATION_ROOTS,
    QUERY_ROOTS,
    GqlError,
    arguments,
    requested_cost,
    validate,
)
from .sim_state import BulkRows, RequestLog, ShopState, SimBulkOperation, SimCustomer, SimOrder

__all__ = ["MAX_QUERY_COST", "BadRequest", "execute"]

MAX_QUERY_COST = 1000
MAX_TAGS_INPUT = 250
MAX_TAGS_PER_RESOURCE = 250
RATE_LIMIT_DOCS = "https://shopify.dev/api/usage/rate-limits"


class BadRequest(Exception):
    """The POST body is not a GraphQL request at all (HTTP 400)."""


# -- mutations ----------------------------------------------------------------------------


def _split_tags(raw: Resolved) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]
    seen: dict[str, str] = {}
    for item in items:
        for part in str(item).split(","):
            tag = part.strip()
            if tag and tag.lower() not in seen:
                seen[tag.lower()] = tag
    return list(seen.values())


def _taggable(state: ShopState, gid: str) -> SimCustomer | SimOrder | None:
    for kind, table in (("Customer", state.customers), ("Order", state.orders)):
        prefix = f"gid://shopify/{kind}/"
        if gid.startswith(prefix) and gid[len(prefix) :].isdigit():
            return table.get(int(gid[len(prefix) :]))
    return None


def _tags(ctx: Context, item: Field, args: Mapping[str, Resolved]) -> dict[str, object]:
    raw_tags = args.get("tags")
    if isinstance(raw_tags, list) and len(raw_tags) > MAX_TAGS_INPUT:
        raise GqlError(
            f"The input array size of {len(raw_tags)} is greater than the maximum allowed of "
            f"{MAX_TAGS_INPUT}.",
            "MAX_INPUT_SIZE_EXCEEDED",
        )
    target = _taggable(ctx.state, str(args.get("id")))
    if target is None:
        kind = "Order" if "/Order/" in str(args.get("id")) else "Customer"
        return {
            "node": None,
            "userErrors": [{"field": ["id"], "message": f"{kind} does not exist"}],
        }
    tags = _split_tags(raw_tags)
    current = {t.lower(): t for t in target.tags}
    if item.name == "tagsAdd":
        for tag in tags:
            current.setdefault(tag.lower(), tag)
        if len(current) > MAX_TAGS_PER_RESOURCE:
            return {
                "node": None,
                "userErrors": [{"field": ["tags"], "message": "Tags cannot be more than 250"}],
            }
    else:
        for tag in tags:
            current.pop(tag.lower(), None)
    updated = sorted(current.values(), key=str.lower)
    if updated != list(target.tags):
        if isinstance(target, SimCustomer):
            target.tags = updated
        else:
            target.tags = tuple(updated)
        target.updated_at = ctx.state.now()
        ctx.state.save(target)
        if isinstance(target, SimCustomer):
            ctx.state.emit("customers/update", ctx.state.customer_payload(target))
    node = ctx.customer(target) if isinstance(target, SimCustomer) else ctx.order(target)
    return {"node": node, "userErrors": []}


def _erasure(ctx: Context, args: Mapping[str, Resolved]) -> dict[str, object]:
    gid = str(args.get("customerId"))
    target = _taggable(ctx.state, gid)
    if not isinstance(target, SimCustomer):
        return {
            "customerId": None,
            "userErrors": [
                {
                    "field": ["customerId"],
                    "message": "Customer does not exist",
                    "code": "DOES_NOT_EXIST",
                }
            ],
        }
    target.erasure_requested = True
    ctx.state.save(target)
    return {"customerId": target.gid, "userErrors": []}


def _bulk_rows(ctx: Context, operation: Operation) -> BulkRows:
    """The rows of a bulk query: those matching it, up to the newest id now, each line
    rendered on download."""
    rows = BulkRows(ctx.state.store, ctx.state.lock)
    for item in operation.selections:
        args = arguments(item, {})
        node_fields: Sequence[Field] = ()
        for sub in item.selections:
            if sub.name == "nodes":
                node_fields = sub.selections
            elif sub.name == "edges":
                node_fields = next((s.selections for s in sub.selections if s.name == "node"), ())
        where, params = search(ctx, item.name, args.get("query"))
        rows.add(item.name, where, params, _line_renderer(ctx, item.name, node_fields))
    return rows


def _line_renderer(
    ctx: Context, root: str, fields: Sequence[Field]
) -> Callable[[list[int]], list[str]]:
    """Renders a page of a bulk result's ids as JSONL lines, reading the page's records
    (and an order page's buyers) with one query each."""
    state = ctx.state

    def render(ids: list[int]) -> list[str]:
        marks = ", ".join("?" * len(ids))
        with state.lock:
            held: list[SimCustomer] = []
            if root == "customers":
                customers = state.customers.select(f"id IN ({marks}) ORDER BY id", tuple(ids))
                nodes = [ctx.customer(c) for c in customers]
            else:
                orders = state.orders.select(f"id IN ({marks}) ORDER BY id", tuple(ids))
                wanted = sorted({o.customer_id for o in orders if o.customer_id is not None})
                # Held while rendering, so each order's ``customer`` is read from memory.
                held = state.customers.select(
                    f"id IN ({', '.join('?' * len(wanted))})", tuple(wanted)
                )
                nodes = [ctx.order(o) for o in orders]
            lines = [json.dumps(project(node, fields), separators=(",", ":")) for node in nodes]
            held.clear()
            return lines

    return render


def _bulk_run(ctx: Context, args: Mapping[str, Resolved]) -> dict[str, object]:
    state = ctx.state
    text = str(args.get("query") or "")

    def invalid(message: str) -> dict[str, object]:
        return {
            "bulkOperation": None,
            "userErrors": [{"field": ["query"], "message": message, "code": "INVALID"}],
        }

    try:
        operation = parse(text)
    except GraphQLSyntaxError as exc:
        return invalid(f"Invalid bulk query: {exc}")
    if operation.kind != "query" or operation.variables:
        return invalid("Bulk queries must be a query without variables.")
    errors, _ = validate(operation, {})
    if errors:
        return invalid(f"Invalid bulk query: {errors[0].message}")
    if not operation.selections or any(f.name not in CONNECTIONS for f in operation.selections):
        return invalid(
            "Bulk queries must contain at least one connection; the simulator supports "
            "customers and orders at the top level."
        )
    running = [op for op in state.bulk_operations.values() if op.status in ("CREATED", "RUNNING")]
    if len(running) >= state.bulk_max_concurrent:
        return {
            "bulkOperation": None,
            "userErrors": [
                {
                    "field": None,
                    "message": "A bulk query operation for this app and shop is already in "
                    f"progress: {running[-1].gid if running else 'gid://shopify/BulkOperation/0'}.",
                    "code": "OPERATION_IN_PROGRESS",
                }
            ],
        }
    number = state.next_bulk_id()
    rows = _bulk_rows(ctx, operation)
    op = SimBulkOperation(
        id=number,
        query=text,
        created_at=state.now(),
        lines=rows,
        root_object_count=len(rows),
        fail_with=state.fail_next_bulk,
    )
    state.fail_next_bulk = None
    state.bulk_operations[op.id] = op
    return {"bulkOperation": ctx.bulk(op), "userErrors": []}


def _advance(state: ShopState, op: SimBulkOperation) -> None:
    op.polls += 1
    if op.status == "CANCELING":
        op.status = "CANCELED"
    elif op.status in ("CREATED", "RUNNING"):
        if op.polls >= state.bulk_polls_to_complete:
            op.status = "FAILED" if op.fail_with else "COMPLETED"
            op.error_code = op.fail_with
            op.completed_at = state.now()
        else:
            op.status = "RUNNING"


def _bulk_by_gid(state: ShopState, gid: object) -> SimBulkOperation | None:
    prefix = "gid://shopify/BulkOperation/"
    if isinstance(gid, str) and gid.startswith(prefix) and gid[len(prefix) :].isdigit():
        return state.bulk_operations.get(int(gid[len(prefix) :]))
    return None


# -- execution ----------------------------------------------------------------------------


def _resolve_root(ctx: Context, item: Field, args: Mapping[str, Resolved]) -> object:
    state = ctx.state
    name = item.name
    if name in CONNECTIONS:
        return connection(ctx, item, args)
    if name in ("customersCount", "ordersCount"):
        root = "customers" if name == "customersCount" else "orders"
        matched = count(ctx, root, args.get("query"))
        limit = args.get("limit", 10_000)
        capped = isinstance(limit, int) and matched > limit
        return {
            "__typename": "Count",
            "count": limit if capped else matched,
            "precision": "AT_LEAST" if capped else "EXACT",
        }
    if name in ("customer", "order"):
        found = _taggable(state, str(args.get("id")))
        if isinstance(found, SimCustomer) and name == "customer":
            return ctx.customer(found)
        if isinstance(found, SimOrder) and name == "order":
            return ctx.order(found)
        return None
    if name == "shop":
        return {
            "__typename": "Shop",
            "id": "gid://shopify/Shop/954889",
            "name": state.shop.split(".")[0],
            "myshopifyDomain": state.shop,
            "currencyCode": "EUR",
        }
    if name in ("bulkOperation", "currentBulkOperation"):
        if name == "bulkOperation":
            op = _bulk_by_gid(state, args.get("id"))
        else:
            op = max(state.bulk_operations.values(), key=lambda o: o.id, default=None)
        if op is None:
            return None
        _advance(state, op)
        return ctx.bulk(op)
    if name in ("tagsAdd", "tagsRemove"):
        return _tags(ctx, item, args)
    if name == "customerRequestDataErasure":
        return _erasure(ctx, args)
    if name == "bulkOperationRunQuery":
        return _bulk_run(ctx, args)
    if name == "bulkOperationCancel":
        op = _bulk_by_gid(state, args.get("id"))
        if op is None:
            return {
                "bulkOperation": None,
                "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}],
            }
        if op.status in ("CREATED", "RUNNING"):
            op.status = "CANCELING"
        return {"bulkOperation": ctx.bulk(op), "userErrors": []}
    raise GqlError(f"Field '{name}' is not simulated")


def _cost(state: ShopState, requested: float, actual: float | None) -> dict[str, object]:
    return {
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": {
            "maximumAvailable": state.bucket.capacity,
            "currentlyAvailable": round(state.bucket.available, 2),
            "restoreRate": state.bucket.restore_rate,
        },
    }


def execute(
    state: ShopState, body: object, *, origin: str, access_token: str | None = None
) -> dict[str, object]:
    """Answer one GraphQL POST body (always HTTP 200, like Shopify)."""
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise BadRequest("Required parameter missing or invalid")
    raw_variables = body.get("variables") or {}
    if not isinstance(raw_variables, dict):
        raise BadRequest("variables must be an object")
    query: str = body["query"]
    with state.lock:
        try:
            operation = parse(query)
        except GraphQLSyntaxError as exc:
            return {
                "errors": [GqlError(f"Parse error: {exc}", "PARSE_ERROR").to_json()],
                "extensions": {"cost": _cost(state, 0, 0)},
            }
        errors, variables = validate(operation, raw_variables)
        if errors:
            state.requests.append(
                RequestLog(operation.name, query, raw_variables, 0, False, access_token)
            )
            return {
                "errors": [e.to_json() for e in errors],
                "extensions": {"cost": _cost(state, 0, 0)},
            }
        requested = requested_cost(operation, variables)
        if requested > MAX_QUERY_COST:
            state.requests.append(
                RequestLog(operation.name, query, raw_variables, requested, False, access_token)
            )
            return {
                "errors": [
                    GqlError(
                        f"Query cost is {requested}, which exceeds the single query max cost "
                        f"limit ({MAX_QUERY_COST}).",
                        "MAX_COST_EXCEEDED",
                        extra={"cost": requested, "maxCost": MAX_QUERY_COST},
                    ).to_json()
                ],
                "extensions": {"cost": _cost(state, requested, None)},
            }
        throttled = not state.bucket.take(requested)
        state.requests.append(
            RequestLog(operation.name, query, raw_variables, requested, throttled, access_token)
        )
        if throttled:
            return {
                "errors": [
                    GqlError(
                        "Throttled", "THROTTLED", extra={"documentation": RATE_LIMIT_DOCS}
                    ).to_json()
                ],
                "extensions": {"cost": _cost(state, requested, None)},
            }
        ctx = Context(state, origin)
        data: dict[str, Resolved] | None = {}
        failures: list[GqlError] = []
        actual = 0
        roots = MUTATION_ROOTS if operation.kind == "mutation" else QUERY_ROOTS
        for item in operation.selections:
            if item.name == "__typename":
                data[item.key] = "Mutation" if operation.kind == "mutation" else "QueryRoot"  # type: ignore[index]
                continue
            args = arguments(item, variables)
            try:
                value = _resolve_root(ctx, item, args)
            except GqlError as exc:
                exc.path = [item.key]
                failures.append(exc)
                if roots[item.name].non_null:
                    data = None
                    break
                data[item.key] = None  # type: ignore[index]
                continue
            projected = project(value, item.selections)
            data[item.key] = projected  # type: ignore[index]
            if operation.kind == "mutation":
                actual += MUTATION_COST
            elif item.name in CONNECTIONS and isinstance(projected, dict):
                returned = value.get("nodes", []) if isinstance(value, dict) else []
                actual += 2 + len(returned) if isinstance(returned, list) else 2
            else:
                actual += 1
        state.bucket.refund(requested - actual)
        answer: dict[str, object] = {"data": data}
        if failures:
            answer["errors"] = [e.to_json() for e in failures]
        extensions: dict[str, object] = {"cost": _cost(state, requested, actual)}
        if ctx.search:
            extensions["search"] = ctx.search
        answer["extensions"] = extensions
        return answer
