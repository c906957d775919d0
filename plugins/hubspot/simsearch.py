"""The HubSpot simulator's reading endpoints: list pages and CRM search.

Search evaluates filter groups (OR of ANDed filters) with HubSpot's operators, typed as
HubSpot types the properties (datetimes as epoch ms, numbers as decimals, strings without
case), sorts by one property, and stops at ``state.search_result_cap`` with a 400.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation

from .simhandlers import Call, Json, bad, render, requested
from .simstate import MODIFIED_PROPERTY, HubSpotState, SimObject
from .vendor import from_ms, parse_timestamp, to_ms

__all__ = ["list_objects", "search"]

LIST_LIMIT = 100
SEARCH_LIMIT = 200
MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
DATETIME_PROPERTIES = frozenset(
    {"createdate", "lastmodifieddate", "hs_lastmodifieddate", "closedate", "hs_createdate"}
)
NUMBER_PROPERTIES = frozenset({"hs_object_id", "amount", "hs_total_price"})
OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)


def list_objects(state: HubSpotState, call: Call) -> tuple[int, Json]:
    kind = call.kind()
    try:
        limit = int(call.query.get("limit", "10"))
    except ValueError:
        raise bad("limit must be an integer") from None
    if not 1 <= limit <= LIST_LIMIT:
        raise bad(f"limit must be between 1 and {LIST_LIMIT}")
    properties = requested(call.query.getlist("properties"), kind)
    archived = call.query.get("archived", "false") == "true"
    after = call.query.get("after")
    after_id = _decode_after(after) if after else 0
    rows = state.objects[kind].select(
        "id > ? AND archived = ? ORDER BY id LIMIT ?", (after_id, int(archived), limit + 1)
    )
    body: dict[str, Json] = {"results": [render(kind, o, properties) for o in rows[:limit]]}
    if len(rows) > limit:
        token = _encode_after(rows[limit - 1].id)
        link = f"{call.base_url}/crm/v3/objects/{kind}?after={token}"
        body["paging"] = {"next": {"after": token, "link": link}}
    return 200, body


def _encode_after(ident: int) -> str:
    return base64.urlsafe_b64encode(str(ident).encode()).decode().rstrip("=")


def _decode_after(token: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    except ValueError:
        raise bad(f"Invalid paging cursor {token!r}") from None


def _typed(name: str, raw: str) -> Decimal | int | str:
    if name in DATETIME_PROPERTIES:
        return to_ms(parse_timestamp(raw))
    if name in NUMBER_PROPERTIES:
        return Decimal(raw)
    return raw.casefold()


def _matches(obj: SimObject, flt: Mapping[str, Json]) -> bool:
    name = str(flt.get("propertyName", ""))
    operator = str(flt.get("operator", ""))
    raw = obj.properties.get(name)
    if operator == "HAS_PROPERTY":
        return raw not in (None, "")
    if operator == "NOT_HAS_PROPERTY":
        return raw in (None, "")
    if raw in (None, ""):
        return operator in ("NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN")
    assert raw is not None
    try:
        value = _typed(name, raw)
        if operator in ("IN", "NOT_IN"):
            values = flt.get("values")
            if not isinstance(values, list):
                raise bad(f"{operator} needs values")
            found = value in {_typed(name, str(v)) for v in values}
            return found if operator == "IN" else not found
        if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            token = str(flt.get("value", "")).casefold().strip("*")
            found = token in raw.casefold()
            return found if operator == "CONTAINS_TOKEN" else not found
        target = _typed(name, str(flt.get("value", "")))
        if operator == "BETWEEN":
            high = _typed(name, str(flt.get("highValue", "")))
            return bool(target <= value <= high)  # type: ignore[operator]
        compare: dict[str, Callable[[object, object], bool]] = {
            "EQ": lambda a, b: a == b,
            "NEQ": lambda a, b: a != b,
            "LT": lambda a, b: a < b,  # type: ignore[operator]
            "LTE": lambda a, b: a <= b,  # type: ignore[operator]
            "GT": lambda a, b: a > b,  # type: ignore[operator]
            "GTE": lambda a, b: a >= b,  # type: ignore[operator]
        }
        return compare[operator](value, target)
    except (ValueError, InvalidOperation, TypeError):
        raise bad(f"Invalid filter value for {name}") from None


def _filter_groups(body: Mapping[str, Json]) -> list[list[Mapping[str, Json]]]:
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list):
        raise bad("filterGroups must be a list")
    if len(groups) > MAX_FILTER_GROUPS:
        raise bad(f"Too many filter groups ({len(groups)} > {MAX_FILTER_GROUPS})")
    parsed: list[list[Mapping[str, Json]]] = []
    for group in groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list) or not all(isinstance(f, dict) for f in filters):
            raise bad("Each filter group needs a list of filters")
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise bad(f"Too many filters in a group ({len(filters)} > {MAX_FILTERS_PER_GROUP})")
        for flt in filters:
            if flt.get("operator") not in OPERATORS:
                raise bad(f"Unknown operator {flt.get('operator')!r}")
        parsed.append(filters)
    if sum(len(g) for g in parsed) > MAX_FILTERS:
        raise bad(f"Too many filters (more than {MAX_FILTERS})")
    return parsed


def _modified_floor(kind: str, groups: list[list[Mapping[str, Json]]]) -> datetime | None:
    """A last-modified instant every match is at or after, when each filter group bounds
    the last-modified date from below (an incremental read's search): the rows to scan are
    then read by index. None: scan every row."""
    name = MODIFIED_PROPERTY[kind]
    floors: list[int] = []
    for group in groups:
        bounds = [
            f.get("value")
            for f in group
            if f.get("propertyName") == name and f.get("operator") in ("EQ", "GT", "GTE", "BETWEEN")
        ]
        try:
            typed = [to_ms(parse_timestamp(str(b))) for b in bounds]
        except (ValueError, OverflowError):
            return None  # _matches reports the bad value
        if not typed:
            return None
        floors.append(max(typed))
    # A record's value is its last-modified instant truncated to the millisecond.
    return from_ms(min(floors)) if floors else None


def _sort_key(name: str, descending: bool) -> Callable[[SimObject], tuple[int, object, int]]:
    def key(obj: SimObject) -> tuple[int, object, int]:
        raw = obj.properties.get(name)
        # Ties come back in no particular order, as in HubSpot; scrambled but stable here.
        scramble = (obj.id * 2654435761) % 2**32
        if raw in (None, ""):
            return (1, 0, scramble)
        assert raw is not None
        value = _typed(name, raw)
        if descending and not isinstance(value, str):
            value = -value
        return (0, value, scramble)

    return key


def search(state: HubSpotState, call: Call) -> tuple[int, Json]:
    kind = call.kind()
    body = call.json()
    groups = _filter_groups(body)
    try:
        limit = int(str(body.get("limit", 10)))
        after = int(str(body.get("after") or 0))
    except ValueError:
        raise bad("limit and after must be integers") from None
    if not 1 <= limit <= SEARCH_LIMIT:
        raise bad(f"limit must be between 1 and {SEARCH_LIMIT}")
    cap = state.search_result_cap
    if after >= cap:
        raise bad(
            f"The search API returns at most {cap} results per query; after={after} is past "
            "it. Narrow the query instead of paging further."
        )
    since = _modified_floor(kind, groups)
    table = state.objects[kind]
    rows = [
        o
        for o in (table.values() if since is None else table.modified_since(since))
        if not o.archived and (not groups or any(all(_matches(o, f) for f in g) for g in groups))
    ]
    sorts = body.get("sorts") or []
    if isinstance(sorts, list) and sorts:
        first = sorts[0]
        if isinstance(first, dict):
            name = str(first.get("propertyName", ""))
            descending = first.get("direction") == "DESCENDING"
        else:
            name, descending = str(first).lstrip("-"), str(first).startswith("-")
        rows.sort(key=_sort_key(name, descending))
    else:
        rows.sort(key=lambda o: o.id)
    raw_properties = body.get("properties") or []
    properties = requested(
        [str(p) for p in raw_properties] if isinstance(raw_properties, list) else [], kind
    )
    window = rows[after : min(after + limit, cap)]
    result: dict[str, Json] = {
        "total": len(rows),
        "results": [render(kind, o, properties) for o in window],
    }
    following = after + len(window)
    if following < len(rows):
        # Offered even at the cap, where using it fails: the pitfall real connectors hit.
        result["paging"] = {"next": {"after": str(following)}}
    return 200, result
