"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV: Using iso-value curves for
customer base analysis"; likelihood as in Fader & Hardie's note "The Gamma-Gamma model of
monetary value", 2013).

Each transaction value is Gamma(p, nu) with a customer-specific nu ~ Gamma(q, gamma), so the mean
spend z_bar of a customer's x repeat transactions has the marginal density

    f(z_bar | p, q, gamma, x) = Gamma(px + q) / (Gamma(px) Gamma(q))
                                * gamma^q z_bar^(px - 1) x^(px) / (gamma + x z_bar)^(px + q),

and the conditional mean spend is E[Z | z_bar, x] = p (gamma + x z_bar) / (px + q - 1), a weighted
average of the population mean p gamma / (q - 1) and the customer's own mean.

Only repeat customers (x > 0) carry spend information: the first purchase is excluded from z_bar
because in CDNOW-style data it behaves differently (acquisition offers). The model assumes spend is
independent of purchase frequency; check that before trusting CLV built on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln

from clm_hub.analytics.bg_nbd import (
    FitError,
    InsufficientDataError,
    as_float_array,
    minimise_log_parameters,
)

DEFAULT_MIN_REPEAT_CUSTOMERS: Final = 20
"""Fewer repeat buyers than this cannot pin down three spend parameters: callers fall back."""


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters; ``n_customers`` counts the repeat buyers used."""

    p: float
    q: float
    gamma: float
    n_customers: int

    @property
    def population_mean(self) -> float:
        """Mean transaction value of a customer with no repeat history: p gamma / (q - 1)."""
        return self.p * self.gamma / (self.q - 1.0)


def _validate(
    frequency: ArrayLike, monetary_value: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x = as_float_array(frequency, "frequency")
    m = as_float_array(monetary_value, "monetary_value")
    if x.shape != m.shape:
        raise ValueError(f"frequency and monetary_value differ in shape: {x.shape} vs {m.shape}")
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency must hold non-negative whole numbers of repeat purchases")
    if np.any(m < 0):
        raise ValueError("monetary_value must be non-negative")
    return x, m


def _log_likelihood_terms(
    p: float, q: float, gamma: float, x: NDArray[np.float64], m: NDArray[np.float64]
) -> NDArray[np.float64]:
    px = p * x
    return np.asarray(
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * math.log(gamma)
        + (px - 1.0) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(gamma + x * m),
        dtype=np.float64,
    )


def _grouped_log_likelihood_terms(
    p: float,
    q: float,
    gamma: float,
    x_values: NDArray[np.float64],
    x_index: NDArray[np.intp],
    log_m: NDArray[np.float64],
    total_spend: NDArray[np.float64],
) -> NDArray[np.float64]:
    """:func:`_log_likelihood_terms` with the x-only terms evaluated once per distinct x.

    ``x == x_values[x_index]``, ``log_m == log(m)`` and ``total_spend == x * m`` do not depend
    on the parameters, so the fit computes them once. The same operations run in the same order
    on every element, so the result is identical; gammaln over a few distinct frequencies
    instead of every customer is what makes it cheap.
    """
    px_values = p * x_values
    head = (gammaln(px_values + q) - gammaln(px_values) - gammaln(q) + q * math.log(gamma))[x_index]
    px = px_values[x_index]
    return np.asarray(
        head
        + (px - 1.0) * log_m
        + (px_values * np.log(x_values))[x_index]
        - (px + q) * np.log(gamma + total_spend),
        dtype=np.float64,
    )


def fit_gamma_gamma(
    frequency: ArrayLike,
    monetary_value: ArrayLike,
    *,
    min_repeat_customers: int = DEFAULT_MIN_REPEAT_CUSTOMERS,
) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma fit on the customers with ``frequency > 0``.

    Repeat customers whose mean repeat spend is 0 (free orders) have zero density under the model
    and are left out rather than sending the likelihood to -inf. Raises
    :class:`InsufficientDataError` below ``min_repeat_customers`` and :class:`FitError` when the
    fit diverges or gives q <= 1 (no finite mean spend, so no CLV).
    """
    x_all, m_all = _validate(frequency, monetary_value)
    usable = (x_all > 0) & (m_all > 0)
    x, m = x_all[usable], m_all[usable]
    if x.size < min_repeat_customers:
        raise InsufficientDataError(
            f"Gamma-Gamma needs at least {min_repeat_customers} repeat customers with positive "
            f"spend, got {x.size}"
        )

    x_values, x_index = np.unique(x, return_inverse=True)
    log_m, spend = np.log(m), x * m

    def objective(log_params: NDArray[np.float64]) -> float:
        p, q, gamma = np.exp(log_params)
        terms = _grouped_log_likelihood_terms(p, q, gamma, x_values, x_index, log_m, spend)
        value = -float(np.sum(terms)) / x.size
        return value if math.isfinite(value) else 1e300

    start = np.log(np.array([1.0, 2.0, float(np.mean(m))]))
    log_params, _ = minimise_log_parameters(objective, start, "Gamma-Gamma")
    p, q, gamma = (float(v) for v in np.exp(log_params))
    if q <= 1.0:
        raise FitError(f"Gamma-Gamma fit has q = {q:.3f} <= 1: mean spend is infinite")
    return GammaGammaParams(p=p, q=q, gamma=gamma, n_customers=int(x.size))


def expected_average_value(
    params: GammaGammaParams, frequency: ArrayLike, monetary_value: ArrayLike
) -> NDArray[np.float64]:
    """E[Z | z_bar, x] = p (gamma + x z_bar) / (p x + q - 1).

    For x = 0 this is the population mean p gamma / (q - 1), whatever ``monetary_value`` says.
    """
    x, m = _validate(frequency, monetary_value)
    p, q, gamma = params.p, params.q, params.gamma
    return np.asarray(p * (gamma + x * m) / (p * x + q - 1.0), dtype=np.float64)
