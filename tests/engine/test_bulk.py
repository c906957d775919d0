"""Driver-level bulk writes and lookups store exactly what SQLAlchemy Core would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from clm_hub.linking import customer_t, order_t
from clm_hub.store.bulk import (
    _processor,
    bulk_insert,
    bulk_update,
    chunks,
    insert_columns,
    select_in,
)

MOMENTS = [
    datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC),  # no microseconds: the tricky case
    datetime(2026, 3, 1, 12, 0, 0, 7, tzinfo=UTC),
    datetime(999, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    datetime(2026, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2026, 3, 1, 0, 30, 0, 500000, tzinfo=timezone(timedelta(hours=2))),
]
AMOUNTS = [Decimal("0"), Decimal("12.34"), Decimal("0.0001"), Decimal("1E+3"), 7]


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.psycopg.dialect()])
def test_direct_processors_match_sqlalchemy(dialect: Any) -> None:
    for column, values in (
        (order_t.c.placed_at, MOMENTS),
        (order_t.c.total, AMOUNTS),
    ):
        ours = _processor(column, dialect)
        assert ours is not None
        theirs = column.type.dialect_impl(dialect).bind_processor(dialect)
        assert [ours(v) for v in values] == [theirs(v) for v in values], column.name


def test_direct_processors_refuse_what_sqlalchemy_refuses() -> None:
    dialect = sqlite.dialect()
    with pytest.raises(ValueError, match="naive"):
        _processor(order_t.c.placed_at, dialect)(datetime(2026, 1, 1))  # type: ignore[misc]
    with pytest.raises(ValueError, match="4 decimal places"):
        _processor(order_t.c.total, dialect)(Decimal("0.00001"))  # type: ignore[misc]


def test_chunks_split_any_iterable() -> None:
    assert [len(c) for c in chunks(range(2000))] == [900, 900, 200]
    assert list(chunks({"a": 1, "b": 2}, 1)) == [["a"], ["b"]]
    assert list(chunks([])) == []


def _customer(i: int, moment: datetime) -> dict[str, Any]:
    return {"email": f"p{i}@example.com", "created_at": moment, "updated_at": moment}


def test_bulk_rows_read_back_like_core_rows(store: Engine) -> None:
    now = MOMENTS[0]
    with store.begin() as conn:
        conn.execute(insert(customer_t), [_customer(i, m) for i, m in enumerate(MOMENTS)])
        bulk_insert(conn, customer_t, [_customer(i, m) for i, m in enumerate(MOMENTS)])
        insert_columns(
            conn,
            customer_t,
            {
                "email": [f"p{i}@example.com" for i in range(len(MOMENTS))],
                "created_at": MOMENTS,
                "updated_at": [now] * len(MOMENTS),  # one value in every row
            },
        )
        rows = conn.execute(
            select(customer_t.c.email, customer_t.c.created_at).order_by(customer_t.c.id)
        ).all()
    n = len(MOMENTS)
    assert rows[:n] == rows[n : 2 * n] == rows[2 * n :]
    assert [r.created_at for r in rows[:n]] == [m.astimezone(UTC) for m in MOMENTS]


def test_bulk_update_and_select_in(store: Engine) -> None:
    with store.begin() as conn:
        bulk_insert(conn, customer_t, [_customer(i, MOMENTS[0]) for i in range(2000)])
        ids = [i for (i,) in conn.execute(select(customer_t.c.id).order_by(customer_t.c.id))]
        bulk_update(conn, customer_t, [{"email": None, "id": i} for i in ids[::2]])
        found = select_in(
            conn, "SELECT id, email FROM customer WHERE updated_at IS NOT NULL AND id IN", ids
        )
        emails = {i: email for i, email in found}
        assert len(emails) == 2000
        assert emails[ids[0]] is None and emails[ids[1]] == "p1@example.com"
        assert select_in(conn, "SELECT id FROM customer WHERE id IN", []) == []
        params = select_in(
            conn, "SELECT id FROM customer WHERE email = ? AND id IN", ids, ["p3@example.com"]
        )
        assert params == [(ids[3],)]


def test_whole_column_timestamps_match_the_per_value_processor() -> None:
    """The column converter (pydantic-core's ISO text, re-cut) stores exactly what the
    per-value processor does, for UTC values, other offsets and missing values alike."""
    from pydantic import TypeAdapter

    from clm_hub.store.bulk import _sqlite_utc_text, _sqlite_utc_texts

    parsed = TypeAdapter(list[datetime]).validate_json(
        b'["2026-03-01T12:00:00Z", "2026-03-01T12:00:00.000007Z", "2026-03-01T12:00:00+02:00"]'
    )  # pydantic's own zero-offset tzinfo, not ``UTC``
    column = [*MOMENTS, None, *parsed, datetime(2026, 3, 1, tzinfo=timezone(timedelta(seconds=30)))]
    expected = [None if v is None else _sqlite_utc_text(v) for v in column]
    assert _sqlite_utc_texts(column) == expected
    assert expected[-2] == "2026-03-01 10:00:00.000000"
    with pytest.raises(ValueError, match="naive"):
        _sqlite_utc_texts([MOMENTS[0], datetime(2026, 1, 1)])
