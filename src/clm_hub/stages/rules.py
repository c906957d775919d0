"""Stage rules and segments, evaluated for many customers at once: pure, no I/O, no clock.

:func:`evaluate` takes features, a calibration and ``today`` (a UTC day number) and returns an
:class:`Evaluation`: per customer the stage, the rule that fired, the RFM scores and segments,
P(alive) and CLV, and the next day on which a time-based change is due. Rules are tried in order
and the first whose conditions all hold wins.

Why ``next_due_day`` is exact: every condition that depends on time (days since the last or first
order, P(alive), the R score) is monotone in time, so it changes value at most once, on a day
computed here (its *flip day*). A customer's outcome can only change when a condition of the
firing rule or of an earlier rule flips, or when their R score crosses a threshold; the earliest
such day after ``today`` is when they are next due. Until then, re-evaluating them would give the
same stage and segments, which is what lets an incremental cycle skip them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import numpy as np
from numpy.typing import NDArray

from clm_hub.analytics.rfm import SegmentMap, score_array, slugify
from clm_hub.stages.calibration import Calibration
from clm_hub.stages.config import NPS_CLASSES, RuleSpec, StageRules, WindowRef
from clm_hub.stages.features import FeatureFrame

__all__ = ["Check", "Evaluation", "RuleContext", "evaluate", "nps_class_index"]

Mask = NDArray[np.bool_]
Floats = NDArray[np.float64]
NO_DAY: Final = np.inf


def nps_class_index(scores: Floats) -> NDArray[np.int64]:
    """0 promoter (9-10), 1 passive (7-8), 2 detractor (0-6), -1 no answer."""
    out = np.full(scores.shape, -1, dtype=np.int64)
    answered = np.isfinite(scores)
    out[answered & (scores >= 9)] = 0
    out[answered & (scores >= 7) & (scores < 9)] = 1
    out[answered & (scores < 7)] = 2
    return out


@dataclass(frozen=True)
class RuleContext:
    """What rules are evaluated against, besides each customer's features."""

    rules: StageRules
    calibration: Calibration
    segment_map: SegmentMap
    today: int


@dataclass(frozen=True)
class Check:
    """One condition over all customers: whether it holds, when it flips, how to say it."""

    key: str
    mask: Mask
    flip_day: Floats | None
    describe: Callable[[int], str]


def _fmt(value: float, unit: str = "") -> str:
    if not np.isfinite(value):
        return "none"
    text = f"{value:,.2f}" if value != round(value) else f"{int(value):,}"
    return f"{text} {unit}".rstrip()


class _Inputs:
    """Per-customer quantities derived once per evaluation, shared by every condition."""

    def __init__(self, features: FeatureFrame, context: RuleContext) -> None:
        self.features = features
        self.context = context
        self.today = float(context.today)
        self.windows = context.calibration.windows
        self.models = context.calibration.models
        self.buyers: Mask = features.buyers

    @cached_property
    def days_since_last(self) -> Floats:
        return np.where(self.buyers, np.maximum(self.today - self.features.last_day, 0.0), np.nan)

    @cached_property
    def days_since_first(self) -> Floats:
        return np.where(self.buyers, np.maximum(self.today - self.features.first_day, 0.0), np.nan)

    @cached_property
    def personal_window(self) -> Floats:
        return self.windows.personal_at_risk(self.features)

    @cached_property
    def p_alive(self) -> Floats:
        return self.models.p_alive(self.features, self.context.today)

    @cached_property
    def model_used(self) -> Mask:
        return self.models.in_use & (self.features.purchase_days >= 2)

    @cached_property
    def scores(self) -> tuple[NDArray[np.int8], NDArray[np.int8], NDArray[np.int8]]:
        n = len(self.features)
        thresholds = self.context.calibration.thresholds
        if thresholds is None or n == 0:
            zero = np.zeros(n, dtype=np.int8)
            return zero, zero.copy(), zero.copy()
        buyers = self.buyers
        recency = np.where(buyers, self.days_since_last, 0.0)
        r = np.where(buyers, score_array(recency, thresholds.recency), 0).astype(np.int8)
        f_raw = self.features.purchase_days.astype(np.float64)
        f = np.where(buyers, score_array(f_raw, thresholds.frequency), 0).astype(np.int8)
        m_raw = np.where(buyers, self.features.revenue, 0.0)
        m = np.where(buyers, score_array(m_raw, thresholds.monetary), 0).astype(np.int8)
        return r, f, m

    @cached_property
    def r_flip_days(self) -> list[Floats]:
        """Days on which the R score drops: last order + each recency cut (rounded up)."""
        thresholds = self.context.calibration.thresholds
        if thresholds is None:
            return []
        last = np.where(self.buyers, self.features.last_day, np.nan)
        return [last + np.ceil(cut) for cut in thresholds.recency.cuts]

    @cached_property
    def nps_class(self) -> NDArray[np.int64]:
        return nps_class_index(self.features.nps_score)


