"""Typed records: validation at the edge, rejection with a reason, the rest goes on."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from clm_hub.records import (
    ContactRecord,
    OrderRecord,
    OrderStatus,
    StreamCursor,
    SurveyResponseRecord,
    parse_json_page,
    parse_page,
)


def to_order(row: dict[str, Any]) -> OrderRecord:
    return OrderRecord(
        external_id=row["id"],
        placed_at=datetime.fromisoformat(row["created_at"]),
        total=Decimal(row["total"]),
        currency=row["currency"],
    )


def test_parse_page_rejects_bad_rows_with_reasons_and_keeps_the_rest() -> None:
    rows = [
        {"id": "1", "created_at": "2026-01-02T10:00:00+00:00", "total": "10.50", "currency": "EUR"},
        {"id": "2", "created_at": "2026-01-02T10:00:00+00:00", "total": "-3", "currency": "EUR"},
        {"id": "3", "created_at": "2026-01-02T10:00:00", "total": "1", "currency": "EUR"},
        {"id": "4", "total": "1", "currency": "EUR"},
        {"id": "5", "created_at": "2026-01-02T10:00:00+01:00", "total": "abc", "currency": "EUR"},
        {"id": "6", "created_at": "2026-01-02T10:00:00+02:00", "total": "7", "currency": "EUR"},
    ]
    page = parse_page(rows, to_order, external_id=lambda r: r.get("id"))
    assert [r.external_id for r in page.records] == ["1", "6"]
    assert page.records[1].placed_at == datetime(2026, 1, 2, 8, 0, tzinfo=UTC)
    reasons = {r.external_id: r.reason for r in page.rejected}
    assert set(reasons) == {"2", "3", "4", "5"}
    assert "total" in reasons["2"] and "greater than or equal to 0" in reasons["2"]
    assert "timezone info" in reasons["3"]
    assert "missing field 'created_at'" in reasons["4"]
    assert "InvalidOperation" in reasons["5"]
    assert all(r.payload for r in page.rejected)


def test_contact_fields_are_stripped_and_frozen() -> None:
    contact = ContactRecord(external_id=" 7 ", email="  Ann@Example.com ")
    assert contact.external_id == "7"
    assert contact.email == "Ann@Example.com"  # normalising is the hub's job, not the record's
    with pytest.raises(ValidationError):
        contact.email = "x"  # type: ignore[misc]


def test_order_status_and_currency_are_checked() -> None:
    with pytest.raises(ValidationError, match="currency"):
        OrderRecord(external_id="1", placed_at=datetime.now(UTC), total=Decimal(1), currency="euro")
    order = OrderRecord(
        external_id="1",
        placed_at=datetime.now(UTC),
        total=Decimal(1),
        currency="EUR",
        status=OrderStatus.REFUNDED,
    )
    assert order.status == "refunded"


@pytest.mark.parametrize("score", [-1, 11])
def test_nps_score_outside_0_to_10_is_refused(score: int) -> None:
    with pytest.raises(ValidationError, match="score"):
        SurveyResponseRecord(external_id="r", score=score, answered_at=datetime.now(UTC))


def test_unknown_record_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        ContactRecord(external_id="1", emial="a@b.c")  # type: ignore[call-arg]


ORDER = {"placed_at": "2026-01-02T10:00:00+02:00", "total": "10.50", "currency": "EUR"}


def test_parse_json_page_validates_a_whole_page_in_one_pass() -> None:
    body = json.dumps([{"external_id": str(i), **ORDER} for i in range(3)])
    cursor = StreamCursor(token="next")
    page = parse_json_page(body.encode(), OrderRecord, cursor=cursor)
    assert [r.external_id for r in page.records] == ["0", "1", "2"]
    assert page.records[0].placed_at == datetime(2026, 1, 2, 8, 0, tzinfo=UTC)
    assert page.records[0].placed_at.tzinfo is UTC
    assert page.cursor == cursor and page.rejected == ()


def test_parse_json_page_rejects_bad_rows_with_reasons_and_keeps_the_rest() -> None:
    rows = [
        {"external_id": "1", **ORDER},
        {"external_id": "2", **ORDER, "total": "-3"},
        {"external_id": "3", **ORDER, "placed_at": "2026-01-02T10:00:00"},
        {"external_id": "4", **ORDER, "colour": "red"},
        "not an object",
        {"external_id": "6", **ORDER},
    ]
    page = parse_json_page(json.dumps(rows), OrderRecord)
    assert [r.external_id for r in page.records] == ["1", "6"]
    reasons = {r.external_id: r.reason for r in page.rejected}
    assert reasons["2"] == "total: Input should be greater than or equal to 0"
    assert "timezone info" in reasons["3"]
    assert reasons["4"] == "colour: Extra inputs are not permitted"
    assert None in reasons and len(page.rejected) == 4
    assert json.loads(page.rejected[0].payload)["external_id"] == "2"


def test_parse_json_page_refuses_a_body_that_is_not_an_array() -> None:
    with pytest.raises(ValueError, match="expected a JSON array"):
        parse_json_page(b'{"records": []}', ContactRecord)
    with pytest.raises(ValueError):
        parse_json_page(b"[{", ContactRecord)
