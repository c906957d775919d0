"""Time windows in whole days, derived from the shop's own purchase cycle.

The shop cycle is the median number of days from a customer's first to their second purchase
day, over every customer with two or more (orders on one day are one purchase). The at-risk and
lapsed windows default to multiples of it; ``"N days"`` in the rules fixes them instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from clm_hub.analytics.value_counts import ValueCounts
from clm_hub.stages.config import WindowRef, WindowsConfig, whole_days
from clm_hub.stages.features import FeatureFrame

__all__ = ["ShopCycle", "Windows", "derive_windows", "measure_shop_cycle"]


@dataclass(frozen=True)
class ShopCycle:
    """The measured first-to-second purchase gap: median days and how many customers."""

    median_days: float | None
    customers: int


def measure_shop_cycle(gaps: ValueCounts) -> ShopCycle:
    """The median of the first-to-second purchase gaps (days) of customers with two or more."""
    n = gaps.total
    if n == 0:
        return ShopCycle(None, 0)
    middle = (gaps.kth((n - 1) // 2) + gaps.kth(n // 2)) / 2.0  # as numpy's median takes it
    return ShopCycle(float(middle), n)


@dataclass(frozen=True)
class Windows:
    """Resolved windows in days, each with the sentence that says where it came from."""

    cycle_days: float
    cycle_source: str
    at_risk_days: int
    at_risk_source: str
    lapsed_days: int
    lapsed_source: str
    own_cycle_factor: float
    own_cycle_min_purchase_days: int

    def days(self, ref: WindowRef) -> int:
        """A rule's window reference in whole days."""
        if ref.kind == "days":
            return round(ref.amount)
        if ref.kind == "cycles":
            return whole_days(ref.amount * self.cycle_days)
        return {
            "cycle": whole_days(self.cycle_days),
            "at_risk": self.at_risk_days,
            "lapsed": self.lapsed_days,
        }[ref.name]

    def describe(self, ref: WindowRef) -> str:
        """E.g. ``lapsed window 124 days`` or ``3 cycles = 93 days``."""
        days = self.days(ref)
        if ref.kind == "named":
            return f"{ref.name.replace('_', '-')} window {days} days"
        if ref.kind == "cycles":
            return f"{ref.amount:g} cycles = {days} days"
        return f"{days} days"

    def personal_at_risk(self, features: FeatureFrame) -> NDArray[np.float64]:
        """Days without an order after which each customer is overdue (rule-based test).

        ``own_cycle_factor`` x their median gap for customers with enough purchase days, kept
        between one shop cycle and the shop's at-risk window; the at-risk window for everyone
        else. NaN for customers with no order.
        """
        shop = np.full(len(features), float(self.at_risk_days))
        own = np.ceil(self.own_cycle_factor * features.median_gap - 1e-9)
        own = np.clip(own, float(whole_days(self.cycle_days)), float(self.at_risk_days))
        has_own = (features.purchase_days >= self.own_cycle_min_purchase_days) & np.isfinite(own)
        window = np.where(has_own, own, shop)
        return np.where(features.buyers, window, np.nan)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Windows:
        return cls(
            cycle_days=float(str(data["cycle_days"])),
            cycle_source=str(data["cycle_source"]),
            at_risk_days=int(str(data["at_risk_days"])),
            at_risk_source=str(data["at_risk_source"]),
            lapsed_days=int(str(data["lapsed_days"])),
            lapsed_source=str(data["lapsed_source"]),
            own_cycle_factor=float(str(data["own_cycle_factor"])),
            own_cycle_min_purchase_days=int(str(data["own_cycle_min_purchase_days"])),
        )


def derive_windows(config: WindowsConfig, cycle: ShopCycle) -> Windows:
    """Resolve the ``[windows]`` table against a measured shop cycle."""
    if config.cycle != "auto":
        cycle_days = float(config.cycle.amount)
        source = f"set in the rules ({config.cycle})"
    elif cycle.median_days is not None and cycle.customers >= config.cycle_min_customers:
        cycle_days = max(1.0, cycle.median_days)
        source = f"median days from first to second purchase day over {cycle.customers:,} customers"
    else:
        cycle_days = float(config.cycle_fallback.amount)
        source = (
            f"cycle_fallback ({config.cycle_fallback}): only {cycle.customers} customers have "
            f"a second purchase day, fewer than cycle_min_customers = {config.cycle_min_customers}"
        )

    def resolve(ref: WindowRef) -> tuple[int, str]:
        if ref.kind == "days":
            return whole_days(ref.amount), f"set in the rules ({ref})"
        days = whole_days(ref.amount * cycle_days)
        return days, f"{ref.amount:g} x shop cycle of {cycle_days:g} days, rounded up"

    at_risk, at_risk_source = resolve(config.at_risk)
    lapsed, lapsed_source = resolve(config.lapsed)
    return Windows(
        cycle_days=cycle_days,
        cycle_source=source,
        at_risk_days=at_risk,
        at_risk_source=at_risk_source,
        lapsed_days=lapsed,
        lapsed_source=lapsed_source,
        own_cycle_factor=config.own_cycle_factor,
        own_cycle_min_purchase_days=config.own_cycle_min_purchase_days,
    )
