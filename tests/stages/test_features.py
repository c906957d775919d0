"""Per-customer features computed in SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
import statistics
from decimal import Decimal

import pytest

from clm_hub.stages.config import StageRules
from clm_hub.stages.engine import compute_features
from clm_hub.stages.features import FeatureFrame, MoneySpec, currency_counts
from clm_hub.stages.sql import Backend
from tests.stages.conftest import Shop, at, full

EUR = MoneySpec("EUR", {})


def _features(shop: Shop, money: MoneySpec = EUR) -> FeatureFrame:
    with shop.engine.connect() as connection:
        return compute_features(connection, money)


def test_partial_refund_counts_net_of_the_refund(shop: Shop) -> None:
    customer = shop.customer()
    shop.order(customer, 0, "100", status="partially_refunded", refunded="30")
    assert _features(shop).revenue.tolist() == [70.0]


def test_refunded_cancelled_and_pending_orders_do_not_count(shop: Shop) -> None:
    customer = shop.customer()
    for status in ("refunded", "cancelled", "pending"):
        shop.order(customer, 0, status=status)
    features = _features(shop)
    assert (features.orders[0], features.revenue[0]) == (0, 0.0)


def test_orders_in_another_currency_are_ignored_and_counted(shop: Shop) -> None:
    customer = shop.customer()
    shop.order(customer, 0, "40")
    shop.order(customer, 1, "999", currency="USD")
    assert _features(shop).revenue.tolist() == [40.0]
    with shop.engine.connect() as connection:
        assert currency_counts(Backend(connection)) == {"EUR": 1, "USD": 1}


def test_a_configured_rate_converts_another_currency(shop: Shop) -> None:
    customer = shop.customer()
    shop.order(customer, 0, "40")
    shop.order(customer, 1, "100", currency="USD")
    assert _features(shop, MoneySpec("EUR", {"USD": 0.5})).revenue.tolist() == [90.0]


def test_median_gap_of_four_purchase_days_is_the_middle_gap(shop: Shop) -> None:
    shop.buyer(0, 10, 40, 60)  # gaps 10, 30, 20
    assert _features(shop).median_gap.tolist() == [20.0]


def test_median_gap_of_an_even_number_of_gaps_is_the_mean_of_the_middle_two(shop: Shop) -> None:
    shop.buyer(0, 10, 30, 60, 100)  # gaps 10, 20, 30, 40
    assert _features(shop).median_gap.tolist() == [25.0]


def test_day_columns_give_first_second_previous_and_last_purchase(shop: Shop) -> None:
    shop.buyer(0, 5, 20, 50)
    f = _features(shop)
    first = f.first_day[0]
    days = [f.second_day[0] - first, f.prev_day[0] - first, f.last_day[0] - first]
    assert days == [5.0, 20.0, 50.0]
    assert f.gap_before_last.tolist() == [30.0]


def test_prospect_has_no_days(shop: Shop) -> None:
    shop.customer()
    f = _features(shop)
    assert f.purchase_days.tolist() == [0]
    assert math.isnan(f.first_day[0]) and math.isnan(f.median_gap[0])


def test_latest_survey_answer_wins(shop: Shop) -> None:
    customer = shop.customer()
    shop.answer(customer, 3, 0)
    shop.answer(customer, 10, 5)
    assert _features(shop).nps_score.tolist() == [10.0]


def test_repeat_revenue_leaves_out_the_first_purchase_day(shop: Shop) -> None:
    customer = shop.customer()
    shop.order(customer, 0, "100")
    shop.order(customer, 0, "20", hour=18)
    shop.order(customer, 3, "30")
    assert _features(shop).repeat_revenue.tolist() == [30.0]


Order = tuple[float, int, str, str, str, str]
"""day, hour, total, refunded, status, currency"""


def _reference(
    history: dict[int, list[Order]], rates: dict[str, float]
) -> dict[int, tuple[object, ...]]:
    """The features computed the plain way: per customer, from the counted orders."""
    expected: dict[int, tuple[object, ...]] = {}
    for customer, orders in history.items():
        counted = sorted(
            (at(day, hour), Decimal(total) - Decimal(refunded), currency)
            for day, hour, total, refunded, status, currency in orders
            if status in ("paid", "partially_refunded") and currency in ("EUR", *rates)
        )
        if not counted:
            expected[customer] = (0, 0, 0.0)
            continue
        net = [  # another currency: converted in 1/10,000 units, rounded
            float(amount) if code == "EUR" else round(float(amount) * 1e4 * rates[code]) / 1e4
            for _, amount, code in counted
        ]
        days = sorted({(moment.date() - dt.date(1970, 1, 1)).days for moment, _, _ in counted})
        first_amount = sum(
            value
            for (moment, _, _), value in zip(counted, net, strict=True)
            if (moment.date() - dt.date(1970, 1, 1)).days == days[0]
        )
        gaps = [b - a for a, b in itertools.pairwise(days)]
        expected[customer] = (
            len(counted),
            len(days),
            round(sum(net), 4),
            round(first_amount, 4),
            days[0],
            days[1] if len(days) > 1 else None,
            days[-2] if len(days) > 1 else None,
            days[-1],
            statistics.median(gaps) if gaps else None,
        )
    return expected


@pytest.mark.parametrize("seed", range(4))
def test_features_equal_a_plain_computation_on_random_histories(shop: Shop, seed: int) -> None:
    rng = random.Random(seed)
    history: dict[int, list[Order]] = {}
    for _ in range(25):
        customer = shop.customer()
        history[customer] = []
        for _ in range(rng.choice([0, 1, 2, 3, 5, 9])):
            day = rng.choice([0, 1, 1, 7, 30]) + rng.randrange(0, 300)  # same days happen
            total = f"{rng.randrange(100, 20000) / 100:.2f}"
            status = rng.choice(["paid"] * 6 + ["partially_refunded", "refunded", "pending"])
            refunded = f"{float(total) / 4:.2f}" if status == "partially_refunded" else "0"
            currency = rng.choice(["EUR"] * 4 + ["USD", "GBP"])
            order = (float(day), rng.randrange(0, 24), total, refunded, status, currency)
            history[customer].append(order)
            shop.order(customer, order[0], total, status=status, refunded=refunded,
                       currency=currency, hour=order[1])  # fmt: skip
    rates = {"USD": 0.5}
    expected = _reference(history, rates)
    f = _features(shop, MoneySpec("EUR", rates))
    assert f.customer_id.tolist() == sorted(history)
    for k, customer in enumerate(f.customer_id.tolist()):
        if f.purchase_days[k] == 0:
            assert (int(f.orders[k]), 0, float(f.revenue[k])) == expected[customer]
            continue

        def optional(value: float) -> object:
            return None if math.isnan(value) else value

        got = (
            int(f.orders[k]), int(f.purchase_days[k]), round(float(f.revenue[k]), 4),
            round(float(f.first_amount[k]), 4), int(f.first_day[k]), optional(f.second_day[k]),
            optional(f.prev_day[k]), int(f.last_day[k]), optional(f.median_gap[k]),
        )  # fmt: skip
        assert got == expected[customer], customer


def test_state_keeps_the_first_and_last_order_time(shop: Shop, rules: StageRules) -> None:
    customer = shop.customer()
    shop.order(customer, 3, hour=9)
    shop.order(customer, 3, hour=17)
    shop.order(customer, 40, hour=8)
    shop.order(customer, 41, status="refunded")
    prospect = shop.customer()
    full(shop.engine, rules, 60)
    state = shop.state(customer)
    assert (state["first_order_at"], state["last_order_at"]) == (at(3, 9), at(40, 8))
    assert shop.state(prospect)["first_order_at"] is None
