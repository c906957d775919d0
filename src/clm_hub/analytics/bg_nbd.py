"""BG/NBD purchase model (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

While alive, a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); after each
purchase they drop out with probability p ~ Beta(a, b). The model needs only each customer's
frequency ``x`` (repeat purchases), recency ``t_x`` (time of the last purchase, measured from the
first) and age ``T`` (time since the first purchase), all in one time unit.

Equations used (numbers as in the paper):

- Eq. 6, the likelihood of one customer's (x, t_x, T), summed in log space with ``logaddexp`` so
  that large ``x`` cannot overflow (the "#NUM! error" of Fader & Hardie's 2013 note);
- P(alive | x, t_x, T) as in Fader, Hardie & Lee's note "Computing P(alive) using the BG/NBD
  model" (2008), evaluated as a logistic of a log ratio: exactly 1 for ``x = 0``, never NaN;
- Eq. 10, E[Y(t) | x, t_x, T], evaluated through Euler's transformation of its Gauss
  hypergeometric term (see :func:`expected_purchases`).

Parameters are fitted by maximum likelihood on log-parameters with ``scipy.optimize``; customers
with identical ``(x, t_x, T)`` are collapsed into weighted rows first, which keeps large daily
data sets cheap. Everything is vectorised over customers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final, Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln, hyp2f1

TimeUnit = Literal["days", "weeks"]
"""Units a model can be fitted in; months are left out on purpose: they have no fixed length."""

TIME_UNITS: Final[tuple[TimeUnit, ...]] = get_args(TimeUnit)
DAYS_PER_UNIT: Final[dict[TimeUnit, float]] = {"days": 1.0, "weeks": 7.0}

DEFAULT_MIN_CUSTOMERS: Final = 30
DEFAULT_MIN_REPEAT_CUSTOMERS: Final = 10
"""Below these counts the likelihood surface is too flat to identify four parameters; callers
should fall back to rule-based stages instead (they get :class:`InsufficientDataError`)."""

_LOG_BOUND: Final = 13.0  # |log parameter| beyond this (~4.4e5) means the fit is degenerate
_A_NEAR_ONE: Final = 1e-7  # Eq. 10 has a removable 0/0 singularity at a = 1


class FitError(ValueError):
    """The model could not be fitted (degenerate data or no convergence): fall back to rules."""


class InsufficientDataError(FitError):
    """Too few customers (or repeat customers) to fit the model."""


@dataclass(frozen=True)
class BgNbdParams:
    """Fitted BG/NBD parameters. ``alpha`` is in ``time_unit``; ``r``, ``a``, ``b`` are unitless."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n_customers: int
    time_unit: TimeUnit

    def in_time_unit(self, time_unit: TimeUnit) -> BgNbdParams:
        """The same model expressed in another time unit (only ``alpha`` scales).

        The log-likelihood is kept as fitted: it is a density and shifts by a constant under a
        change of unit, so it is only comparable between fits in the same unit.
        """
        _check_time_unit(time_unit)
        alpha = self.alpha * DAYS_PER_UNIT[self.time_unit] / DAYS_PER_UNIT[time_unit]
        return replace(self, alpha=alpha, time_unit=time_unit)


def _check_time_unit(time_unit: str) -> None:
    if time_unit not in TIME_UNITS:
        raise ValueError(f"time unit must be one of {TIME_UNITS}, got {time_unit!r}")