def _count_check(key: str, limit: int, values: NDArray[np.int64], label: str) -> Check:
    is_min = key.startswith("min_")
    mask = values >= limit if is_min else values <= limit
    op = ">=" if is_min else "<="
    return Check(key, mask, None, lambda i: f"{label} = {int(values[i])} (needs {op} {limit})")


def _window_check(key: str, ref: WindowRef, d: _Inputs, since_first: bool) -> Check:
    days = d.windows.days(ref)
    values = d.days_since_first if since_first else d.days_since_last
    anchor = d.features.first_day if since_first else d.features.last_day
    is_min = key.startswith("min_")
    with np.errstate(invalid="ignore"):
        mask = (values >= days) if is_min else (values < days)
    mask &= d.buyers
    flip = np.where(d.buyers, anchor + days, np.nan)
    label = "days since first order" if since_first else "days since last order"
    op = ">=" if is_min else "<"
    window = d.windows.describe(ref)
    return Check(key, mask, flip, lambda i: f"{label} = {_fmt(values[i])} (needs {op} {window})")


def _overdue_check(key: str, wanted: bool, d: _Inputs) -> Check:
    th = d.models.p_alive_threshold
    with np.errstate(invalid="ignore"):
        by_model = d.p_alive < th
        by_days = d.days_since_last >= d.personal_window
    overdue = np.where(d.model_used, by_model, by_days) & d.buyers
    mask = (overdue if wanted else ~overdue) & d.buyers
    flip_by_days = np.where(d.buyers, d.features.last_day + d.personal_window, np.nan)
    flip = np.where(d.model_used, d.models.p_alive_crossing_day(d.features), flip_by_days)
    own_min = d.windows.own_cycle_min_purchase_days
    factor = d.windows.own_cycle_factor

    def describe(i: int) -> str:
        if not d.buyers[i]:
            return "overdue: no order yet"
        if d.model_used[i]:
            return (
                f"P(alive) = {d.p_alive[i]:.3f} (overdue when < {th:g}; BG/NBD, "
                f"{d.features.purchase_days[i]} purchase days)"
            )
        if not d.models.in_use:
            why = "BG/NBD not in use"
        else:
            why = "BG/NBD says nothing about one purchase day"
        window = int(d.personal_window[i])
        if d.features.purchase_days[i] >= own_min and np.isfinite(d.features.median_gap[i]):
            basis = (
                f"{factor:g} x own median gap {_fmt(d.features.median_gap[i])} days, kept "
                f"within [cycle {_fmt(np.ceil(d.windows.cycle_days))}, at-risk window "
                f"{d.windows.at_risk_days}]"
            )
        else:
            basis = "the shop's at-risk window"
        return (
            f"days since last order = {_fmt(d.days_since_last[i])} (overdue when >= {window} = "
            f"{basis}; rule-based fallback: {why})"
        )

    return Check(key, mask, flip, describe)


