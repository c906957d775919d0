"""``report`` numbers on a small shop computed by hand (SQLite and PostgreSQL).

At day 50 (2025-02-20), default rules, 30-day fallback cycle (lapsed window 120 days):

    customer  created  channel   counted orders (day: EUR)     NPS   stage
    A         0        ads       0: 100, 40: 50                 -     loyal
    B         0        ads       10: 80                         -     new
    C         5        -         none                           -     prospect
    D         0        organic   35: 40 (+ a refunded order)    10    new
    E         0        -         0: 30                          3     new
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from clm_hub.stages import StageRules, recompute_full
from clm_hub.stages.report import Report, build_report
from tests.stages.conftest import Shop, at


@pytest.fixture
def report(shop: Shop, rules: StageRules) -> Report:
    a = shop.customer(channel="ads")
    shop.order(a, 0, "100")
    shop.order(a, 40, "50")
    b = shop.customer(channel="ads")
    shop.order(b, 10, "80")
    shop.customer(created=5)
    d = shop.customer(channel="organic")
    shop.order(d, 35, "40")
    shop.order(d, 36, "500", status="refunded", refunded="500")
    shop.answer(d, 10, 36)
    e = shop.customer()
    shop.order(e, 0, "30")
    shop.answer(e, 3, 20)
    recompute_full(shop.engine, rules, now=at(50))
    return build_report(shop.engine, rules, now=at(50))


def _by(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {str(row[key]): row for row in rows}


def test_report_counts_customers_and_revenue_per_stage(report: Report) -> None:
    stages = _by(report.stages, "stage")
    assert {s: (r["customers"], r["revenue"]) for s, r in stages.items()} == {
        "new": (3, 150.0), "loyal": (1, 150.0), "prospect": (1, 0.0),
    }  # fmt: skip
    assert (report.summary["customers"], report.summary["buyers"]) == (5, 4)
    assert (report.summary["revenue"], report.summary["orders"]) == (300.0, 5)


def test_report_kpis(report: Report) -> None:
    kpis = {row["kpi"]: row["value"] for row in report.kpis}
    assert kpis == {
        "acquisition.days_signup_to_first_order_median": 5.0,  # 0, 10, 35, 0
        "acquisition.conversion_rate": 0.8,
        "engagement.repeat_purchase_rate": 0.25,
        "retention.retention_rate": 1.0,
        "retention.churn_rate": 0.0,
        "loyalty.purchase_frequency": 1.25,
        "loyalty.nps": 0.0,  # one promoter, one detractor
        "loyalty.nps_answers": 2,
        "days_first_to_second_purchase_median": 40.0,
    }


def test_report_cohorts_by_month_of_first_order(report: Report) -> None:
    cells = {(r["cohort"], r["months_since_first_order"]): r for r in report.cohorts}
    assert {k: (r["active_customers"], r["retention"], r["revenue"]) for k, r in cells.items()} == {
        ("2025-01", 0): (3, 1.0, 210.0),
        ("2025-01", 1): (1, 0.3333, 50.0),
        ("2025-02", 0): (1, 1.0, 40.0),
    }


def test_report_clv_by_cohort_and_channels(report: Report) -> None:
    clv = _by(report.clv_by_cohort, "cohort")
    assert (clv["2025-01"]["customers"], clv["2025-01"]["revenue_per_customer"]) == (3, 86.67)
    assert clv["2025-01"]["mean_clv"] is None  # too few customers for the models
    channels = _by(report.channels, "channel")
    assert {c: (r["customers"], r["buyers"], r["revenue"]) for c, r in channels.items()} == {
        "ads": (2, 2, 230.0), "(unknown)": (2, 1, 30.0), "organic": (1, 1, 40.0),
    }  # fmt: skip
    assert channels["ads"]["repeat_purchase_rate"] == 0.5


def test_report_segments_include_nps_classes(report: Report) -> None:
    segments = _by(report.segments, "segment")
    assert (segments["nps:promoter"]["revenue"], segments["nps:detractor"]["revenue"]) == (
        40.0,
        30.0,
    )


def test_report_json_carries_models_calibration_window_and_thresholds(report: Report) -> None:
    data = json.loads(report.to_json())
    model = data["model"]
    assert model["bg_nbd"] is None and "needs at least 200 customers" in model["model_note"]
    assert model["calibration_window"] == {"from": "2025-01-01", "to": "2025-02-20T12:00:00+00:00"}
    assert model["windows"]["lapsed_days"] == 120
    assert model["rfm_thresholds"]["recency_days"]["convention"] == "min-rank-quintile"


def test_report_csv_has_one_number_per_line(report: Report) -> None:
    lines = report.to_csv().splitlines()
    assert lines[0] == "section,key,metric,value"
    assert "stages,loyal,revenue,150.0" in lines
    assert "cohorts,2025-01/m1,retention,0.3333" in lines
