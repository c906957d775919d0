"""``clm-hub stages --preview RULES.toml``: who would move where under other rules, nothing applied.

Both sides are evaluated at the same ``now`` on the same data: the rules in force against the
stored calibration, and the candidate rules against a calibration that reuses every stored part
the candidate does not change (same currency and windows: same shop cycle; same model settings:
same fits). So the matrix shows the effect of the edit alone, not of a refit or of time passing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine

from clm_hub.stages.calibration import Calibration, calibrate, load_calibration, resolve_money
from clm_hub.stages.config import StageRules, load_segment_map_for
from clm_hub.stages.engine import compute_features
from clm_hub.stages.features import currency_counts
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
    """Evaluate every customer under both rule sets at ``now``; write nothing."""
    notes: list[str] = []
    with engine.connect() as connection:
        stored = load_calibration(connection, current)
        counts = currency_counts(Backend(connection))
        base_money = stored.money if stored is not None else resolve_money(current, counts)
        base_features = compute_features(connection, base_money)
        if stored is None:
            notes.append("no stored calibration: both sides calibrated from the data now")
            stored = calibrate(
                base_features, current, now=now, money=base_money, currency_counts=counts
            )
        elif stored.rules_fingerprint != current.fingerprint:
            notes.append("the stored calibration was made for other rules than those in force")
        money = resolve_money(candidate, counts)
        if candidate.money.currency == "auto" and current.money.currency == "auto":
            money = base_money
        features = base_features if money == base_money else compute_features(connection, money)
    trial: Calibration = calibrate(
        features, candidate, now=now, money=money, currency_counts=counts, reuse=stored
    )
    for part in ("windows", "model"):
        if trial.parts[part] != stored.parts.get(part) or money != stored.money:
            notes.append(f"the candidate changes [{part}]: recalibrated for the preview")
    day = today(now)
    before = evaluate(
        base_features, RuleContext(current, stored, load_segment_map_for(current), day)
    )
    after = evaluate(features, RuleContext(candidate, trial, load_segment_map_for(candidate), day))
    if not np.array_equal(before.features.customer_id, after.features.customer_id):
        raise AssertionError("both sides must cover the same customers")
    pairs = Counter(zip(before.stages().tolist(), after.stages().tolist(), strict=True))
    return RulesPreview(
        current_source=current.source,
        candidate_source=candidate.source,
        now=now,
        matrix={(str(a), str(b)): n for (a, b), n in pairs.items()},
        current_stages=current.stages,
        candidate_stages=tuple(dict.fromkeys([*candidate.stages, *current.stages])),
        notes=tuple(notes),
    )
