"""Typed records that connectors yield to the hub and receive from it.

A connector parses its tool's JSON into these at the edge; the core never sees vendor
payloads. Records are frozen pydantic models so that validation (and rejection of a
malformed row, with its reason) happens in exactly one place.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Annotated, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

__all__ = [
    "ContactRecord",
    "OrderRecord",
    "OrderStatus",
    "Page",
    "PushChange",
    "PushOutcome",
    "PushStatus",
    "Record",
    "Rejection",
    "StreamCursor",
    "SurveyResponseRecord",
    "parse_json_page",
    "parse_page",
]


def _as_utc(value: datetime) -> datetime:
    """Any other offset becomes UTC, so equal instants serialise (and hash) alike.

    Runs for every timestamp of every page: the zero-offset test is the cheap usual case
    (pydantic's parsed ``Z`` carries its own zero-offset tzinfo, not ``UTC``).
    """
    return value if not value.utcoffset() else value.astimezone(UTC)


# Naive timestamps are ambiguous across tools: refused (in pydantic's compiled validator)
# rather than guessed.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
ExternalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class ContactRecord(_Record):
    """A person as one tool knows them. Email and phone are kept raw; the hub normalises."""

    external_id: ExternalId
    email: Text | None = None
    phone: Text | None = None
    first_name: Text | None = None
    last_name: Text | None = None
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None
    marketing_consent: bool | None = None
    tags: tuple[str, ...] = ()
    """Every tag the tool shows on the person, ours and foreign: needed to never touch foreign
    ones and to recognise our own writes coming back."""
    acquisition_channel: Text | None = None
    deleted: bool = False


class OrderStatus(StrEnum):
    """What an order means for revenue. Only ``paid`` orders count as purchases."""

    PAID = "paid"
    PENDING = "pending"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
    CANCELLED = "cancelled"


class OrderRecord(_Record):
    """An order, linked to its buyer by the tool's customer id and/or the buyer's email."""

    external_id: ExternalId
    customer_external_id: ExternalId | None = None
    email: Text | None = None
    placed_at: UtcDatetime
    updated_at: UtcDatetime | None = None
    total: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)]
    refunded: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)] = Decimal(0)
    currency: Currency
    status: OrderStatus = OrderStatus.PAID
    deleted: bool = False


class SurveyResponseRecord(_Record):
    """One answer to a 0-10 recommendation (NPS) question."""

    external_id: ExternalId
    customer_external_id: ExternalId | None = None
    email: Text | None = None
    survey_id: Text | None = None
    score: Annotated[int, Field(ge=0, le=10)]
    answered_at: UtcDatetime
    comment: Annotated[str, StringConstraints(max_length=4000)] | None = None


Record = ContactRecord | OrderRecord | SurveyResponseRecord
R = TypeVar("R", ContactRecord, OrderRecord, SurveyResponseRecord)


class StreamCursor(_Record):
    """Where a stream resumes: a last-modified timestamp, an opaque token, or both.

    The hub stores it in the same transaction as the page it follows and subtracts a small
    overlap from ``updated_since`` when resuming, so records sharing the boundary are not lost.
    """

    updated_since: UtcDatetime | None = None
    token: str | None = None


class Rejection(_Record):
    """A row a connector could not turn into a record, kept with its reason for inspection."""

    external_id: str | None
    reason: str
    payload: str = ""


class Page(BaseModel, Generic[R]):
    """One page of records, the cursor to resume after it, and the rows that were rejected."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    records: Sequence[R]
    cursor: StreamCursor | None = None
    rejected: Sequence[Rejection] = ()


RowT = TypeVar("RowT")


def parse_page(
    rows: Iterable[RowT],
    convert: Callable[[RowT], R],
    *,
    external_id: Callable[[RowT], str | None],
    cursor: StreamCursor | None = None,
    describe: Callable[[RowT], str] = repr,
) -> Page[R]:
    """Convert vendor rows into records; a row that fails keeps its reason and the rest go on."""
    records: list[R] = []
    rejected: list[Rejection] = []
    for row in rows:
        try:
            records.append(convert(row))
        except (ValidationError, ValueError, KeyError, TypeError, ArithmeticError) as exc:
            try:
                ident = external_id(row)
            except (KeyError, TypeError, AttributeError):
                ident = None
            rejected.append(
                Rejection(
                    external_id=None if ident is None else str(ident),
                    reason=_reason(exc),
                    payload=describe(row)[:4000],
                )
            )
    return Page[R](records=records, cursor=cursor, rejected=rejected)


def parse_json_page(
    body: bytes | str,
    record_type: type[R],
    *,
    cursor: StreamCursor | None = None,
) -> Page[R]:
    """Parse and validate a JSON array of rows already in ``record_type``'s shape.

    The whole array is parsed and validated in one call into pydantic's compiled
    validator, several times cheaper than a record at a time; only a page holding a bad
    row is gone through row by row, so that the row is rejected with its reason and the
    rest goes on. Raises ``ValueError`` when the body is not a JSON array.
    """
    try:
        records = _list_of(record_type).validate_json(body)
    except ValidationError:
        pass
    else:
        return Page[R](records=records, cursor=cursor)
    rows = json.loads(body)
    if not isinstance(rows, list):
        raise ValueError(f"expected a JSON array of records, got {type(rows).__name__}")

    def convert(row: object) -> R:
        # Validate as JSON again, so a row means exactly what it meant in the array.
        return record_type.model_validate_json(json.dumps(row))

    def external_id(row: object) -> str | None:
        ident = row.get("external_id") if isinstance(row, dict) else None
        return None if ident is None else str(ident)

    return parse_page(rows, convert, external_id=external_id, cursor=cursor, describe=json.dumps)


@cache
def _list_of(record_type: type[R]) -> TypeAdapter[list[R]]:
    return TypeAdapter(list[record_type])  # type: ignore[valid-type]


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        )
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    return f"{type(exc).__name__}: {exc}"


class PushChange(_Record):
    """What the hub wants changed on one record in one tool: owned tags and owned fields.

    ``set_fields`` maps a field to its new value, ``None`` meaning clear it. Every change
    is relative to the last state the hub pushed successfully.
    """

    external_id: ExternalId
    add_tags: frozenset[str] = frozenset()
    remove_tags: frozenset[str] = frozenset()
    set_fields: dict[str, str | None] = Field(default_factory=dict)


class PushStatus(StrEnum):
    """A per-record push result: ``ok`` lands, ``retry`` is tried again later, ``failed`` not."""

    OK = "ok"
    RETRY = "retry"
    FAILED = "failed"


class PushOutcome(_Record):
    """The tool's verdict on one record of a push batch, with its reason when not ok."""

    external_id: ExternalId
    status: PushStatus
    reason: str | None = None


def now_utc() -> datetime:
    """The current time, always aware and in UTC."""
    return datetime.now(UTC)
