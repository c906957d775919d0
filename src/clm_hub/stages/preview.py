"""``clm-hub stages --preview RULES.toml``: who would move where under other rules, nothing applied.

Both sides are evaluated at the same ``now`` on the same data: the rules in force against the
stored calibration, and the candidate rules against a calibration that reuses every stored part
the candidate does not change (same currency and windows: same shop cycle; same model settings:
same fits). So the matrix shows the effect of the edit alone, not of a refit or of time passing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine

from clm_hub.stages.calibration import Calibration, calibrate, load_calibration, resolve_money
from clm_hub.stages.config import StageRules, load_segment_map_for
from clm_hub.stages.features import FeatureFrame, MoneySpec, currency_counts, feature_slices
from clm_hub.stages.population import Population
from clm_hub.stages.rules import RuleContext, evaluate
from clm_hub.stages.sql import Backend, today

__all__ = ["RulesPreview", "preview_rules"]


@dataclass(frozen=True)
class RulesPreview:
    """Counts of customers per (stage under the rules in force, stage under the candidate)."""

    current_source: str
    candidate_source: str
    now: dt.datetime
    matrix: dict[tuple[str, str], int]
    current_stages: tuple[str, ...]
    candidate_stages: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def total(self) -> int:
        return sum(self.matrix.values())

    @property
    def moved(self) -> int:
        return sum(n for (a, b), n in self.matrix.items() if a != b)

    def count(self, current: str, candidate: str) -> int:
        return self.matrix.get((current, candidate), 0)

    def render(self) -> str:
        """The matrix as a plain-text table, rows = rules in force, columns = candidate."""
        rows = [s for s in self.current_stages if any(k[0] == s for k in self.matrix)]
        cols = [s for s in self.candidate_stages if any(k[1] == s for k in self.matrix)]
        width = max([len("now \\ candidate"), *(len(s) for s in rows)])
        cell = max([7, *(len(c) for c in cols)])
        header = "now \\ candidate".ljust(width) + "".join(c.rjust(cell + 2) for c in cols)
        lines = [
            f"preview of {self.candidate_source} against {self.current_source} "
            f"at {self.now:%Y-%m-%d %H:%M} UTC (nothing applied)",
            header,
        ]
        for stage in rows:
            counts = "".join(f"{self.count(stage, c):,}".rjust(cell + 2) for c in cols)
            lines.append(stage.ljust(width) + counts)
        lines.append(f"{self.moved:,} of {self.total:,} customers would change stage")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def preview_rules(
    engine: Engine, current: StageRules, candidate: StageRules, *, now: dt.datetime
) -> RulesPreview:
    """Evaluate every customer under both rule sets at ``now``; write nothing.

    Customers are read a slice at a time (a calibration made for the preview is gathered in a
    pass of its own first), so a preview of a large shop takes no more memory than a small one.
    """
    notes: list[str] = []
    day = today(now)
    with engine.connect() as connection:
        db = Backend(connection)
        stored = load_calibration(connection, current)
        counts = currency_counts(db)
        base_money = stored.money if stored is not None else resolve_money(current, counts)
        if stored is None:
            notes.append("no stored calibration: both sides calibrated from the data now")
            stored = calibrate(
                _population(db, base_money, current), current, now=now, money=base_money,
                currency_counts=counts,
            )  # fmt: skip
        elif stored.rules_fingerprint != current.fingerprint:
            notes.append("the stored calibration was made for other rules than those in force")
        money = resolve_money(candidate, counts)
        if candidate.money.currency == "auto" and current.money.currency == "auto":
            # the currency "auto" chose for the stored calibration, with the candidate's rates
            money = MoneySpec(base_money.currency, dict(candidate.money.rates))
        trial: Calibration = calibrate(
            _population(db, money, candidate), candidate, now=now, money=money,
            currency_counts=counts, reuse=stored,
        )  # fmt: skip
        for part in ("windows", "model"):
            if trial.parts[part] != stored.parts.get(part) or money != stored.money:
                notes.append(f"the candidate changes [{part}]: recalibrated for the preview")
        before = RuleContext(current, stored, load_segment_map_for(current), day)
        after = RuleContext(candidate, trial, load_segment_map_for(candidate), day)
        base_slices = feature_slices(db, base_money, scoped=False)
        pairs: Counter[tuple[str, str]] = Counter()
        if money == base_money:
            sides: Iterable[tuple[FeatureFrame, FeatureFrame]] = ((f, f) for f in base_slices)
        else:  # the same customers in the same slices, with amounts in the other currency
            other = feature_slices(db, money, scoped=False)
            sides = zip(base_slices, other, strict=True)
        for base, features in sides:
            if not np.array_equal(base.customer_id, features.customer_id):
                raise AssertionError("both sides must cover the same customers")
            was, will = evaluate(base, before).stages(), evaluate(features, after).stages()
            pairs.update(zip(was.tolist(), will.tolist(), strict=True))
    return RulesPreview(
        current_source=current.source,
        candidate_source=candidate.source,
        now=now,
        matrix={(str(a), str(b)): n for (a, b), n in pairs.items()},
        current_stages=current.stages,
        candidate_stages=tuple(dict.fromkeys([*candidate.stages, *current.stages])),
        notes=tuple(notes),
    )


def _population(db: Backend, money: MoneySpec, rules: StageRules) -> Population:
    slices = feature_slices(db, money, scoped=False, scores=False)
    return Population.of(slices, rules.model.max_fit_customers)
