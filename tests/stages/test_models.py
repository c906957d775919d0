"""BG/NBD and Gamma-Gamma on store data: CDNOW through the SQL features, and P(alive) days."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from clm_hub.analytics.btyd import BgNbdParams, fit_bg_nbd, fit_gamma_gamma, summarise_transactions
from clm_hub.stages import StageRules
from clm_hub.stages.calibration import calibrate
from clm_hub.stages.config import TimeSpan
from clm_hub.stages.engine import compute_features
from clm_hub.stages.features import FeatureFrame, MoneySpec
from clm_hub.stages.models import Models
from tests.stages.conftest import CDNOW


def test_cdnow_fit_from_store_features_equals_the_analytics_fit(
    cdnow_store: Engine, rules: StageRules
) -> None:
    now = dt.datetime(1997, 9, 30, 18, tzinfo=dt.UTC)
    with cdnow_store.connect() as connection:
        features = compute_features(connection, MoneySpec("USD", {}))
    calibration = calibrate(features, rules, now=now, money=MoneySpec("USD", {}),
                            currency_counts={"USD": 1})  # fmt: skip
    bg = calibration.models.bg
    assert bg is not None and bg.time_unit == "weeks"
    rows = [line.split() for line in CDNOW.read_text().splitlines() if line.strip()]
    summary = summarise_transactions(
        [int(r[1]) for r in rows],
        np.array([f"{r[2][:4]}-{r[2][4:6]}-{r[2][6:]}" for r in rows], dtype="datetime64[D]"),
        [float(r[4]) for r in rows],
        calibration_end="1997-09-30",
    )
    expected = fit_bg_nbd(summary.frequency, summary.recency, summary.T, time_unit="weeks")
    for name in ("r", "alpha", "a", "b"):
        assert getattr(bg, name) == pytest.approx(getattr(expected, name), rel=1e-6), name
    assert (bg.r, bg.alpha, bg.a, bg.b) == pytest.approx((0.243, 4.414, 0.793, 2.426), rel=0.01)
    gg = calibration.models.gg
    expected_gg = fit_gamma_gamma(summary.frequency, summary.monetary_value)
    assert gg is not None
    assert (gg.p, gg.q, gg.gamma) == pytest.approx(
        (expected_gg.p, expected_gg.q, expected_gg.gamma), rel=1e-6
    )


MODELS = Models(
    BgNbdParams(0.243, 4.414, 0.793, 2.426, 0.0, 1, "weeks"), None, "test", 0.3,
    TimeSpan(52, "weeks"), 12, 0.01,
)  # fmt: skip


def _frame(purchase_days: int, first: float, last: float) -> FeatureFrame:
    def one(value: float) -> np.ndarray:
        return np.array([value])

    return FeatureFrame(
        customer_id=np.array([1]), orders=np.array([purchase_days]),
        purchase_days=np.array([purchase_days]), revenue=one(100.0), first_amount=one(50.0),
        first_day=one(first), second_day=one(last), prev_day=one(first), last_day=one(last),
        median_gap=one(last - first), nps_score=one(np.nan),
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    purchase_days=st.integers(2, 60),
    first=st.integers(10_000, 10_500),
    span=st.integers(1, 800),
)
def test_p_alive_crossing_day_is_the_first_day_below_the_threshold(
    purchase_days: int, first: int, span: int
) -> None:
    frame = _frame(purchase_days, float(first), float(first + span))
    day = MODELS.p_alive_crossing_day(frame)[0]
    if not np.isfinite(day):
        return
    assert MODELS.p_alive(frame, int(day))[0] < 0.3
    if day > first + span:
        assert MODELS.p_alive(frame, int(day) - 1)[0] >= 0.3


def test_one_purchase_day_has_no_p_alive_crossing() -> None:
    assert np.isnan(MODELS.p_alive_crossing_day(_frame(1, 100.0, 100.0))[0])
