"""BG/NBD (Fader, Hardie & Lee 2005) on the CDNOW sample and on edge cases."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy.special import hyp2f1

from clm_hub.analytics.btyd import (
    FitError,
    InsufficientDataError,
    bg_nbd_log_likelihood,
    expected_purchases,
    fit_bg_nbd,
    probability_alive,
)

PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def _direct_eq10(params, t, x, tx, T):
    """Eq. 10 as printed, without the Euler transformation (overflows for large x or t)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + T + t)
    term = ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
    odds = a / (b + x - 1) * ((alpha + T) / (alpha + tx)) ** (r + x) if x > 0 else 0.0
    return (a + b + x - 1) / (a - 1) * (1 - term) / (1 + odds)


def test_fit_reproduces_published_cdnow_parameters(bg_weeks) -> None:
    for name, value in PUBLISHED.items():
        assert getattr(bg_weeks, name) == pytest.approx(value, rel=0.01), name
    assert bg_weeks.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    assert (bg_weeks.n_customers, bg_weeks.time_unit) == (2357, "weeks")


def test_reported_log_likelihood_equals_likelihood_at_the_fitted_parameters(
    bg_weeks, cdnow_summary
) -> None:
    s = cdnow_summary
    assert bg_nbd_log_likelihood(bg_weeks, s.frequency, s.recency, s.T) == pytest.approx(
        bg_weeks.log_likelihood, abs=1e-6
    )


def test_fit_in_days_is_the_weekly_model_with_alpha_times_seven(bg_weeks, bg_days) -> None:
    converted = bg_weeks.in_time_unit("days")
    assert converted.alpha == pytest.approx(bg_weeks.alpha * 7)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(bg_days, name) == pytest.approx(getattr(converted, name), rel=1e-4), name


def test_probability_alive_is_one_without_repeat_purchases(bg_weeks) -> None:
    p = probability_alive(bg_weeks, [0, 0, 0], [0, 0, 0], [0.0, 10.0, 1e6])
    assert p.tolist() == [1.0, 1.0, 1.0]


def test_probability_alive_is_a_probability_for_every_cdnow_customer(
    bg_weeks, cdnow_summary
) -> None:
    s = cdnow_summary
    p = probability_alive(bg_weeks, s.frequency, s.recency, s.T)
    assert np.all(np.isfinite(p)) and np.all((p > 0) & (p <= 1))


def test_probability_alive_falls_the_longer_a_frequent_buyer_has_been_silent(bg_weeks) -> None:
    p = probability_alive(bg_weeks, [10, 10, 10], [38.0, 20.0, 5.0], [38.86] * 3)
    assert p[0] > p[1] > p[2]


def test_likelihood_is_finite_for_customers_without_repeat_purchases(bg_weeks) -> None:
    assert math.isfinite(bg_nbd_log_likelihood(bg_weeks, [0] * 3, [0] * 3, [0.0, 5.0, 1e4]))


def test_expected_purchases_increase_with_horizon(bg_weeks, cdnow_summary) -> None:
    s = cdnow_summary
    horizons = np.array([1.0, 4.0, 13.0, 39.0, 52.0, 104.0])[:, np.newaxis]
    table = expected_purchases(bg_weeks, horizons, s.frequency, s.recency, s.T)
    assert table.shape == (6, 2357)
    assert np.all(np.diff(table, axis=0) > 0)


def test_expected_purchases_are_zero_over_a_zero_horizon(bg_weeks) -> None:
    assert expected_purchases(bg_weeks, 0.0, [0, 3], [0, 20.0], [30.0, 30.0]).tolist() == [0, 0]


def test_expected_purchases_match_eq10_as_printed_where_it_is_finite(bg_weeks) -> None:
    cases = [(39, 2, 30.43, 38.86), (39, 0, 0, 38.86), (52, 7, 35.0, 38.86), (1000, 20, 30, 38.86)]
    for t, x, tx, T in cases:
        assert expected_purchases(bg_weeks, t, x, tx, T)[0] == pytest.approx(
            _direct_eq10(bg_weeks, t, x, tx, T), rel=1e-9
        )


def test_expected_purchases_of_the_papers_example_customer(bg_weeks) -> None:
    # Customer 1 of the sample (x=2, t_x=30.43, T=38.86): 1.226 purchases in the next 39 weeks.
    assert expected_purchases(bg_weeks, 39, 2, 30.43, 38.86)[0] == pytest.approx(1.226, abs=5e-4)


def test_expected_purchases_stay_finite_where_eq10_as_printed_overflows(bg_weeks) -> None:
    with np.errstate(all="ignore"):
        assert not math.isfinite(_direct_eq10(bg_weeks, 1e6, 1000, 38.0, 38.86))
    value = expected_purchases(bg_weeks, 1e6, 1000, 38.0, 38.86)[0]
    assert math.isfinite(value) and value > 0


def test_fit_raises_insufficient_data_with_few_repeat_customers() -> None:
    x = [0] * 95 + [1] * 5
    tx = [0.0] * 95 + [3.0] * 5
    with pytest.raises(InsufficientDataError, match="repeat customers"):
        fit_bg_nbd(x, tx, [10.0] * 100)


def test_insufficient_data_is_a_value_error_for_callers_falling_back_to_rules() -> None:
    assert issubclass(InsufficientDataError, FitError)
    assert issubclass(FitError, ValueError)


def test_fit_rejects_recency_beyond_customer_age() -> None:
    with pytest.raises(ValueError, match="recency"):
        fit_bg_nbd([1, 2], [5.0, 12.0], [10.0, 10.0])


def test_fit_rejects_recency_without_repeat_purchases() -> None:
    with pytest.raises(ValueError, match="frequency 0"):
        fit_bg_nbd([0, 2], [5.0, 8.0], [10.0, 10.0])


def test_fit_rejects_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        fit_bg_nbd([0, float("nan")], [0.0, 1.0], [10.0, 10.0])


def test_fit_raises_fit_error_when_nobody_ever_drops_out() -> None:
    # Everyone bought in the last week: the dropout probability runs off to zero.
    with pytest.raises(FitError, match="degenerate"):
        fit_bg_nbd([3] * 100, [50.0] * 100, [52.0] * 100)


def test_expected_purchases_are_continuous_across_the_a_equals_one_singularity(bg_weeks) -> None:
    near = [replace(bg_weeks, a=a) for a in (1 - 1e-5, 1.0, 1 + 1e-5)]
    values = [expected_purchases(p, 39, [0, 2], [0, 30.43], [38.86, 38.86]) for p in near]
    np.testing.assert_allclose(values[1], values[0], rtol=1e-4)
    np.testing.assert_allclose(values[1], values[2], rtol=1e-4)


def test_likelihood_grouped_by_frequency_is_identical_to_the_plain_one() -> None:
    """The fit's per-distinct-frequency evaluation gives exactly the same terms, so the same fit."""
    from clm_hub.analytics.bg_nbd import _grouped_log_likelihood_terms, _log_likelihood_terms

    rng = np.random.default_rng(3)
    x = rng.integers(0, 12, 2_000).astype(np.float64)
    age = rng.uniform(1.0, 80.0, x.size)
    tx = np.where(x > 0, rng.uniform(0.0, 1.0, x.size) * age, 0.0)
    values, index = np.unique(x, return_inverse=True)
    params = (0.24, 4.4, 0.79, 2.4)
    plain = _log_likelihood_terms(params, x, tx, age)
    grouped = _grouped_log_likelihood_terms(params, values, index, x, tx, age)
    assert np.array_equal(plain, grouped)
