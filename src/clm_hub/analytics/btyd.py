"""Buy-'til-you-die models: transaction summaries, BG/NBD, Gamma-Gamma and CLV.

This is the public entry point; the models live in :mod:`clm_hub.analytics.bg_nbd`
(Fader, Hardie & Lee 2005, "Counting your customers the easy way") and
:mod:`clm_hub.analytics.gamma_gamma` (Fader, Hardie & Lee 2005, "RFM and CLV").

:func:`summarise_transactions` turns a transaction log into the (x, t_x, T, z_bar) summary those
papers use. :func:`customer_lifetime_value` combines both models into a discounted CLV (the
discrete-time analogue of Fader, Hardie & Lee's DERT, as popularised by the ``lifetimes`` package).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from clm_hub.analytics.bg_nbd import (
    DAYS_PER_UNIT,
    TIME_UNITS,
    BgNbdParams,
    FitError,
    InsufficientDataError,
    TimeUnit,
    bg_nbd_log_likelihood,
    expected_purchases,
    fit_bg_nbd,
    probability_alive,
)
from clm_hub.analytics.gamma_gamma import (
    GammaGammaParams,
    expected_average_value,
    fit_gamma_gamma,
)

__all__ = [
    "DAYS_PER_UNIT",
    "TIME_UNITS",
    "BgNbdParams",
    "CustomerSummary",
    "Duration",
    "FitError",
    "GammaGammaParams",
    "InsufficientDataError",
    "TimeUnit",
    "bg_nbd_log_likelihood",
    "customer_lifetime_value",
    "expected_average_value",
    "expected_purchases",
    "fit_bg_nbd",
    "fit_gamma_gamma",
    "probability_alive",
    "summarise_transactions",
]

DateLike = dt.date | np.datetime64 | str


@dataclass(frozen=True, eq=False)
class CustomerSummary:
    """Per-customer BTYD summary, one row per customer, sorted by customer id.

    - ``frequency`` (x): repeat purchase *days* (a customer's purchases on one day are one
      transaction, as in the published CDNOW summaries);
    - ``recency`` (t_x): time from the first to the last purchase day;
    - ``T``: time from the first purchase day to ``calibration_end``;
    - ``monetary_value`` (z_bar): mean of the repeat days' totals, first purchase excluded; 0 when
      x = 0.
    """

    customer_ids: NDArray[Any]
    frequency: NDArray[np.int64]
    recency: NDArray[np.float64]
    T: NDArray[np.float64]
    monetary_value: NDArray[np.float64]
    time_unit: TimeUnit

    def __len__(self) -> int:
        return int(self.customer_ids.shape[0])


def summarise_transactions(
    customer_ids: ArrayLike,
    dates: ArrayLike,
    amounts: ArrayLike,
    *,
    calibration_end: DateLike,
    time_unit: TimeUnit = "weeks",
) -> CustomerSummary:
    """Summarise a transaction log into (x, t_x, T, z_bar) per customer.

    Dates are truncated to calendar days (pass naive local dates: a time zone shift moves
    purchases across midnight). Transactions after ``calibration_end`` are ignored and
    ``calibration_end`` itself is included; customers whose first purchase is after it are not
    in the result. On CDNOW, ``calibration_end=1997-09-30`` reproduces the published 39-week
    summary exactly (T = 38.86 weeks for a 1997-01-01 first purchase).
    """
    if time_unit not in TIME_UNITS:
        raise ValueError(f"time unit must be one of {TIME_UNITS}, got {time_unit!r}")
    ids = np.asarray(customer_ids)
    days = np.asarray(dates).astype("datetime64[D]")
    values = np.asarray(amounts, dtype=np.float64)
    if not (ids.ndim == days.ndim == values.ndim == 1) or not (
        ids.shape == days.shape == values.shape
    ):
        raise ValueError("customer_ids, dates and amounts must be 1-D and of equal length")
    if np.any(np.isnat(days)):
        raise ValueError("dates contain NaT")
    if not np.all(np.isfinite(values)):
        raise ValueError("amounts contain NaN or infinite values")
    end = np.asarray(calibration_end).astype("datetime64[D]")
    if end.ndim != 0 or np.isnat(end):
        raise ValueError(f"calibration_end must be one date, got {calibration_end!r}")

    keep = days <= end
    ids, days, values = ids[keep], days[keep], values[keep]
    unit = DAYS_PER_UNIT[time_unit]
    if ids.size == 0:
        empty = np.zeros(0, dtype=np.float64)
        return CustomerSummary(ids, np.zeros(0, dtype=np.int64), empty, empty, empty, time_unit)

    unique_ids, code = np.unique(ids, return_inverse=True)
    day_number = days.astype(np.int64)
    order = np.lexsort((day_number, code))
    code, day_number, values = code[order], day_number[order], values[order]

    # One row per (customer, day), amounts summed.
    new_day = np.ones(code.size, dtype=bool)
    new_day[1:] = (code[1:] != code[:-1]) | (day_number[1:] != day_number[:-1])
    day_start = np.flatnonzero(new_day)
    day_total = np.add.reduceat(values, day_start)
    day_code, day_date = code[day_start], day_number[day_start]

    # Per customer over its purchase days (sorted by date within each customer).
    first_row = np.flatnonzero(np.r_[True, day_code[1:] != day_code[:-1]])
    n_days = np.diff(np.r_[first_row, day_code.size])
    last_row = first_row + n_days - 1
    repeat_total = day_total.copy()
    repeat_total[first_row] = 0.0
    repeat_sum = np.add.reduceat(repeat_total, first_row)

    frequency = (n_days - 1).astype(np.int64)
    first_day = day_date[first_row]
    recency = (day_date[last_row] - first_day) / unit
    age = (end.astype(np.int64) - first_day) / unit
    monetary = np.where(frequency > 0, repeat_sum / np.maximum(frequency, 1), 0.0)
    return CustomerSummary(
        customer_ids=unique_ids,
        frequency=frequency,
        recency=recency.astype(np.float64),
        T=age.astype(np.float64),
        monetary_value=monetary.astype(np.float64),
        time_unit=time_unit,
    )


@dataclass(frozen=True)
class Duration:
    """A length of time with its unit, so a horizon can never be read in the wrong unit."""

    amount: float
    unit: TimeUnit

    def __post_init__(self) -> None:
        if self.unit not in TIME_UNITS:
            raise ValueError(f"time unit must be one of {TIME_UNITS}, got {self.unit!r}")
        if not np.isfinite(self.amount) or self.amount <= 0:
            raise ValueError(f"duration must be positive and finite, got {self.amount}")


def customer_lifetime_value(
    bg: BgNbdParams,
    gg: GammaGammaParams,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    *,
    horizon: Duration,
    discount_rate_per_period: float,
    periods: int,
) -> NDArray[np.float64]:
    """Discounted expected spend over ``horizon``, per customer.

    The horizon is cut into ``periods`` equal periods of ``horizon.amount / periods`` units;
    ``discount_rate_per_period`` is the rate for one such period, applied at each period's end:

        CLV = sum_{i=1..periods} E[Z] (E[Y(i h)] - E[Y((i-1) h)]) / (1 + d)^i,  h = horizon/periods

    with E[Y] from BG/NBD Eq. 10 and E[Z] from Gamma-Gamma. So ``Duration(52, "weeks")`` with
    ``periods=12`` discounts monthly and wants a monthly rate.

    Units trap: ``horizon.unit`` must equal ``bg.time_unit`` or ValueError is raised; it is not
    converted silently. A model fitted in weeks whose horizon or discount period is read in days
    (e.g. ``lifetimes``' ``customer_lifetime_value(..., freq="D")`` on a weekly fit) counts each
    "day" as a week: a 12-month horizon becomes ~7 years of purchases and the CLV is inflated
    several-fold. Refit in the other unit, or convert with :meth:`BgNbdParams.in_time_unit`.
    """
    if horizon.unit != bg.time_unit:
        raise ValueError(
            f"horizon is in {horizon.unit} but the BG/NBD model was fitted in {bg.time_unit}; "
            f"express the horizon in {bg.time_unit} or convert the model with "
            f"params.in_time_unit({horizon.unit!r}) (mixing units inflates or deflates CLV "
            "several-fold)"
        )
    if periods < 1:
        raise ValueError(f"periods must be at least 1, got {periods}")
    if not np.isfinite(discount_rate_per_period) or discount_rate_per_period <= -1.0:
        raise ValueError(f"discount rate must be > -1, got {discount_rate_per_period}")
    spend = expected_average_value(gg, frequency, monetary_value)
    step = horizon.amount / periods
    times = step * np.arange(periods + 1, dtype=np.float64)[:, np.newaxis]
    cumulative = expected_purchases(bg, times, frequency, recency, T)  # (periods + 1, customers)
    per_period = np.diff(cumulative, axis=0)
    discount = (1.0 + discount_rate_per_period) ** -np.arange(1, periods + 1, dtype=np.float64)
    return np.asarray(spend * (discount @ per_period), dtype=np.float64)
