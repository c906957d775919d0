"""Lifecycle stages and segments: features in SQL, rules as TOML data, incremental cycles.

What the rest of the hub calls:

- after each ingest, :func:`run_stage_cycle` with the ids of the customers whose data changed;
  it recomputes them and every customer whose time-based change is due, or everyone when the
  calibration is refreshed. The outcome is in ``customer_state`` (``stage``, ``segments`` such as
  ``["nps:promoter", "rfm:champions"]``, scores, ``next_due_at``) and every stage change in
  ``stage_transition``;
- :func:`explain_customer`, :func:`preview_rules` and :func:`build_report` for the CLI and the
  dashboard.

Modules: ``config`` (rules TOML), ``features`` (SQL), ``windows``, ``models`` (BG/NBD,
Gamma-Gamma), ``calibration``, ``rules`` (pure evaluation), ``engine`` (full and incremental
recompute), ``explain``, ``preview``, ``report``, ``commands`` (click).
"""

from clm_hub.stages.config import StageRules, load_rules
from clm_hub.stages.engine import (
    CycleResult,
    recompute_full,
    recompute_incremental,
    run_stage_cycle,
)

__all__ = [
    "CycleResult",
    "StageRules",
    "load_rules",
    "recompute_full",
    "recompute_incremental",
    "run_stage_cycle",
]
