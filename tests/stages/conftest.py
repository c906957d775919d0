"""Fixtures for the stage engine: a migrated store per backend and a shop to fill it by hand."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, delete, insert, select, text
from sqlalchemy.engine import make_url

from clm_hub.stages import StageRules, load_rules, recompute_full
from clm_hub.stages.calibration import Calibration, load_calibration, save_calibration
from clm_hub.store import open_engine, upgrade
from clm_hub.store.tables import metadata
from tests.conftest import postgres_admin_url

T0 = dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC)
"""Day 0 of every hand-made history; ``at(n)`` is noon UTC n days later."""


def at(day: float, hour: int = 12) -> dt.datetime:
    return T0 + dt.timedelta(days=day, hours=hour - 12)


CLEARED = (
    "stage_transition",
    "customer_state",
    "stage_calibration",
    "survey_response",
    "customer_order",
    "customer",
)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def module_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """One migrated database per test module and backend."""
    if request.param == "sqlite":
        engine = open_engine(f"sqlite:///{tmp_path_factory.mktemp('stages')}/store.sqlite3")
        upgrade(engine)
        yield engine
        engine.dispose()
        return
    admin_url = make_url(postgres_admin_url() or "")
    name = f"clm_hub_stages_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # skip like tests/conftest.py does
        admin.dispose()
        pytest.skip(f"PostgreSQL is not usable: {exc}")
    engine = open_engine(admin_url.set(database=name).render_as_string(hide_password=False))
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def store(module_store: Engine) -> Engine:
    """The module's database, emptied."""
    with module_store.begin() as connection:
        for table in CLEARED:
            connection.execute(delete(metadata.tables[table]))
    return module_store


class Shop:
    """Writes hand-made customers, orders and survey answers into the store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._next = 0

    def _id(self) -> str:
        self._next += 1
        return str(self._next)

    def customer(
        self, email: str | None = None, *, created: float = 0, channel: str | None = None
    ) -> int:
        with self.engine.begin() as connection:
            result = connection.execute(
                insert(metadata.tables["customer"]).values(
                    email=email or f"c{self._id()}@shop.test",
                    created_at=at(created),
                    updated_at=at(created),
                    acquisition_channel=channel,
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def order(
        self,
        customer_id: int | None,
        day: float,
        total: str = "50",
        *,
        status: str = "paid",
        refunded: str = "0",
        currency: str = "EUR",
        hour: int = 12,
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(metadata.tables["customer_order"]).values(
                    source="shop",
                    external_id=self._id(),
                    customer_id=customer_id,
                    placed_at=at(day, hour),
                    total=Decimal(total),
                    refunded=Decimal(refunded),
                    currency=currency,
                    status=status,
                    content_hash="h",
                )
            )

    def answer(self, customer_id: int, score: int, day: float) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(metadata.tables["survey_response"]).values(
                    source="survey",
                    external_id=self._id(),
                    customer_id=customer_id,
                    score=score,
                    answered_at=at(day),
                    content_hash="h",
                )
            )

    def buyer(self, *days: float, total: str = "50", email: str | None = None) -> int:
        """A customer with one paid order on each of ``days``."""
        customer = self.customer(email)
        for day in days:
            self.order(customer, day, total)
        return customer

    def state(self, customer_id: int) -> dict[str, object]:
        table = metadata.tables["customer_state"]
        with self.engine.connect() as connection:
            row = connection.execute(select(table).where(table.c.customer_id == customer_id))
            return dict(row.mappings().one())

    def stage(self, customer_id: int) -> str:
        return str(self.state(customer_id)["stage"])

    def transitions(self, customer_id: int) -> list[tuple[object, ...]]:
        table = metadata.tables["stage_transition"]
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(table.c.from_stage, table.c.to_stage, table.c.at, table.c.reason)
                .where(table.c.customer_id == customer_id)
                .order_by(table.c.id)
            )
            return [tuple(row) for row in rows]


@pytest.fixture
def shop(store: Engine) -> Shop:
    return Shop(store)


@pytest.fixture(scope="session")
def rules() -> StageRules:
    return load_rules()


def with_models(
    engine: Engine, rules: StageRules, calibration_update: dict[str, Any]
) -> Calibration:
    """Store a copy of the newest calibration with some parts replaced (e.g. fitted models)."""
    import dataclasses

    with engine.begin() as connection:
        current = load_calibration(connection, rules)
        assert current is not None
        return save_calibration(connection, dataclasses.replace(current, **calibration_update))


def full(engine: Engine, rules: StageRules, day: float) -> None:
    recompute_full(engine, rules, now=at(day))


CDNOW = Path(__file__).resolve().parents[1] / "data" / "cdnow" / "CDNOW_sample.txt"
"""The CDNOW sample (tests/data/cdnow): real purchase histories for model fits."""
CALIBRATION_END = dt.date(1997, 9, 30)


@pytest.fixture(scope="module")
def cdnow_store(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The CDNOW sample's calibration period (to 1997-09-30) as customers and paid orders."""
    engine = open_engine(f"sqlite:///{tmp_path_factory.mktemp('cdnow')}/store.sqlite3")
    upgrade(engine)
    rows = [line.split() for line in CDNOW.read_text().splitlines() if line.strip()]
    orders = []
    for n, row in enumerate(rows):
        day = dt.date(int(row[2][:4]), int(row[2][4:6]), int(row[2][6:]))
        if day <= CALIBRATION_END:
            placed = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
            orders.append({"source": "cdnow", "external_id": str(n), "customer_id": int(row[1]),
                           "placed_at": placed, "total": Decimal(row[4]), "currency": "USD",
                           "status": "paid", "content_hash": "h"})  # fmt: skip
    moment = dt.datetime(1997, 1, 1, tzinfo=dt.UTC)
    customers = sorted({int(str(o["customer_id"])) for o in orders})
    with engine.begin() as connection:
        connection.execute(insert(metadata.tables["customer"]), [
            {"id": c, "email": f"{c}@cdnow.test", "created_at": moment, "updated_at": moment}
            for c in customers
        ])  # fmt: skip
        connection.execute(insert(metadata.tables["customer_order"]), orders)
    return engine
