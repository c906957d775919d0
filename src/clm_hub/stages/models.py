"""BG/NBD and Gamma-Gamma fitted on the store's own customers, and their use per customer.

Inputs come from :class:`~clm_hub.stages.features.FeatureFrame`, whose day columns already count
same-day orders as one purchase: x = purchase days - 1, t_x = last - first purchase day,
T = today - first purchase day (both in the model's time unit), and the Gamma-Gamma spend is the
mean value of the repeat purchase days. Fits use at most ``max_fit_customers`` buyers, chosen by
a fixed hash of the customer id so the same customers stay in the sample from one refresh to the
next. A failed or impossible fit is not an error: the at-risk test falls back to day windows and
the calibration says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from clm_hub.analytics.btyd import (
    DAYS_PER_UNIT,
    BgNbdParams,
    Duration,
    FitError,
    GammaGammaParams,
    TimeUnit,
    customer_lifetime_value,
    expected_purchases,
    fit_bg_nbd,
    fit_gamma_gamma,
    probability_alive,
)
from clm_hub.stages.config import ModelConfig, TimeSpan
from clm_hub.stages.features import FeatureFrame

__all__ = ["FitSample", "Models", "fit_models"]

_HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash: a stable, well-spread sample order


@dataclass(frozen=True)
class Models:
    """The fitted models (either may be ``None``), the note saying why, and how to use them."""

    bg: BgNbdParams | None
    gg: GammaGammaParams | None
    note: str
    p_alive_threshold: float
    clv_horizon: TimeSpan
    clv_periods: int
    clv_discount_rate: float

    @property
    def in_use(self) -> bool:
        """Whether the at-risk test uses P(alive) (for customers with two or more purchase days)."""
        return self.bg is not None

    def _summary(
        self, features: FeatureFrame, today: int, unit: TimeUnit
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        per_unit = DAYS_PER_UNIT[unit]
        buyers = features.buyers
        first = np.where(buyers, features.first_day, 0.0)
        last = np.where(buyers, features.last_day, 0.0)
        x = np.where(buyers, features.purchase_days - 1, 0).astype(np.float64)
        t_x = (last - first) / per_unit
        age = np.maximum(float(today) - first, last - first) / per_unit
        return x, t_x, age

    def p_alive(self, features: FeatureFrame, today: int) -> NDArray[np.float64]:
        """P(alive) on ``today`` per customer; NaN without a model or without an order."""
        if self.bg is None or len(features) == 0:
            return np.full(len(features), np.nan)
        x, t_x, age = self._summary(features, today, self.bg.time_unit)
        return np.where(features.buyers, probability_alive(self.bg, x, t_x, age), np.nan)

    def p_alive_crossing_day(self, features: FeatureFrame) -> NDArray[np.float64]:
        """The first day on which P(alive) is below the threshold; NaN for x = 0 or no model.

        With x, t_x fixed, P(alive) falls as T grows: 1 / (1 + odds) with
        odds = a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x), so P < p* exactly when
        T > (alpha + t_x) ((1 - p*) / p* (b + x - 1) / a)^(1 / (r + x)) - alpha. The day is then
        checked against :meth:`p_alive` itself, so rounding can never put it a day off.
        """
        if self.bg is None or len(features) == 0:
            return np.full(len(features), np.nan)
        bg, th = self.bg, self.p_alive_threshold
        per_unit = DAYS_PER_UNIT[bg.time_unit]
        repeat = features.purchase_days >= 2
        x = np.where(repeat, features.purchase_days - 1, 1).astype(np.float64)
        first = np.where(repeat, features.first_day, 0.0)
        t_x = (np.where(repeat, features.last_day, 0.0) - first) / per_unit
        log_ratio = (math.log((1.0 - th) / th) + np.log(bg.b + x - 1.0) - math.log(bg.a)) / (
            bg.r + x
        )
        t_star = (bg.alpha + t_x) * np.exp(np.minimum(log_ratio, 700.0)) - bg.alpha
        last = np.where(repeat, features.last_day, 0.0)
        day = np.maximum(np.floor(first + t_star * per_unit) + 1.0, last)
        day = np.where(np.isfinite(day), day, np.nan)
        day = self._settle(features, day, repeat)
        return np.where(repeat, day, np.nan)

    def _settle(
        self, features: FeatureFrame, day: NDArray[np.float64], repeat: NDArray[np.bool_]
    ) -> NDArray[np.float64]:
        """Move each day to the first one where P(alive) < threshold (at most a few steps)."""
        last = np.where(repeat, features.last_day, 0.0)
        finite = repeat & np.isfinite(day)
        for _ in range(4):
            here = self._p_at(features, np.where(finite, day, last))
            before = self._p_at(features, np.where(finite, np.maximum(day - 1.0, last), last))
            late = finite & (before < self.p_alive_threshold) & (day > last)
            early = finite & (here >= self.p_alive_threshold)
            if not late.any() and not early.any():
                break
            day = np.where(late, day - 1.0, np.where(early, day + 1.0, day))
        return day

    def _p_at(self, features: FeatureFrame, day: NDArray[np.float64]) -> NDArray[np.float64]:
        assert self.bg is not None
        per_unit = DAYS_PER_UNIT[self.bg.time_unit]
        repeat = features.purchase_days >= 2
        first = np.where(repeat, features.first_day, 0.0)
        last = np.where(repeat, features.last_day, 0.0)
        x = np.where(repeat, features.purchase_days - 1, 0).astype(np.float64)
        age = np.maximum(day - first, last - first) / per_unit
        return probability_alive(self.bg, x, (last - first) / per_unit, age)

    def clv(self, features: FeatureFrame, today: int) -> NDArray[np.float64]:
        """Discounted expected spend over the CLV horizon; NaN without both models."""
        if self.bg is None or self.gg is None or len(features) == 0:
            return np.full(len(features), np.nan)
        unit = self.clv_horizon.unit
        bg = self.bg.in_time_unit(unit)
        x, t_x, age = self._summary(features, today, unit)
        spend = np.where(x > 0, features.repeat_revenue / np.maximum(x, 1.0), 0.0)
        value = customer_lifetime_value(
            bg,
            self.gg,
            x,
            t_x,
            age,
            np.maximum(spend, 0.0),
            horizon=Duration(self.clv_horizon.amount, unit),
            discount_rate_per_period=self.clv_discount_rate,
            periods=self.clv_periods,
        )
        return np.where(features.buyers, value, np.nan)

    def expected_purchases(self, features: FeatureFrame, today: int) -> NDArray[np.float64]:
        """Expected repeat purchase days over the CLV horizon (for explanations)."""
        if self.bg is None or len(features) == 0:
            return np.full(len(features), np.nan)
        unit = self.clv_horizon.unit
        x, t_x, age = self._summary(features, today, unit)
        bg = self.bg.in_time_unit(unit)
        value = expected_purchases(bg, self.clv_horizon.amount, x, t_x, age)
        return np.where(features.buyers, value, np.nan)

    def to_json(self) -> tuple[dict[str, object] | None, dict[str, object] | None]:
        """(bg_nbd, gamma_gamma) column values for the calibration table."""
        bg: dict[str, object] | None = None
        if self.bg is not None:
            bg = {
                "r": self.bg.r,
                "alpha": self.bg.alpha,
                "a": self.bg.a,
                "b": self.bg.b,
                "time_unit": self.bg.time_unit,
                "log_likelihood": self.bg.log_likelihood,
                "n_customers": self.bg.n_customers,
            }
        gg: dict[str, object] | None = None
        if self.gg is not None:
            gg = {
                "p": self.gg.p,
                "q": self.gg.q,
                "gamma": self.gg.gamma,
                "n_customers": self.gg.n_customers,
            }
        return bg, gg

    @classmethod
    def from_json(
        cls,
        bg: Mapping[str, object] | None,
        gg: Mapping[str, object] | None,
        note: str,
        config: ModelConfig,
    ) -> Models:
        bg_params = None
        if bg is not None:
            unit: TimeUnit = "days" if bg["time_unit"] == "days" else "weeks"
            bg_params = BgNbdParams(
                r=_num(bg["r"]),
                alpha=_num(bg["alpha"]),
                a=_num(bg["a"]),
                b=_num(bg["b"]),
                log_likelihood=_num(bg["log_likelihood"]),
                n_customers=int(_num(bg["n_customers"])),
                time_unit=unit,
            )
        gg_params = None
        if gg is not None:
            gg_params = GammaGammaParams(
                p=_num(gg["p"]),
                q=_num(gg["q"]),
                gamma=_num(gg["gamma"]),
                n_customers=int(_num(gg["n_customers"])),
            )
        return cls(
            bg=bg_params,
            gg=gg_params,
            note=note,
            p_alive_threshold=config.p_alive_threshold,
            clv_horizon=config.clv_horizon,
            clv_periods=config.clv_periods,
            clv_discount_rate=config.clv_discount_rate,
        )


def _num(value: object) -> float:
    if not isinstance(value, int | float):
        raise ValueError(f"expected a number in the stored model, got {value!r}")
    return float(value)


class FitSample:
    """The buyers the models are fitted on, gathered a batch of customers at a time.

    At most ``limit``: those with the smallest fixed hash of their id (distinct for distinct
    ids below 2**32), so the sample is the same whether the buyers come at once or in batches,
    and the same customers stay in it from one refresh to the next.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buyers = 0
        self._kept = FeatureFrame.empty()
        self._keys = np.zeros(0, dtype=np.int64)

    def add(self, features: FeatureFrame) -> None:
        buyers = features.take(features.buyers)
        self.buyers += len(buyers)
        kept = FeatureFrame.concat([self._kept, buyers])
        keys = np.concatenate([self._keys, (buyers.customer_id * _HASH_MULTIPLIER) % (1 << 32)])
        if len(kept) > self.limit:
            smallest = np.argpartition(keys, self.limit - 1)[: self.limit]
            kept, keys = kept.take(smallest), keys[smallest]
        self._kept, self._keys = kept, keys

    def frame(self) -> FeatureFrame:
        """The sample, in customer-id order."""
        return self._kept.take(np.argsort(self._kept.customer_id, kind="stable"))

    def describe(self) -> str:
        if self.buyers > self.limit:
            return f"a fixed-hash sample of {self.limit:,} of {self.buyers:,} buyers"
        return f"all {self.buyers:,} buyers"


