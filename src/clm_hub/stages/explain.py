"""``clm-hub stages --explain EMAIL``: a customer's stage, the rule that fired and its numbers.

The customer is evaluated afresh against the calibration in force, so the explanation shows the
exact numbers behind the stage; if that differs from the stored stage (time passed since the last
cycle, or new data not yet processed) the output says what the next cycle will do.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, select

from clm_hub.analytics.rfm import SegmentMap
from clm_hub.errors import ClmHubError, StoreError
from clm_hub.stages.calibration import Calibration, load_calibration
from clm_hub.stages.config import StageRules, load_segment_map_for
from clm_hub.stages.engine import compute_features
from clm_hub.stages.features import FeatureFrame
from clm_hub.stages.rules import Evaluation, RuleContext, evaluate
from clm_hub.stages.sql import day_of, today
from clm_hub.store.tables import metadata

__all__ = ["CustomerExplanation", "CustomerNotFound", "explain_customer", "normalise_email"]


class CustomerNotFound(ClmHubError):
    """No customer has the email that was asked about."""


def normalise_email(email: str) -> str:
    """The store's email form: NFKC, trimmed, case-folded."""
    return unicodedata.normalize("NFKC", email).strip().casefold()


@dataclass(frozen=True)
class CustomerExplanation:
    """Everything ``--explain`` prints, for one customer."""

    customer_id: int
    email: str
    now: dt.datetime
    stored: dict[str, Any] | None
    evaluation: Evaluation
    calibration: Calibration
    history: list[tuple[str | None, str, dt.datetime, str]]

    @property
    def stage(self) -> str:
        return self.evaluation.stage(0)

    @property
    def rule_id(self) -> str:
        return self.evaluation.rule(0).id

    def render(self) -> str:
        """The explanation as plain text."""
        e, f, cal = self.evaluation, self.evaluation.features, self.calibration
        money = cal.money.currency
        lines = [f"customer {self.customer_id} <{self.email}>"]
        if self.stored is not None:
            stored_stage = self.stored["stage"]
            since: dt.datetime = self.stored["stage_since"]
            computed: dt.datetime = self.stored["computed_at"]
            lines.append(
                f"stage: {stored_stage} since {since:%Y-%m-%d %H:%M} UTC (rule "
                f"{self.stored['rule']}, computed {computed:%Y-%m-%d %H:%M} UTC)"
            )
            evaluated = f"  evaluated now ({self.now:%Y-%m-%d %H:%M} UTC):"
            if stored_stage == self.stage:
                lines.append(f"{evaluated} still {self.stage}")
            else:
                lines.append(
                    f"{evaluated} {self.stage} - the next cycle moves them (time passed or new "
                    "data since the stored state)"
                )
        else:
            lines.append(f"stage: {self.stage} (evaluated now; no stored state yet)")
        lines.append("why (rules tried in order, the first that holds wins):")
        for rule, fired, checks in e.trace(0):
            mark = "✓" if fired else "✗"
            lines.append(f"  {mark} {rule.id} -> {rule.stage}: {rule.description}".rstrip(": "))
            for ok, text in checks:
                lines.append(f"      {'✓' if ok else '✗'} {text}")
        lines.append("numbers:")
        if f.purchase_days[0] > 0:
            aov = f.revenue[0] / max(int(f.orders[0]), 1)
            ago = int(today(self.now) - f.last_day[0])
            lines += [
                f"  paid orders {int(f.orders[0])} on {int(f.purchase_days[0])} purchase days; "
                f"revenue {f.revenue[0]:,.2f} {money}; average order value {aov:,.2f} {money}",
                f"  first order {day_of(f.first_day[0])}, second purchase day "
                f"{_day(f.second_day[0])}, last order {day_of(f.last_day[0])} ({ago} days ago)",
                f"  median days between purchase days {_num(f.median_gap[0])}; between the last "
                f"two {_num(f.gap_before_last[0])}",
            ]
        else:
            lines.append("  no paid order")
        nps = f.nps_score[0]
        if np.isfinite(nps):
            lines.append(f"  NPS {int(nps)} ({_nps(e)})")
        lines += self._model_lines(money)
        lines += self._rfm_lines(e.context.segment_map)
        lines += self._window_lines()
        due = e.next_due_day[0]
        lines.append(
            f"next due: {day_of(due)} (a time-based change may happen then)"
            if np.isfinite(due)
            else "next due: never by itself (only new data can change the stage)"
        )
        if self.history:
            lines.append("history:")
            for before, after, at, reason in self.history:
                lines.append(f"  {at:%Y-%m-%d %H:%M}  {before or '(none)'} -> {after}  {reason}")
        return "\n".join(lines)

    def _model_lines(self, money: str) -> list[str]:
        models, e = self.calibration.models, self.evaluation
        if not models.in_use or e.features.purchase_days[0] == 0:
            return [f"  models: {models.note}"]
        horizon = models.clv_horizon
        threshold = models.p_alive_threshold
        out = [f"  P(alive) {e.p_alive[0]:.3f} (BG/NBD; at-risk below {threshold:g})"]
        expected = models.expected_purchases(e.features, e.context.today)[0]
        out.append(f"  expected purchase days in the next {horizon}: {expected:.2f}")
        if np.isfinite(e.clv[0]):
            out.append(
                f"  CLV over {horizon} ({models.clv_periods} periods, discounted "
                f"{models.clv_discount_rate:g} per period): {e.clv[0]:,.2f} {money}"
            )
        return out

    def _rfm_lines(self, segment_map: SegmentMap) -> list[str]:
        e, thresholds = self.evaluation, self.calibration.thresholds
        if thresholds is None or e.r[0] == 0:
            return ["RFM: no scores (no paid order)"]
        segment = segment_map.segment_names[int(e.rfm_segment[0])]
        return [
            f"RFM: R{e.r[0]} F{e.f[0]} M{e.m[0]} -> segment {segment!r} "
            f"(map {segment_map.name}; segments {', '.join(e.segments(0)) or 'none'})",
            f"  R (days since last order): {thresholds.recency.explain()}",
            f"  F (purchase days): {thresholds.frequency.explain()}",
            f"  M (revenue): {thresholds.monetary.explain()}",
        ]

    def _window_lines(self) -> list[str]:
        cal, w = self.calibration, self.calibration.windows
        lines = [
            f"calibration #{cal.id} of {cal.calibrated_at:%Y-%m-%d %H:%M} UTC "
            f"(currency {cal.money.currency}):",
            f"  shop cycle {w.cycle_days:g} days: {w.cycle_source}",
            f"  at-risk window {w.at_risk_days} days: {w.at_risk_source}",
            f"  lapsed window {w.lapsed_days} days: {w.lapsed_source}",
        ]
        bg, gg = cal.models.bg, cal.models.gg
        lines.append(f"  models: {cal.models.note}")
        if bg is not None:
            lines.append(
                f"  BG/NBD r={bg.r:.4g} alpha={bg.alpha:.4g} ({bg.time_unit}) a={bg.a:.4g} "
                f"b={bg.b:.4g}"
            )
        if gg is not None:
            lines.append(f"  Gamma-Gamma p={gg.p:.4g} q={gg.q:.4g} gamma={gg.gamma:.4g}")
        return lines


