"""summarise_transactions: the (x, t_x, T, z_bar) summary of Fader, Hardie & Lee."""

from __future__ import annotations

import numpy as np
import pytest

from clm_hub.analytics.btyd import summarise_transactions


def test_summary_reproduces_the_published_cdnow_summary(cdnow_summary, published_summary) -> None:
    s, pub = cdnow_summary, published_summary
    np.testing.assert_array_equal(s.customer_ids, pub.customer_ids)
    np.testing.assert_array_equal(s.frequency, pub.x)
    # The published file rounds to 2 decimals.
    np.testing.assert_allclose(s.recency, pub.t_x, atol=0.005 + 1e-9, rtol=0)
    np.testing.assert_allclose(s.T, pub.T, atol=0.005 + 1e-9, rtol=0)
    np.testing.assert_allclose(s.monetary_value, pub.zbar, atol=0.005 + 1e-9, rtol=0)


def test_cdnow_sample_has_946_repeat_buyers(cdnow_summary) -> None:
    assert len(cdnow_summary) == 2357
    assert int(np.count_nonzero(cdnow_summary.frequency > 0)) == 946


def test_same_day_purchases_count_as_one_transaction_with_amounts_summed() -> None:
    s = summarise_transactions(
        ["a", "a", "a", "a"],
        np.array(["2024-01-01", "2024-01-08", "2024-01-08", "2024-01-15"], dtype="datetime64[D]"),
        [10.0, 5.0, 7.0, 30.0],
        calibration_end="2024-01-15",
    )
    assert s.frequency.tolist() == [2]
    assert s.monetary_value.tolist() == [(12.0 + 30.0) / 2]


def test_first_purchase_is_excluded_from_monetary_value() -> None:
    s = summarise_transactions(
        [1, 1],
        np.array(["2024-01-01", "2024-01-02"], "datetime64[D]"),
        [1000.0, 20.0],
        calibration_end="2024-01-31",
    )
    assert s.monetary_value.tolist() == [20.0]


def test_customer_without_repeat_purchase_has_zero_recency_and_monetary_value() -> None:
    s = summarise_transactions(
        [7], np.array(["2024-01-01"], "datetime64[D]"), [50.0], calibration_end="2024-01-15"
    )
    assert (s.frequency[0], s.recency[0], s.T[0], s.monetary_value[0]) == (0, 0.0, 2.0, 0.0)


def test_purchases_on_the_calibration_end_day_are_included_and_later_ones_ignored() -> None:
    s = summarise_transactions(
        [1, 1, 1],
        np.array(["2024-01-01T09:00", "2024-01-15T23:59", "2024-01-16T00:00"], "datetime64[m]"),
        [1.0, 2.0, 4.0],
        calibration_end="2024-01-15",
    )
    assert (s.frequency[0], s.recency[0], s.monetary_value[0]) == (1, 2.0, 2.0)


def test_customers_first_seen_after_calibration_end_are_left_out() -> None:
    s = summarise_transactions(
        ["old", "late"],
        np.array(["2024-01-01", "2024-02-01"], "datetime64[D]"),
        [1.0, 1.0],
        calibration_end="2024-01-31",
    )
    assert s.customer_ids.tolist() == ["old"]


def test_days_unit_measures_recency_and_age_in_days(cdnow_summary, cdnow_summary_days) -> None:
    np.testing.assert_allclose(cdnow_summary_days.T, cdnow_summary.T * 7)
    np.testing.assert_allclose(cdnow_summary_days.recency, cdnow_summary.recency * 7)
    assert cdnow_summary_days.time_unit == "days"


def test_unknown_time_unit_is_rejected() -> None:
    with pytest.raises(ValueError, match="time unit"):
        summarise_transactions(
            [1],
            np.array(["2024-01-01"], "datetime64[D]"),
            [1.0],
            calibration_end="2024-01-02",
            time_unit="months",  # type: ignore[arg-type]
        )