def _score_check(key: str, limit: int, d: _Inputs) -> Check:
    letter = key.split("_")[1]
    scores = dict(zip("rfm", d.scores, strict=True))[letter]
    is_min = key.startswith("min_")
    mask = ((scores >= limit) if is_min else (scores <= limit)) & d.buyers
    op = ">=" if is_min else "<="
    flip = None
    if letter == "r":
        # R only falls with time; the cuts' flip days are added to every customer anyway.
        flip = np.full(len(d.features), np.nan)
    return Check(
        key,
        mask,
        flip,
        lambda i: f"{letter.upper()} score = {int(scores[i]) or 'none'} (needs {op} {limit})",
    )


def _checks(rule: RuleSpec, d: _Inputs) -> list[Check]:
    f = d.features
    checks: list[Check] = []
    for key, value in rule.conditions.items():
        if key in ("min_orders", "max_orders"):
            checks.append(_count_check(key, int(str(value)), f.orders, "paid orders"))
        elif key in ("min_purchase_days", "max_purchase_days"):
            checks.append(_count_check(key, int(str(value)), f.purchase_days, "purchase days"))
        elif key in ("min_revenue", "max_revenue"):
            checks.append(_revenue_check(key, float(str(value)), d))
        elif key in ("min_days_since_last_order", "max_days_since_last_order"):
            assert isinstance(value, WindowRef)
            checks.append(_window_check(key, value, d, since_first=False))
        elif key in ("min_days_since_first_order", "max_days_since_first_order"):
            assert isinstance(value, WindowRef)
            checks.append(_window_check(key, value, d, since_first=True))
        elif key == "min_gap_before_last_order":
            assert isinstance(value, WindowRef)
            checks.append(_gap_check(key, value, d))
        elif key == "overdue":
            checks.append(_overdue_check(key, bool(value), d))
        elif key.endswith("_score"):
            checks.append(_score_check(key, int(str(value)), d))
        elif key == "nps_class":
            assert isinstance(value, list)
            checks.append(_nps_check(key, [str(v) for v in value], d))
        else:  # pragma: no cover - RuleSpec forbids unknown keys
            raise ValueError(f"unknown condition {key!r}")
    return checks


def _revenue_check(key: str, limit: float, d: _Inputs) -> Check:
    revenue = d.features.revenue
    is_min = key.startswith("min_")
    mask = (revenue >= limit) if is_min else (revenue <= limit)
    op = ">=" if is_min else "<="
    currency = d.context.calibration.money.currency
    return Check(
        key, mask, None, lambda i: f"revenue = {revenue[i]:,.2f} {currency} (needs {op} {limit:g})"
    )


def _gap_check(key: str, ref: WindowRef, d: _Inputs) -> Check:
    days = d.windows.days(ref)
    gap = d.features.gap_before_last
    with np.errstate(invalid="ignore"):
        mask = gap >= days
    window = d.windows.describe(ref)
    return Check(
        key,
        mask,
        None,
        lambda i: f"days between the last two purchase days = {_fmt(gap[i])} (needs >= {window})",
    )


