"""The canonical store: migrations, constraints and column types on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from clm_hub.store import current_revision, head_revision, upgrade
from clm_hub.store.tables import Customer, Order, SourceIdentity, SyncCursor, metadata

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def migrated(engine: Engine) -> Engine:
    upgrade(engine)
    return engine


def test_upgrade_creates_every_table_at_head(migrated: Engine) -> None:
    tables = set(inspect(migrated).get_table_names())
    assert set(metadata.tables) <= tables
    assert current_revision(migrated) == head_revision()


def test_upgrade_twice_changes_nothing(migrated: Engine) -> None:
    upgrade(migrated)
    assert current_revision(migrated) == head_revision()


def test_migrations_match_the_table_definitions(migrated: Engine) -> None:
    with migrated.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == []


def _customer(session: Session) -> int:
    customer = Customer(email="ann@example.com", created_at=NOW, updated_at=NOW)
    session.add(customer)
    session.flush()
    assert customer.id is not None
    return customer.id


def test_source_identity_is_unique_per_source_and_external_id(migrated: Engine) -> None:
    row = {
        "source": "shop",
        "external_id": "42",
        "tags": [],
        "content_hash": "h",
        "first_seen_at": NOW,
        "last_seen_at": NOW,
    }
    with migrated.begin() as connection:
        connection.execute(insert(SourceIdentity), [row, {**row, "source": "crm"}])
    with pytest.raises(IntegrityError), migrated.begin() as connection:
        connection.execute(insert(SourceIdentity), [row])


def test_order_is_unique_per_source_and_external_id(migrated: Engine) -> None:
    row = {
        "source": "shop",
        "external_id": "1001",
        "placed_at": NOW,
        "total": Decimal("10"),
        "currency": "EUR",
        "status": "paid",
        "content_hash": "h",
    }
    with migrated.begin() as connection:
        connection.execute(insert(Order), [row])
    with pytest.raises(IntegrityError), migrated.begin() as connection:
        connection.execute(insert(Order), [row])


def test_sync_cursor_is_unique_per_connector_stream(migrated: Engine) -> None:
    row = {"connector": "shop", "stream": "orders", "version": 1, "updated_at": NOW}
    with migrated.begin() as connection:
        connection.execute(insert(SyncCursor), [row])
    with pytest.raises(IntegrityError), migrated.begin() as connection:
        connection.execute(insert(SyncCursor), [row])


def test_money_round_trips_exactly(migrated: Engine) -> None:
    amounts = [Decimal("0.1"), Decimal("0.2"), Decimal("19.9999"), Decimal("123456789.0001")]
    rows = [
        {
            "source": "shop",
            "external_id": str(i),
            "placed_at": NOW,
            "total": amount,
            "currency": "EUR",
            "status": "paid",
            "content_hash": "h",
        }
        for i, amount in enumerate(amounts)
    ]
    with migrated.begin() as connection:
        connection.execute(insert(Order), rows)
        stored = (
            connection.execute(select(col(Order.total)).order_by(col(Order.id))).scalars().all()
        )
    assert stored == amounts
    assert sum(stored) == sum(amounts)


def test_money_refuses_sub_unit_precision(migrated: Engine) -> None:
    row = {
        "source": "shop",
        "external_id": "x",
        "placed_at": NOW,
        "total": Decimal("0.00001"),
        "currency": "EUR",
        "status": "paid",
        "content_hash": "h",
    }
    with pytest.raises(Exception, match="more than 4 decimal places"), migrated.begin() as conn:
        conn.execute(insert(Order), [row])


def test_timestamps_come_back_aware_in_utc(migrated: Engine) -> None:
    paris = timezone(timedelta(hours=1))
    with Session(migrated) as session:
        customer_id = _customer(session)
        session.commit()
        customer = session.get(Customer, customer_id)
        assert customer is not None
        customer.updated_at = datetime(2026, 3, 1, 13, 0, tzinfo=paris)
        session.commit()
    with Session(migrated) as session:
        customer = session.get(Customer, customer_id)
        assert customer is not None
        assert customer.updated_at == NOW
        assert customer.updated_at.tzinfo is not None
        assert customer.updated_at.utcoffset() == timedelta(0)


def test_naive_timestamps_are_refused(migrated: Engine) -> None:
    with Session(migrated) as session:
        session.add(Customer(created_at=datetime(2026, 1, 1), updated_at=NOW))
        with pytest.raises(Exception, match="naive datetime"):
            session.flush()


def test_bulk_writes_store_values_exactly_as_the_orm_does(migrated: Engine) -> None:
    from sqlalchemy import text

    from clm_hub.store.bulk import bulk_insert

    moment = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)  # no microseconds: the tricky case
    row = {"email": None, "created_at": moment, "updated_at": moment}
    with migrated.begin() as connection:
        connection.execute(insert(Customer), [row])
        bulk_insert(connection, Customer.__table__, [row])  # type: ignore[attr-defined]
        stored = connection.execute(text("SELECT created_at FROM customer ORDER BY id")).all()
    assert stored[0] == stored[1]
