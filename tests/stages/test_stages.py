"""Each default stage from hand-made histories (default rules, SQLite and PostgreSQL).

With fewer than 20 repeat customers the default rules use the 30-day fallback cycle, so the
at-risk window is 60 days and the lapsed window 120 days.
"""

from __future__ import annotations

from sqlalchemy import Engine

from clm_hub.analytics.btyd import BgNbdParams
from clm_hub.stages import StageRules, recompute_full
from clm_hub.stages.config import TimeSpan
from clm_hub.stages.explain import explain_customer
from clm_hub.stages.models import Models
from tests.stages.conftest import Shop, at, full, with_models

CDNOW_WEEKS = BgNbdParams(
    r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0, n_customers=2357,
    time_unit="weeks",
)  # fmt: skip


def test_customer_without_a_paid_order_is_a_prospect(shop: Shop, rules: StageRules) -> None:
    customer = shop.customer()
    shop.order(customer, 0, status="pending")
    shop.order(customer, 1, status="cancelled")
    shop.order(customer, 2, status="refunded", refunded="50")
    full(shop.engine, rules, 10)
    assert shop.stage(customer) == "prospect"
    assert shop.state(customer)["next_due_at"] is None


def test_one_recent_purchase_day_is_new(shop: Shop, rules: StageRules) -> None:
    customer = shop.buyer(0)
    full(shop.engine, rules, 59)
    assert shop.stage(customer) == "new"


def test_new_customer_is_due_when_the_at_risk_window_ends(shop: Shop, rules: StageRules) -> None:
    customer = shop.buyer(0)
    full(shop.engine, rules, 10)
    assert shop.state(customer)["next_due_at"] == at(60, hour=0)


def test_two_orders_on_one_day_are_one_purchase_day(shop: Shop, rules: StageRules) -> None:
    customer = shop.customer()
    shop.order(customer, 0, hour=9)
    shop.order(customer, 0, hour=17)
    full(shop.engine, rules, 10)
    state = shop.state(customer)
    assert (state["stage"], state["orders_count"], state["purchase_days"]) == ("new", 2, 1)


def test_two_purchase_days_make_a_customer_loyal(shop: Shop, rules: StageRules) -> None:
    customer = shop.buyer(0, 10)
    full(shop.engine, rules, 20)
    assert shop.stage(customer) == "loyal"


def test_top_revenue_quintile_with_three_purchase_days_is_vip(
    shop: Shop, rules: StageRules
) -> None:
    for _ in range(5):
        shop.buyer(0, 10, 20, total="20")
    vip = shop.buyer(0, 10, 20, total="500")
    full(shop.engine, rules, 25)
    state = shop.state(vip)
    assert (state["stage"], state["rfm_m"]) == ("vip", 5)


def test_no_order_for_the_at_risk_window_is_at_risk(shop: Shop, rules: StageRules) -> None:
    customer = shop.buyer(0)
    full(shop.engine, rules, 60)
    assert shop.stage(customer) == "at-risk"


def test_fast_buyer_is_at_risk_after_twice_their_own_median_gap(
    shop: Shop, rules: StageRules
) -> None:
    customer = shop.buyer(0, 20, 40)  # median gap 20 days: overdue after 40, not the shop's 60
    full(shop.engine, rules, 79)
    assert shop.stage(customer) == "loyal"
    full(shop.engine, rules, 80)
    assert shop.stage(customer) == "at-risk"


def test_no_order_for_the_lapsed_window_is_lapsed(shop: Shop, rules: StageRules) -> None:
    customer = shop.buyer(0)
    full(shop.engine, rules, 120)
    assert shop.stage(customer) == "lapsed"


def test_buying_again_after_a_lapse_is_reactivated(shop: Shop, rules: StageRules) -> None:
    customer = shop.buyer(0, 150)
    full(shop.engine, rules, 155)
    assert shop.stage(customer) == "reactivated"


def test_a_purchase_after_reactivation_makes_a_customer_loyal(
    shop: Shop, rules: StageRules
) -> None:
    customer = shop.buyer(0, 150, 160)
    full(shop.engine, rules, 165)
    assert shop.stage(customer) == "loyal"