def _nps_check(key: str, classes: list[str], d: _Inputs) -> Check:
    wanted = [NPS_CLASSES.index(c) for c in classes]
    mask = np.isin(d.nps_class, wanted)

    def describe(i: int) -> str:
        index = int(d.nps_class[i])
        have = NPS_CLASSES[index] if index >= 0 else "no answer"
        return f"NPS class = {have} (needs one of {', '.join(classes)})"

    return Check(key, mask, None, describe)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Stages, segments and due days of a batch of customers (same order as the features)."""

    features: FeatureFrame
    context: RuleContext
    rule_index: NDArray[np.int64]
    r: NDArray[np.int8]
    f: NDArray[np.int8]
    m: NDArray[np.int8]
    rfm_segment: NDArray[np.int64]
    """Index into ``context.segment_map.segment_names``; -1 for customers with no order."""
    nps_class: NDArray[np.int64]
    p_alive: Floats
    clv: Floats
    next_due_day: Floats
    """First day after ``today`` on which the outcome may change; NaN if never by itself."""
    checks: tuple[tuple[Check, ...], ...]

    def __len__(self) -> int:
        return len(self.features)

    @property
    def rules(self) -> list[RuleSpec]:
        return self.context.rules.rules

    def stage(self, i: int) -> str:
        return self.rules[int(self.rule_index[i])].stage

    def rule(self, i: int) -> RuleSpec:
        return self.rules[int(self.rule_index[i])]

    def stages(self) -> NDArray[np.object_]:
        """Stage slug per customer."""
        names = np.array([rule.stage for rule in self.rules], dtype=object)
        return np.asarray(names[self.rule_index], dtype=object)

    def segments(self, i: int) -> list[str]:
        """Namespaced segment slugs, e.g. ``["nps:promoter", "rfm:champions"]``."""
        out = []
        if self.rfm_segment[i] >= 0:
            name = self.context.segment_map.segment_names[int(self.rfm_segment[i])]
            out.append(f"rfm:{slugify(name)}")
        if self.nps_class[i] >= 0:
            out.append(f"nps:{NPS_CLASSES[int(self.nps_class[i])]}")
        return sorted(out)

    def reason(self, i: int) -> str:
        """Why customer ``i`` is in their stage, in one line (for the transition history)."""
        j = int(self.rule_index[i])
        parts = [check.describe(i) for check in self.checks[j]]
        return f"{self.rules[j].id}: " + ("; ".join(parts) if parts else self.rules[j].description)

    def trace(self, i: int) -> list[tuple[RuleSpec, bool, list[tuple[bool, str]]]]:
        """Every rule up to the one that fired, with each condition's outcome and numbers."""
        fired = int(self.rule_index[i])
        return [
            (
                self.rules[j],
                j == fired,
                [(bool(check.mask[i]), check.describe(i)) for check in self.checks[j]],
            )
            for j in range(fired + 1)
        ]


def evaluate(features: FeatureFrame, context: RuleContext) -> Evaluation:
    """Stage, segments and next due day for each customer in ``features``."""
    inputs = _Inputs(features, context)
    n = len(features)
    rules = context.rules.rules
    checks = tuple(tuple(_checks(rule, inputs)) for rule in rules)
    rule_index = np.full(n, len(rules) - 1, dtype=np.int64)
    open_ = np.ones(n, dtype=bool)
    for j, rule_checks in enumerate(checks[:-1]):
        match = np.ones(n, dtype=bool)
        for check in rule_checks:
            match &= check.mask
        rule_index[open_ & match] = j
        open_ &= ~match

    due = np.full(n, NO_DAY)
    today = float(context.today)
    for j, rule_checks in enumerate(checks):
        relevant = rule_index >= j  # rules after the firing one cannot change the outcome
        for check in rule_checks:
            if check.flip_day is not None:
                future = relevant & (check.flip_day > today)
                due = np.where(future, np.fmin(due, check.flip_day), due)
    for flip in inputs.r_flip_days:
        due = np.where(flip > today, np.fmin(due, flip), due)
    due = np.where(np.isfinite(due), due, np.nan)

    r, f, m = inputs.scores
    segment = np.full(n, -1, dtype=np.int64)
    buyers = features.buyers & (r > 0)
    if buyers.any():
        names = context.segment_map.segments_for(r[buyers], f[buyers], m[buyers])
        lookup = {name: k for k, name in enumerate(context.segment_map.segment_names)}
        segment[buyers] = np.array([lookup[str(name)] for name in names], dtype=np.int64)
    return Evaluation(
        features=features,
        context=context,
        rule_index=rule_index,
        r=r,
        f=f,
        m=m,
        rfm_segment=segment,
        nps_class=inputs.nps_class,
        p_alive=inputs.p_alive,
        clv=context.calibration.models.clv(features, context.today),
        next_due_day=due,
        checks=checks,
    )