def fit_models(sample: FitSample, config: ModelConfig, *, today: int) -> Models:
    """Fit both models on the sampled buyers as of ``today``, or say why they are not used."""

    def result(bg: BgNbdParams | None, gg: GammaGammaParams | None, note: str) -> Models:
        return Models(
            bg=bg,
            gg=gg,
            note=note,
            p_alive_threshold=config.p_alive_threshold,
            clv_horizon=config.clv_horizon,
            clv_periods=config.clv_periods,
            clv_discount_rate=config.clv_discount_rate,
        )

    if not config.enabled:
        return result(None, None, "models disabled in the rules ([model] enabled = false)")
    buyers = sample.frame()
    empty = Models(None, None, "", config.p_alive_threshold, config.clv_horizon, 1, 0.0)
    x, t_x, age = empty._summary(buyers, today, config.time_unit)
    try:
        bg = fit_bg_nbd(
            x,
            t_x,
            age,
            time_unit=config.time_unit,
            min_customers=config.min_customers,
            min_repeat_customers=config.min_repeat_customers,
        )
    except FitError as exc:
        return result(None, None, f"BG/NBD not used, rule-based fallback ({exc})")
    spend = np.where(x > 0, buyers.repeat_revenue / np.maximum(x, 1.0), 0.0)
    try:
        gg: GammaGammaParams | None = fit_gamma_gamma(x, np.maximum(spend, 0.0))
        gg_note = ""
    except FitError as exc:
        gg, gg_note = None, f"; Gamma-Gamma not fitted, no CLV ({exc})"
    return result(bg, gg, f"fitted by maximum likelihood on {sample.describe()}{gg_note}")