def as_float_array(values: ArrayLike, name: str) -> NDArray[np.float64]:
    """A 1-D float64 copy of ``values``; rejects NaN/inf with a message naming the argument."""
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def validate_rfm_inputs(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Check the BTYD summary triple is self-consistent and return float arrays.

    Inconsistent rows (recency > T, a repeat-less customer with recency > 0) indicate a
    summarising bug upstream, and would silently bias the fit, so they are errors.
    """
    x = as_float_array(frequency, "frequency")
    tx = as_float_array(recency, "recency")
    age = as_float_array(T, "T")
    if not (x.shape == tx.shape == age.shape):
        raise ValueError(
            f"frequency, recency and T must have one shape, got {x.shape}, {tx.shape}, {age.shape}"
        )
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency must hold non-negative whole numbers of repeat purchases")
    if np.any(tx < 0) or np.any(tx > age):
        raise ValueError("recency must satisfy 0 <= recency <= T")
    if np.any((x == 0) & (tx != 0)):
        raise ValueError("customers with frequency 0 must have recency 0")
    return x, tx, age


def _log_likelihood_terms(
    params: tuple[float, float, float, float],
    x: NDArray[np.float64],
    tx: NDArray[np.float64],
    age: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Per-customer log of Eq. 6; the second term exists only for x > 0 (log 0 = -inf)."""
    r, alpha, a, b = params
    x_safe = np.maximum(x, 1.0)  # b + x - 1 would be <= 0 for x = 0; that term is masked anyway
    common = gammaln(r + x) - gammaln(r) + r * math.log(alpha) + betaln(a, b + x) - betaln(a, b)
    alive_term = -(r + x) * np.log(alpha + age)
    dropped_term = np.where(
        x > 0,
        math.log(a) - np.log(b + x_safe - 1.0) - (r + x) * np.log(alpha + tx),
        -np.inf,
    )
    return np.asarray(common + np.logaddexp(alive_term, dropped_term), dtype=np.float64)


def _grouped_log_likelihood_terms(
    params: tuple[float, float, float, float],
    x_values: NDArray[np.float64],
    x_index: NDArray[np.intp],
    x: NDArray[np.float64],
    tx: NDArray[np.float64],
    age: NDArray[np.float64],
) -> NDArray[np.float64]:
    """:func:`_log_likelihood_terms` with the special functions evaluated once per distinct x.

    ``x == x_values[x_index]``. Frequencies take few distinct values (whole numbers), while
    gammaln and betaln dominate the cost of a likelihood evaluation; every element is computed
    with the same operations in the same order, so the result is identical.
    """
    r, alpha, a, b = params
    x_safe = np.maximum(x_values, 1.0)
    common = (
        gammaln(r + x_values) - gammaln(r) + r * math.log(alpha) + betaln(a, b + x_values)
    ) - betaln(a, b)
    log_b_x = np.log(b + x_safe - 1.0)
    alive_term = -(r + x) * np.log(alpha + age)
    dropped_term = np.where(
        x > 0, math.log(a) - log_b_x[x_index] - (r + x) * np.log(alpha + tx), -np.inf
    )
    return np.asarray(common[x_index] + np.logaddexp(alive_term, dropped_term), dtype=np.float64)


def bg_nbd_log_likelihood(
    params: BgNbdParams | tuple[float, float, float, float],
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
) -> float:
    """Total log-likelihood (Eq. 6 summed over customers) of ``(r, alpha, a, b)``."""
    values = (
        (params.r, params.alpha, params.a, params.b) if isinstance(params, BgNbdParams) else params
    )
    x, tx, age = validate_rfm_inputs(frequency, recency, T)
    return float(np.sum(_log_likelihood_terms(values, x, tx, age)))


def minimise_log_parameters(
    objective: Callable[[NDArray[np.float64]], float], start: NDArray[np.float64], model: str
) -> tuple[NDArray[np.float64], float]:
    """Minimise over log-parameters; returns (log-parameters, objective value).

    L-BFGS-B inside a box of |log p| <= 13 finds the basin; Nelder-Mead polishes, since
    finite-difference gradients stop early on the flat ridges these likelihoods have. A solution
    on the box edge means the likelihood keeps rising as a parameter goes to 0 or infinity
    (e.g. nobody drops out): no finite MLE, so :class:`FitError`.
    """
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * start.size

    def check(log_params: NDArray[np.float64]) -> None:
        if np.any(np.abs(log_params) > _LOG_BOUND - 0.5):
            raise FitError(
                f"{model} fit is degenerate (a parameter diverged to 0 or infinity); "
                f"log-parameters {np.round(log_params, 2).tolist()}"
            )

    coarse = minimize(objective, start, method="L-BFGS-B", bounds=bounds)
    check(np.asarray(coarse.x, dtype=np.float64))
    result = minimize(
        objective,
        coarse.x,
        method="Nelder-Mead",
        bounds=bounds,
        options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 4000},
    )
    log_params = np.asarray(result.x, dtype=np.float64)
    check(log_params)
    if not result.success or not np.all(np.isfinite(log_params)):
        raise FitError(f"{model} optimisation did not converge: {result.message}")
    return log_params, float(result.fun)


