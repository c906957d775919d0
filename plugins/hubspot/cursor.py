"""Where a HubSpot read is, page by page, and how it stays correct past search's 10k cap.

Full syncs page the list endpoint with its opaque ``after`` cursor (keyed on the record id,
so concurrent edits cannot shift it). Incremental syncs use CRM search, whose ``after`` is a
plain offset: it stops with a 400 once ``after + limit`` passes 10,000, and it shifts when a
record already read is modified mid-sync and leaves the result set, silently skipping the
record that slides into the gap. So search is paged by *keyset*, never by offset:

1. At sync start the upper bound is frozen (now minus the index lag); every query filters
   ``lower <= lastmodified <= upper``, sorted ascending by last-modified, ``after`` 0.
2. Each next page re-starts the window at the last timestamp seen (``GTE``: records sharing
   it are read again rather than lost). The 10k cap is never reached, whatever the volume.
3. If a full page shares one timestamp (HubSpot's bulk updates touch thousands of records
   in one millisecond), re-starting there would return the same page forever; the read then
   switches to *tie mode*: ``lastmodified == ts`` paged by ``hs_object_id > last id``, sorted
   by id (the id-keyed pattern of Airbyte's source-hubspot), then carries on with
   ``lastmodified > ts``.

Every step moves the key strictly forward, so paging ends. The whole state is a small frozen
model, serialised as the stream cursor's token, so an interrupted run resumes exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .mapping import ObjectKind
from .vendor import JsonObject, parse_timestamp, to_ms

__all__ = [
    "ReadState",
    "StreamToken",
    "advance",
    "decode_token",
    "list_params",
    "row_marks",
    "search_body",
]


class ReadState(BaseModel):
    """Progress of one object type within one sync."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["list", "search"]
    upper_ms: int
    """Search: the frozen upper bound. List: when the full scan started (minus index lag)."""
    lower_ms: int = 0
    """Search: the key's timestamp (the tie timestamp in tie mode)."""
    lower_inclusive: bool = True
    tie: bool = False
    tie_after_id: int = 0
    after: str | None = None
    """List only: HubSpot's ``after`` cursor of the next page."""
    max_seen_ms: int | None = None

    @property
    def progress_ms(self) -> int | None:
        """A safe ``updated_since`` while this read is under way (``None``: not yet known).

        Search reads in ascending last-modified order, so everything before the key has
        been seen; a list scan is in id order and gives no such guarantee until it ends.
        """
        if self.mode == "list":
            return None
        return self.lower_ms

    def final_ms(self) -> int:
        """The ``updated_since`` to store once this read has finished."""
        if self.mode == "list":
            # Records changed during the scan may sit behind the scan position; the next
            # incremental read must start no later than the scan's start.
            if self.max_seen_ms is None:
                return self.upper_ms
            return min(self.max_seen_ms, self.upper_ms)
        return max(self.lower_ms, self.max_seen_ms or self.lower_ms)


class StreamToken(BaseModel):
    """The opaque token of a stream cursor: the source being read and its state."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    source: str
    state: ReadState
    done: dict[str, int] = Field(default_factory=dict)
    """``updated_since`` reached by sources already finished in this sync."""

    def encode(self) -> str:
        return self.model_dump_json(exclude_defaults=False)


def decode_token(token: str) -> StreamToken | None:
    """The token's state, or ``None`` when it is not one of ours (then the read restarts)."""
    try:
        return StreamToken.model_validate_json(token)
    except ValidationError:
        return None


def list_params(kind: ObjectKind, state: ReadState, *, limit: int) -> dict[str, str | int]:
    """Query string of ``GET /crm/v3/objects/{type}``."""
    params: dict[str, str | int] = {
        "limit": limit,
        "properties": ",".join(kind.properties),
        "archived": "false",
    }
    if state.after is not None:
        params["after"] = state.after
    return params


def search_body(kind: ObjectKind, state: ReadState, *, limit: int) -> JsonObject:
    """Body of ``POST /crm/v3/objects/{type}/search`` for the state's next page."""
    prop = kind.modified_property
    if state.tie:
        filters: list[JsonObject] = [
            {"propertyName": prop, "operator": "GTE", "value": str(state.lower_ms)},
            {"propertyName": prop, "operator": "LTE", "value": str(state.lower_ms)},
            {"propertyName": "hs_object_id", "operator": "GT", "value": str(state.tie_after_id)},
        ]
        sort_by = "hs_object_id"
    else:
        filters = [
            {
                "propertyName": prop,
                "operator": "GTE" if state.lower_inclusive else "GT",
                "value": str(state.lower_ms),
            },
            {"propertyName": prop, "operator": "LTE", "value": str(state.upper_ms)},
        ]
        sort_by = prop
    return {
        "filterGroups": [{"filters": filters}],
        "sorts": [{"propertyName": sort_by, "direction": "ASCENDING"}],
        "properties": list(kind.properties),
        "limit": limit,
        "after": "0",
    }


def row_marks(kind: ObjectKind, rows: Sequence[JsonObject]) -> list[tuple[int, int]]:
    """(last-modified ms, numeric id) of every row that has both; others are skipped here
    (they are rejected, with a reason, when converted to records)."""
    marks: list[tuple[int, int]] = []
    for row in rows:
        props = row.get("properties")
        if not isinstance(props, dict):
            continue
        raw = props.get(kind.modified_property)
        try:
            marks.append((to_ms(parse_timestamp(str(raw))), int(str(row.get("id")))))
        except (TypeError, ValueError):
            continue
    return marks


def advance(
    state: ReadState, marks: Sequence[tuple[int, int]], next_after: str | None
) -> tuple[ReadState, bool]:
    """The state after a page with ``marks`` and HubSpot's ``next_after``, and whether
    another page follows. ``next_after`` only says whether more results match (search) or
    where the list goes on; search itself always pages by key."""
    seen = [ms for ms, _ in marks]
    if state.max_seen_ms is not None:
        seen.append(state.max_seen_ms)
    max_seen = max(seen, default=None)
    if state.mode == "list":
        if next_after is None:
            return state.model_copy(update={"max_seen_ms": max_seen}), False
        return state.model_copy(update={"after": next_after, "max_seen_ms": max_seen}), True
    if state.tie:
        if next_after is None:
            # Every record at the tie timestamp is read; go on strictly after it.
            update: dict[str, object] = {"tie": False, "tie_after_id": 0}
            update |= {"lower_inclusive": False, "max_seen_ms": max_seen}
            return state.model_copy(update=update), True
        last_id = max((ident for _, ident in marks), default=state.tie_after_id)
        return state.model_copy(update={"tie_after_id": last_id, "max_seen_ms": max_seen}), True
    if next_after is None:
        return state.model_copy(update={"max_seen_ms": max_seen}), False
    last_ms = max((ms for ms, _ in marks), default=state.lower_ms)
    if state.lower_inclusive and last_ms <= state.lower_ms:
        # A full page at one timestamp: re-starting there would return the same page.
        return state.model_copy(
            update={"tie": True, "tie_after_id": 0, "max_seen_ms": max_seen}
        ), True
    return state.model_copy(
        update={"lower_ms": last_ms, "lower_inclusive": True, "max_seen_ms": max_seen}
    ), True
