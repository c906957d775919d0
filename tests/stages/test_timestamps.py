"""Timestamps the stage engine writes compare with those SQLAlchemy writes (SQLite text)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text, update

from clm_hub.stages import StageRules, recompute_full
from clm_hub.store.tables import metadata

from .conftest import Shop, at


def test_equal_instants_are_equal_whatever_wrote_them(shop: Shop, rules: StageRules) -> None:
    engine: Engine = shop.engine
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL stores timestamps as timestamptz, not text")
    customer = shop.buyer(0)
    moment = at(10)  # whole seconds: where sqlite3's own adapter drops '.000000'
    recompute_full(engine, rules, now=moment)
    with engine.begin() as conn:
        conn.execute(
            update(metadata.tables["customer"])
            .where(metadata.tables["customer"].c.id == customer)
            .values(updated_at=moment)
        )
        stored, same = conn.execute(
            text(
                "SELECT s.computed_at, s.computed_at = c.updated_at FROM customer_state AS s "
                "JOIN customer AS c ON c.id = s.customer_id WHERE c.id = :id"
            ),
            {"id": customer},
        ).one()
    assert stored == "2025-01-11 12:00:00.000000"
    assert same == 1  # so "computed after the last change" holds at the same instant
