"""The page writer: one transaction per batch of pages, with the cursor of the last."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select

from clm_hub.cursors import cursor_t
from clm_hub.identity import IdentityRules
from clm_hub.ingest import PageCounts, PageWriter, Stream, rejected_t
from clm_hub.linking import IdentityContext, identity_t, order_t, response_t
from clm_hub.records import (
    ContactRecord,
    OrderRecord,
    OrderStatus,
    Page,
    Rejection,
    StreamCursor,
    SurveyResponseRecord,
)

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def order(ext: str, total: str) -> OrderRecord:
    return OrderRecord(
        external_id=ext, email=f"{ext}@example.com", placed_at=NOW, total=Decimal(total),
        currency="EUR",
    )  # fmt: skip


def context(now: datetime) -> IdentityContext:
    return IdentityContext("shop", IdentityRules(), None, now)


def test_pages_written_together_land_with_the_last_cursor(store: Engine) -> None:
    first = Page[OrderRecord](
        records=[order("1", "10"), order("2", "20")],
        cursor=StreamCursor(updated_since=datetime(2026, 4, 1, tzinfo=UTC)),
        rejected=[Rejection(external_id="x", reason="bad")],
    )
    second = Page[OrderRecord](
        records=[order("2", "25"), order("3", "30")],
        cursor=StreamCursor(updated_since=datetime(2026, 4, 2, tzinfo=UTC)),
    )
    writer = PageWriter(store, now=lambda: NOW)
    counts = writer.write_pages(
        context, "orders", [first, second], run_row_id=None, run_id="r", cursor_version=1
    )
    assert (counts.pages, counts.read, counts.inserted, counts.rejected) == (2, 5, 3, 1)
    with store.connect() as conn:
        totals = {e: t for e, t in conn.execute(select(order_t.c.external_id, order_t.c.total))}
        cursor = conn.execute(select(cursor_t.c.updated_since)).scalar_one()
    assert totals == {"1": Decimal(10), "2": Decimal(25), "3": Decimal(30)}  # the later copy
    assert cursor == datetime(2026, 4, 2, tzinfo=UTC)


def test_a_failed_batch_leaves_neither_its_records_nor_its_cursor(store: Engine) -> None:
    good = Page[OrderRecord](records=[order("1", "10")], cursor=StreamCursor(updated_since=NOW))
    # Past validation (as a buggy connector might build it): fails inside the transaction,
    # after the first page's buyer was linked.
    unstorable = OrderRecord.model_construct(
        external_id="2", placed_at=NOW, total=Decimal("0.00001"), refunded=Decimal(0),
        currency="EUR", status=OrderStatus.PAID, deleted=False, email=None,
        customer_external_id=None, updated_at=None,
    )  # fmt: skip
    bad = Page[OrderRecord].model_construct(
        records=[unstorable], cursor=StreamCursor(updated_since=NOW), rejected=()
    )
    writer = PageWriter(store, now=lambda: NOW)
    with pytest.raises(ValueError, match="4 decimal places"):
        writer.write_pages(
            context, "orders", [good, bad], run_row_id=None, run_id="r", cursor_version=1
        )
    with store.connect() as conn:
        assert conn.execute(select(order_t.c.id)).all() == []
        assert conn.execute(select(identity_t.c.id)).all() == []
        assert conn.execute(select(cursor_t.c.updated_since)).all() == []


def answer(ext: str, *, respondent: str, email: str | None) -> SurveyResponseRecord:
    return SurveyResponseRecord(
        external_id=ext, customer_external_id=respondent, email=email, score=9, answered_at=NOW
    )


def write(store: Engine, source: str, stream: Stream, *records: Any) -> PageCounts:
    def ctx(now: datetime) -> IdentityContext:
        return IdentityContext(source, IdentityRules(), None, now)

    page = Page[Any](records=list(records))
    writer = PageWriter(store, now=lambda: NOW)
    return writer.write_pages(ctx, stream, [page], run_row_id=None, run_id="r", cursor_version=1)


def test_a_respondent_known_by_id_joins_their_customer_once_an_answer_names_the_email(
    store: Engine,
) -> None:
    write(store, "shop", "contacts", ContactRecord(external_id="7", email="ana@example.com"))
    write(store, "survey", "survey_responses", answer("r1", respondent="C-42", email=None))
    with store.connect() as conn:
        shop_customer = conn.execute(
            select(identity_t.c.customer_id).where(identity_t.c.source == "shop")
        ).scalar_one()
        first = conn.execute(select(response_t.c.customer_id)).scalar_one()
    assert first != shop_customer  # nothing tells yet who C-42 is

    counts = write(
        store,
        "survey",
        "survey_responses",
        answer("r2", respondent="C-42", email="Ana@Example.com"),
    )
    assert counts.merges == 1
    with store.connect() as conn:
        owners = set(conn.execute(select(response_t.c.customer_id)).scalars())
    assert owners == {shop_customer}  # both answers now belong to Ana

    again = write(
        store,
        "survey",
        "survey_responses",
        answer("r3", respondent="C-42", email="ana@example.com"),
    )
    assert again.merges == 0  # the placeholder already knows the email: nothing to resolve


def test_a_record_rejected_again_on_a_re_read_is_kept_once(store: Engine) -> None:
    def page(reason: str) -> Page[OrderRecord]:
        return Page[OrderRecord](
            records=[order("1", "10")],
            rejected=[
                Rejection(external_id="bad", reason=reason),
                Rejection(external_id=None, reason="x"),
            ],
        )

    writer = PageWriter(store, now=lambda: NOW)
    for reason in ("no total", "no total", "no currency"):
        counts = writer.write_pages(
            context, "orders", [page(reason)], run_row_id=None, run_id="r", cursor_version=1
        )
        assert counts.rejected == 2  # each run still says what it saw
    with store.connect() as conn:
        kept = conn.execute(
            select(rejected_t.c.external_id, rejected_t.c.reason).order_by(rejected_t.c.id)
        ).all()
    assert [tuple(row) for row in kept] == [
        ("bad", "no total"), (None, "x"), (None, "x"), ("bad", "no currency"), (None, "x"),
    ]  # fmt: skip