def _with_cdnow_model(shop: Shop, rules: StageRules, day: float) -> None:
    full(shop.engine, rules, day)
    models = Models(CDNOW_WEEKS, None, "CDNOW parameters for the test", 0.3,
                    TimeSpan(52, "weeks"), 12, 0.01)  # fmt: skip
    with_models(shop.engine, rules, {"models": models})
    recompute_full(shop.engine, rules, now=at(day), recalibrate=False)


def test_low_p_alive_makes_a_repeat_customer_at_risk(shop: Shop, rules: StageRules) -> None:
    email = "weekly@shop.test"
    customer = shop.buyer(0, 7, 14, 21, 28, 35, email=email)
    _with_cdnow_model(shop, rules, 95)
    assert shop.stage(customer) == "at-risk"
    explanation = explain_customer(shop.engine, rules, email=email, now=at(95)).render()
    assert "✓ P(alive) = 0.214 (overdue when < 0.3; BG/NBD, 6 purchase days)" in explanation


def test_high_p_alive_keeps_a_customer_past_the_day_window(shop: Shop, rules: StageRules) -> None:
    customer = shop.buyer(0, 7, 14, 21, 28, 35)  # 35 days since the last: the day rule says 30
    _with_cdnow_model(shop, rules, 70)
    assert shop.stage(customer) == "loyal"


def test_every_stage_change_is_recorded_with_its_rule(shop: Shop, rules: StageRules) -> None:
    customer = shop.buyer(0)
    for day in (10, 30, 60, 120):
        full(shop.engine, rules, day)
    moves = [(before, after, when) for before, after, when, _ in shop.transitions(customer)]
    assert moves == [
        (None, "new", at(10)),
        ("new", "at-risk", at(60)),
        ("at-risk", "lapsed", at(120)),
    ]
    assert str(shop.transitions(customer)[-1][3]).startswith(
        "lapsed.beyond-window: days since last order = 120 (needs >= lapsed window 120 days)"
    )


def test_stage_since_is_kept_while_the_stage_holds(shop: Shop, rules: StageRules) -> None:
    customer = shop.buyer(0)
    full(shop.engine, rules, 10)
    full(shop.engine, rules, 20)
    assert shop.state(customer)["stage_since"] == at(10)


def test_orders_not_linked_to_a_customer_are_ignored(shop: Shop, rules: StageRules) -> None:
    customer = shop.customer()
    shop.order(None, 0)
    full(shop.engine, rules, 10)
    assert shop.stage(customer) == "prospect"


def test_removed_customers_lose_their_state(shop: Shop, rules: StageRules, store: Engine) -> None:
    customer = shop.buyer(0)
    full(shop.engine, rules, 10)
    with store.begin() as connection:
        connection.exec_driver_sql(f"DELETE FROM customer WHERE id = {customer}")
    full(shop.engine, rules, 11)
    with store.connect() as connection:
        count = connection.exec_driver_sql("SELECT COUNT(*) FROM customer_state").scalar_one()
    assert count == 0


def test_a_later_cycle_moves_the_stage_its_start_and_the_due_day(
    shop: Shop, rules: StageRules
) -> None:
    # The stage and next_due_at are written apart from the other columns, only where they
    # change (see _evaluate_and_write): each step here changes one, both or neither.
    customer = shop.buyer(0)
    full(shop.engine, rules, 10)
    full(shop.engine, rules, 30)
    state = shop.state(customer)
    assert (state["stage"], state["stage_since"], state["next_due_at"]) == (
        "new",
        at(10),
        at(60, hour=0),
    )
    assert state["computed_at"] == at(30)
    full(shop.engine, rules, 70)
    state = shop.state(customer)
    assert (state["stage"], state["stage_since"], state["next_due_at"]) == (
        "at-risk",
        at(70),
        at(120, hour=0),
    )
    full(shop.engine, rules, 130)
    state = shop.state(customer)
    assert (state["stage"], state["stage_since"], state["next_due_at"]) == ("lapsed", at(130), None)
