"""Per-customer features computed in SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import math

from clm_hub.stages.engine import compute_features
from clm_hub.stages.features import FeatureFrame, MoneySpec, currency_counts
from clm_hub.stages.sql import Backend
from tests.stages.conftest import Shop

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
