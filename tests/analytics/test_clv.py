"""customer_lifetime_value: explicit, consistent time units."""

from __future__ import annotations

import numpy as np
import pytest

from clm_hub.analytics.btyd import (
    Duration,
    customer_lifetime_value,
    expected_average_value,
    expected_purchases,
)


def _clv(bg, gg, summary, horizon, *, rate=0.01, periods=12):
    s = summary
    return customer_lifetime_value(
        bg,
        gg,
        s.frequency,
        s.recency,
        s.T,
        s.monetary_value,
        horizon=horizon,
        discount_rate_per_period=rate,
        periods=periods,
    )


def test_clv_raises_when_horizon_unit_differs_from_the_fit_unit(bg_weeks, gg, cdnow_summary):
    with pytest.raises(ValueError, match="fitted in weeks"):
        _clv(bg_weeks, gg, cdnow_summary, Duration(365, "days"))


def test_clv_is_equal_for_weekly_and_daily_fits_over_the_same_horizon(
    bg_weeks, bg_days, gg, cdnow_summary, cdnow_summary_days
):
    weekly = _clv(bg_weeks, gg, cdnow_summary, Duration(52, "weeks"))
    daily = _clv(bg_days, gg, cdnow_summary_days, Duration(364, "days"))
    np.testing.assert_allclose(daily, weekly, rtol=1e-4)


def test_clv_of_a_model_converted_to_days_equals_the_weekly_clv(
    bg_weeks, gg, cdnow_summary, cdnow_summary_days
):
    weekly = _clv(bg_weeks, gg, cdnow_summary, Duration(52, "weeks"))
    daily = _clv(bg_weeks.in_time_unit("days"), gg, cdnow_summary_days, Duration(364, "days"))
    np.testing.assert_allclose(daily, weekly, rtol=1e-12)


def test_undiscounted_clv_is_expected_spend_times_expected_purchases(bg_weeks, gg, cdnow_summary):
    s = cdnow_summary
    clv = _clv(bg_weeks, gg, s, Duration(52, "weeks"), rate=0.0)
    expected = expected_average_value(gg, s.frequency, s.monetary_value) * expected_purchases(
        bg_weeks, 52.0, s.frequency, s.recency, s.T
    )
    np.testing.assert_allclose(clv, expected, rtol=1e-12)


def test_higher_discount_rate_lowers_clv(bg_weeks, gg, cdnow_summary):
    low = _clv(bg_weeks, gg, cdnow_summary, Duration(52, "weeks"), rate=0.01)
    high = _clv(bg_weeks, gg, cdnow_summary, Duration(52, "weeks"), rate=0.05)
    assert np.all(high < low)


def test_reading_a_days_horizon_as_weeks_inflates_clv_several_fold(bg_weeks, gg, cdnow_summary):
    # The trap the unit check prevents: 364 "days" handed to a weekly model as 364 weeks.
    right = _clv(bg_weeks, gg, cdnow_summary, Duration(52, "weeks")).sum()
    wrong = _clv(bg_weeks, gg, cdnow_summary, Duration(364, "weeks")).sum()
    assert wrong / right > 3


def test_clv_rejects_zero_periods(bg_weeks, gg, cdnow_summary):
    with pytest.raises(ValueError, match="periods"):
        _clv(bg_weeks, gg, cdnow_summary, Duration(52, "weeks"), periods=0)


def test_duration_rejects_unknown_units():
    with pytest.raises(ValueError, match="time unit"):
        Duration(12, "months")  # type: ignore[arg-type]
