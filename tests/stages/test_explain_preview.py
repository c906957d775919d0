"""``--explain`` output and ``--preview`` counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from clm_hub.stages import StageRules, features, load_rules, recompute_full
from clm_hub.stages.explain import CustomerNotFound, explain_customer
from clm_hub.stages.preview import preview_rules
from clm_hub.store.tables import metadata
from tests.stages.conftest import Shop, at
from tests.stages.test_config import DEFAULT


def test_explain_names_the_stage_the_rule_and_its_numbers(shop: Shop, rules: StageRules) -> None:
    shop.buyer(0, total="80", email="ann@shop.test")
    recompute_full(shop.engine, rules, now=at(70))
    text = explain_customer(shop.engine, rules, email="ann@shop.test", now=at(70)).render()
    assert "stage: at-risk since 2025-03-12 12:00 UTC (rule at-risk.overdue" in text
    assert "✗ lapsed.beyond-window -> lapsed" in text
    assert (
        "✓ days since last order = 70 (overdue when >= 60 = the shop's at-risk window; "
        "rule-based fallback: BG/NBD not in use)" in text
    )
    assert "paid orders 1 on 1 purchase days; revenue 80.00 EUR" in text
    assert "at-risk window 60 days: 2 x shop cycle of 30 days, rounded up" in text
    assert "min-rank-quintile" in text
    assert "next due: 2025-05-01" in text


def test_explain_finds_a_customer_by_an_untidy_email(shop: Shop, rules: StageRules) -> None:
    customer = shop.buyer(0, email="ann@shop.test")
    recompute_full(shop.engine, rules, now=at(5))
    found = explain_customer(shop.engine, rules, email="  ANN@Shop.test ", now=at(5))
    assert (found.customer_id, found.stage, found.rule_id) == (
        customer,
        "new",
        "new.first-purchase",
    )


def test_explain_says_when_the_next_cycle_will_move_a_customer(
    shop: Shop, rules: StageRules
) -> None:
    shop.buyer(0, email="ann@shop.test")
    recompute_full(shop.engine, rules, now=at(5))
    text = explain_customer(shop.engine, rules, email="ann@shop.test", now=at(65)).render()
    assert "at-risk - the next cycle moves them" in text


def test_explain_of_an_unknown_email_is_an_error(shop: Shop, rules: StageRules) -> None:
    recompute_full(shop.engine, rules, now=at(5))
    with pytest.raises(CustomerNotFound, match=r"nobody@shop\.test"):
        explain_customer(shop.engine, rules, email="nobody@shop.test", now=at(5))


def test_preview_counts_moves_between_stages(shop: Shop, rules: StageRules, tmp_path: Path) -> None:
    for days in ([0], [0], [10], [60], [80, 85]):  # at day 100: 2 lapsed... see below
        shop.buyer(*days)
    shop.customer()
    recompute_full(shop.engine, rules, now=at(100))
    path = tmp_path / "rules.toml"
    path.write_text(DEFAULT.replace('lapsed = "4 cycles"', 'lapsed = "3 cycles"'))
    preview = preview_rules(shop.engine, rules, load_rules(path), now=at(100))
    # days since last order: 100, 100, 90, 40, 15; lapsed window 120 -> 90 days
    assert preview.matrix == {
        ("at-risk", "lapsed"): 3,
        ("new", "new"): 1,
        ("loyal", "loyal"): 1,
        ("prospect", "prospect"): 1,
    }
    assert preview.moved == 3
    assert "3 of 6 customers would change stage" in preview.render()


def test_preview_applies_nothing(shop: Shop, rules: StageRules, tmp_path: Path) -> None:
    customer = shop.buyer(0)
    recompute_full(shop.engine, rules, now=at(100))
    path = tmp_path / "rules.toml"
    path.write_text(DEFAULT.replace('lapsed = "4 cycles"', 'lapsed = "3 cycles"'))
    preview_rules(shop.engine, rules, load_rules(path), now=at(100))
    with shop.engine.connect() as connection:
        calibrations = connection.execute(
            select(func.count()).select_from(metadata.tables["stage_calibration"])
        ).scalar_one()
    assert (shop.stage(customer), calibrations) == ("at-risk", 1)


def test_preview_in_another_currency_reads_both_sides_a_slice_at_a_time(
    shop: Shop, rules: StageRules, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(features, "SLICE_CUSTOMERS", 2)  # both sides in lockstep over 3 slices
    monkeypatch.setattr(features, "BATCH_CUSTOMERS", 1)
    shop.buyer(0), shop.buyer(95)
    dollars = shop.customer()
    shop.order(dollars, 90, "40", currency="USD")
    shop.customer(), shop.customer()
    path = tmp_path / "rules.toml"
    path.write_text(DEFAULT.replace("rates = {}", "rates = { USD = 0.9 }"))
    preview = preview_rules(shop.engine, rules, load_rules(path), now=at(100))  # nothing stored
    assert "no stored calibration: both sides calibrated from the data now" in preview.notes
    # The dollar buyer counts as a buyer only once their currency has a rate ("auto" on both
    # sides keeps the currency it chose, and takes the candidate's rates).
    assert preview.matrix == {
        ("at-risk", "at-risk"): 1,
        ("new", "new"): 1,
        ("prospect", "new"): 1,
        ("prospect", "prospect"): 2,
    }
