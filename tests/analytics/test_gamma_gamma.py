"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV") on the CDNOW sample."""

from __future__ import annotations

import numpy as np
import pytest

from clm_hub.analytics.btyd import (
    FitError,
    InsufficientDataError,
    expected_average_value,
    fit_gamma_gamma,
)


def test_fit_reproduces_published_cdnow_parameters(gg) -> None:
    assert gg.p == pytest.approx(6.25, rel=0.01)
    assert gg.q == pytest.approx(3.74, rel=0.01)
    assert gg.gamma == pytest.approx(15.44, rel=0.01)
    assert gg.n_customers == 946


def test_fit_ignores_customers_without_repeat_purchases(gg, cdnow_summary) -> None:
    repeat = cdnow_summary.frequency > 0
    refit = fit_gamma_gamma(cdnow_summary.frequency[repeat], cdnow_summary.monetary_value[repeat])
    assert refit == gg


def test_customer_without_history_is_expected_to_spend_the_population_mean(gg) -> None:
    value = expected_average_value(gg, [0], [123.0])[0]
    assert value == pytest.approx(gg.p * gg.gamma / (gg.q - 1))
    assert value == pytest.approx(gg.population_mean)


def test_expected_spend_moves_toward_own_mean_with_more_transactions(gg) -> None:
    own_mean = 100.0
    values = expected_average_value(gg, [1, 5, 50], [own_mean] * 3)
    assert gg.population_mean < values[0] < values[1] < values[2] < own_mean


def test_fit_raises_insufficient_data_with_few_repeat_buyers() -> None:
    with pytest.raises(InsufficientDataError, match="repeat customers"):
        fit_gamma_gamma([0] * 50 + [2] * 5, [0.0] * 50 + [10.0] * 5)


def test_fit_rejects_negative_spend() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        fit_gamma_gamma(np.ones(30), np.full(30, -1.0))


def test_fit_raises_fit_error_when_every_customer_spends_the_same() -> None:
    with pytest.raises(FitError, match="degenerate"):
        fit_gamma_gamma([2] * 100, [10.0] * 100)


def test_likelihood_grouped_by_frequency_is_identical_to_the_plain_one() -> None:
    """The fit's per-distinct-frequency evaluation gives exactly the same terms, so the same fit."""
    from clm_hub.analytics.gamma_gamma import (
        _grouped_log_likelihood_terms,
        _log_likelihood_terms,
    )

    rng = np.random.default_rng(5)
    x = rng.integers(1, 15, 2_000).astype(np.float64)
    m = rng.gamma(2.0, 20.0, x.size)
    p, q, gamma = np.exp(np.array([1.8, 1.3, 2.7]))
    values, index = np.unique(x, return_inverse=True)
    plain = _log_likelihood_terms(p, q, gamma, x, m)
    grouped = _grouped_log_likelihood_terms(p, q, gamma, values, index, np.log(m), x * m)
    assert np.array_equal(plain, grouped)