def _day(value: float) -> str:
    return str(day_of(value)) if np.isfinite(value) else "none"


def _num(value: float) -> str:
    return f"{value:g}" if np.isfinite(value) else "none"


def _nps(e: Evaluation) -> str:
    labels = [s.split(":", 1)[1] for s in e.segments(0) if s.startswith("nps:")]
    return labels[0] if labels else "no answer"


def explain_customer(
    engine: Engine, rules: StageRules, *, email: str, now: dt.datetime
) -> CustomerExplanation:
    """Evaluate one customer, found by email, against the calibration in force."""
    wanted = normalise_email(email)
    with engine.connect() as connection:
        customers = metadata.tables["customer"].c
        row = connection.execute(
            select(customers.id, customers.email)
            .where(customers.email == wanted)
            .order_by(customers.id)
            .limit(1)
        ).first()
        if row is None:
            raise CustomerNotFound(f"no customer with email {wanted!r}")
        customer_id = int(row[0])
        calibration = load_calibration(connection, rules)
        if calibration is None:
            raise StoreError("no stage calibration yet: run `clm-hub stages --recompute` first")
        features: FeatureFrame = compute_features(connection, calibration.money, [customer_id])
        table = metadata.tables["customer_state"]
        state = connection.execute(select(table).where(table.c.customer_id == customer_id)).first()
        moves = metadata.tables["stage_transition"].c
        history_rows = connection.execute(
            select(moves.from_stage, moves.to_stage, moves.at, moves.reason)
            .where(moves.customer_id == customer_id)
            .order_by(moves.at, moves.id)
        ).all()
    stored = None
    if state is not None:
        mapping = state._mapping
        explanation = mapping["explanation"] or {}
        stored = {
            "stage": mapping["stage"],
            "stage_since": mapping["stage_since"],
            "computed_at": mapping["computed_at"],
            "rule": explanation.get("rule", "?"),
        }
    context = RuleContext(rules, calibration, load_segment_map_for(rules), today(now))
    return CustomerExplanation(
        customer_id=customer_id,
        email=str(row[1]),
        now=now,
        stored=stored,
        evaluation=evaluate(features, context),
        calibration=calibration,
        history=[(r[0], r[1], r[2], r[3]) for r in history_rows],
    )
