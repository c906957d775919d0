"""Incremental cycles leave exactly what a full recompute (same calibration) would.

After each incremental cycle, a full recompute at the same moment against the same calibration
must change nothing: same stages, since-times, segments, scores, features and due times, and no
new transitions. ``p_alive`` and ``expected_value`` are left out: they are snapshots as of
``computed_at`` by design (see clm_hub.stages.engine).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.pool import StaticPool

from clm_hub.analytics.btyd import BgNbdParams
from clm_hub.stages import StageRules, load_rules, recompute_full, recompute_incremental
from clm_hub.stages.config import TimeSpan
from clm_hub.stages.models import Models
from clm_hub.store.tables import metadata
from tests.stages.conftest import Shop, at, with_models

SNAPSHOT_SKIP = {"computed_at", "p_alive", "expected_value"}
RULES = load_rules()
CDNOW = Models(BgNbdParams(0.243, 4.414, 0.793, 2.426, 0.0, 1, "weeks"), None, "test", 0.3,
               TimeSpan(52, "weeks"), 12, 0.01)  # fmt: skip


def snapshot(engine: Engine) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    states = metadata.tables["customer_state"]
    moves = metadata.tables["stage_transition"]
    with engine.connect() as connection:
        rows = connection.execute(select(states).order_by(states.c.customer_id)).mappings()
        state = [{k: v for k, v in row.items() if k not in SNAPSHOT_SKIP} for row in rows]
        history = connection.execute(
            select(moves.c.customer_id, moves.c.from_stage, moves.c.to_stage, moves.c.at,
                   moves.c.reason).order_by(moves.c.id)
        ).all()  # fmt: skip
    return state, [tuple(r) for r in history]


def assert_incremental_equals_full(
    engine: Engine, rules: StageRules, now: dt.datetime, changed: set[int]
) -> None:
    recompute_incremental(engine, rules, now=now, changed_customer_ids=changed)
    after_incremental = snapshot(engine)
    recompute_full(engine, rules, now=now, recalibrate=False)
    assert snapshot(engine) == after_incremental


def memory_store() -> Engine:
    engine = create_engine("sqlite://", poolclass=StaticPool)
    metadata.create_all(engine)
    return engine


order_days = st.lists(st.integers(0, 300), max_size=4)
step = st.fixed_dictionaries({
    "advance": st.integers(0, 200),
    "orders": st.lists(st.tuples(st.integers(0, 7), st.integers(0, 30)), max_size=3),
    "answers": st.lists(st.tuples(st.integers(0, 7), st.integers(0, 10)), max_size=2),
    "refund": st.booleans(),
})  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    histories=st.lists(order_days, min_size=1, max_size=6),
    steps=st.lists(step, min_size=1, max_size=4),
    model=st.booleans(),
)
def test_incremental_cycles_equal_a_full_recompute(
    histories: list[list[int]], steps: list[dict[str, Any]], model: bool
) -> None:
    engine = memory_store()
    shop = Shop(engine)
    customers = [shop.buyer(*days) for days in histories]
    now = 310.0
    recompute_full(engine, RULES, now=at(now))
    if model:
        with_models(engine, RULES, {"models": CDNOW})
        recompute_full(engine, RULES, now=at(now), recalibrate=False)
    for change in steps:
        changed: set[int] = set()
        now += change["advance"]
        for index, days_ago in change["orders"]:
            while index >= len(customers):
                customers.append(shop.customer())
                changed.add(customers[-1])
            customer = customers[index]
            shop.order(customer, now - days_ago, "70")
            changed.add(customer)
        for index, score in change["answers"]:
            customer = customers[index % len(customers)]
            shop.answer(customer, score, now)
            changed.add(customer)
        if change["refund"]:
            with engine.begin() as connection:
                refunded = connection.exec_driver_sql(
                    "UPDATE customer_order SET status = 'refunded' WHERE id = "
                    "(SELECT MIN(id) FROM customer_order WHERE status = 'paid') "
                    "RETURNING customer_id"
                ).scalar()
            if refunded is not None:
                changed.add(int(refunded))
        assert_incremental_equals_full(engine, RULES, at(now, hour=13), changed)


def test_incremental_equals_full_on_both_backends(shop: Shop, rules: StageRules) -> None:
    customers = [shop.buyer(0), shop.buyer(0, 40), shop.buyer(0, 130), shop.customer()]
    recompute_full(shop.engine, rules, now=at(50))
    shop.order(customers[3], 55)
    assert_incremental_equals_full(shop.engine, rules, at(125), {customers[3]})


def test_incremental_cycle_picks_only_changed_and_due_customers(
    shop: Shop, rules: StageRules
) -> None:
    due, quiet, changed = shop.buyer(0), shop.buyer(50), shop.buyer(50)
    recompute_full(shop.engine, rules, now=at(55))
    shop.order(changed, 58)
    result = recompute_incremental(shop.engine, rules, now=at(60), changed_customer_ids=[changed])
    assert (result.customers, result.due, result.transitions) == (2, 1, 2)
    assert (shop.stage(due), shop.stage(quiet), shop.stage(changed)) == ("at-risk", "new", "loyal")
