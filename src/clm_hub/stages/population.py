"""What a calibration needs from every customer, gathered one slice of customers at a time.

A full recompute used to hold every customer's features at once to calibrate (about 130 bytes
a customer, plus the arrays derived from them), so its memory grew with the shop. A calibration
needs much less: how many customers buy and come back, the distributions behind the RFM
thresholds and the shop cycle, and the fixed-hash sample the models are fitted on. They are
kept here as exact value counts and the sample's rows, so memory is bounded by the sample and
the number of distinct values (purchase days, last-order days, gaps in days, revenues in the
smallest currency unit), whatever the number of customers.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from clm_hub.analytics.value_counts import ValueCounts
from clm_hub.stages.features import FeatureFrame
from clm_hub.stages.models import FitSample
from clm_hub.store.types import MONEY_SCALE

__all__ = ["Population"]


class Population:
    """Every customer's contribution to a calibration, added a frame at a time."""

    def __init__(self, fit_limit: int) -> None:
        self.customers = 0
        self.buyers = 0
        self.repeat_buyers = 0
        self.first_day: float | None = None
        """The earliest first purchase day of any buyer."""
        self.last_days = ValueCounts()
        """Each buyer's last purchase day (recency is read from it at the calibration day)."""
        self.purchase_days = ValueCounts()
        self.revenue_units = ValueCounts()
        """Each buyer's revenue in the smallest unit (revenue x MONEY_SCALE, an integer)."""
        self.cycle_gaps = ValueCounts()
        """Days from the first to the second purchase day, of buyers with two or more."""
        self.sample = FitSample(fit_limit)

    @classmethod
    def of(cls, frames: Iterable[FeatureFrame], fit_limit: int) -> Population:
        population = cls(fit_limit)
        for frame in frames:
            population.add(frame)
        return population

    def add(self, features: FeatureFrame) -> None:
        self.customers += len(features)
        buyers = features.take(features.buyers)
        if not len(buyers):
            return
        self.buyers += len(buyers)
        repeat = buyers.purchase_days >= 2
        self.repeat_buyers += int(repeat.sum())
        first = float(buyers.first_day.min())
        self.first_day = first if self.first_day is None else min(self.first_day, first)
        self.last_days.add(buyers.last_day)
        self.purchase_days.add(buyers.purchase_days)
        self.revenue_units.add(np.rint(buyers.revenue * MONEY_SCALE))
        self.cycle_gaps.add((buyers.second_day - buyers.first_day)[repeat])
        self.sample.add(buyers)

    def recency(self, as_of: int, k: int) -> float:
        """The ``k``-th smallest days-since-last-order on day ``as_of`` (from 0): recency falls
        as the last day rises, so it is the ``k``-th largest last day's."""
        return max(float(as_of - self.last_days.kth(self.buyers - 1 - k)), 0.0)

    def revenue(self, k: int) -> float:
        """The ``k``-th smallest revenue (from 0), as the features hold it."""
        return self.revenue_units.kth(k) / MONEY_SCALE