def fit_bg_nbd(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    time_unit: TimeUnit = "weeks",
    min_customers: int = DEFAULT_MIN_CUSTOMERS,
    min_repeat_customers: int = DEFAULT_MIN_REPEAT_CUSTOMERS,
) -> BgNbdParams:
    """Maximum-likelihood BG/NBD fit.

    ``time_unit`` only labels the inputs (they must already be in that unit); it travels with the
    parameters so that CLV can refuse a horizon in another unit.

    Raises :class:`InsufficientDataError` below ``min_customers`` / ``min_repeat_customers`` and
    :class:`FitError` when the optimiser fails or a parameter runs off to 0 or infinity (e.g.
    nobody ever drops out); both are ``ValueError`` so callers can fall back to rules.
    """
    _check_time_unit(time_unit)
    x, tx, age = validate_rfm_inputs(frequency, recency, T)
    n_repeat = int(np.count_nonzero(x > 0))
    if x.size < min_customers or n_repeat < min_repeat_customers:
        raise InsufficientDataError(
            f"BG/NBD needs at least {min_customers} customers and {min_repeat_customers} repeat "
            f"customers, got {x.size} and {n_repeat}"
        )
    if not np.any(age > 0):
        raise InsufficientDataError("BG/NBD needs customers observed for some time (all T are 0)")

    rows, weights = np.unique(np.stack([x, tx, age], axis=1), axis=0, return_counts=True)
    ux, utx, uage = rows[:, 0], rows[:, 1], rows[:, 2]
    w = weights.astype(np.float64)
    x_values, x_index = np.unique(ux, return_inverse=True)
    scale = float(np.mean(age[age > 0]))  # start alpha near the observed time scale

    def objective(log_params: NDArray[np.float64]) -> float:
        r, alpha, a, b = (float(v) for v in np.exp(log_params))
        ll = _grouped_log_likelihood_terms((r, alpha, a, b), x_values, x_index, ux, utx, uage)
        value = -float(np.dot(w, ll)) / x.size
        return value if math.isfinite(value) else 1e300

    start = np.log(np.array([1.0, scale, 1.0, 1.0]))
    log_params, neg_mean_ll = minimise_log_parameters(objective, start, "BG/NBD")
    r, alpha, a, b = (float(v) for v in np.exp(log_params))
    return BgNbdParams(
        r=r,
        alpha=alpha,
        a=a,
        b=b,
        log_likelihood=-neg_mean_ll * x.size,
        n_customers=int(x.size),
        time_unit=time_unit,
    )


def _log_dropout_odds(
    params: BgNbdParams,
    x: NDArray[np.float64],
    tx: NDArray[np.float64],
    age: NDArray[np.float64],
) -> NDArray[np.float64]:
    """log[(a / (b + x - 1)) ((alpha + T) / (alpha + t_x))^(r + x)]; -inf when x = 0."""
    x_safe = np.maximum(x, 1.0)
    value = (
        math.log(params.a)
        - np.log(params.b + x_safe - 1.0)
        + (params.r + x) * (np.log(params.alpha + age) - np.log(params.alpha + tx))
    )
    return np.where(x > 0, value, -np.inf)


def probability_alive(
    params: BgNbdParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> NDArray[np.float64]:
    """P(alive | x, t_x, T) = 1 / (1 + delta(x>0) a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)).

    Computed as ``expit(-log odds)``: exactly 1 for x = 0 (in BG/NBD a customer can only drop out
    right after a purchase) and free of overflow for large x.
    """
    x, tx, age = validate_rfm_inputs(frequency, recency, T)
    return np.asarray(expit(-_log_dropout_odds(params, x, tx, age)), dtype=np.float64)


def expected_purchases(
    params: BgNbdParams,
    t: ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
) -> NDArray[np.float64]:
    """E[Y(t) | x, t_x, T]: expected repeat purchases in the next ``t`` time units (Eq. 10).

    ``t`` is in the model's time unit and broadcasts against the customers (pass a column vector
    to get a horizons x customers table).

    Overflow guard: Eq. 10 multiplies ((alpha+T)/(alpha+T+t))^(r+x), which underflows, by
    2F1(r+x, b+x; a+b+x-1; z) with z = t/(alpha+T+t), which overflows for large x or t (its
    c - a - b = a - 1 - r - x is very negative). Euler's transformation
    2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z) turns the product into
    (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), whose parameters do not grow with x and whose
    series converges fast, so no intermediate overflows. Eq. 10 has a removable 0/0 at a = 1;
    ``a`` within 1e-7 of 1 is nudged to 1 +/- 1e-7 (relative error ~1e-7).
    """
    x, tx, age = validate_rfm_inputs(frequency, recency, T)
    horizon = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(horizon)) or np.any(horizon < 0):
        raise ValueError("t must be finite and non-negative")
    r, alpha, b = params.r, params.alpha, params.b
    a = params.a
    if abs(a - 1.0) < _A_NEAR_ONE:
        a = 1.0 + math.copysign(_A_NEAR_ONE, a - 1.0)
    z = horizon / (alpha + age + horizon)
    transformed = (1.0 - z) ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z)
    if_alive = (a + b + x - 1.0) / (a - 1.0) * (1.0 - transformed)
    alive = expit(-_log_dropout_odds(params, x, tx, age))
    result = np.asarray(if_alive * alive, dtype=np.float64)
    if not np.all(np.isfinite(result)):
        raise FloatingPointError("expected_purchases produced non-finite values")
    return result
