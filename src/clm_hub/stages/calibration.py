"""The calibration in force: currency, windows, RFM thresholds and model fits, with their date.

A calibration is made from every customer's features at a full recompute and stored in
``stage_calibration``; incremental cycles score changed and due customers against the newest one,
so that one customer's new order never re-ranks everyone. It is refreshed when
``[calibration] refresh_every`` has passed or the rules changed (their fingerprint differs).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, insert, select

from clm_hub.analytics.rfm import RfmThresholds, Thresholds, thresholds_from_ranks
from clm_hub.stages.config import StageRules
from clm_hub.stages.features import FeatureFrame, MoneySpec
from clm_hub.stages.models import Models, fit_models
from clm_hub.stages.population import Population
from clm_hub.stages.sql import day_start, today
from clm_hub.stages.windows import Windows, derive_windows, measure_shop_cycle
from clm_hub.store.tables import StageCalibration, metadata

__all__ = [
    "Calibration",
    "calibrate",
    "load_calibration",
    "refresh_due",
    "resolve_money",
    "save_calibration",
]

PARTS = ("money", "windows", "model", "rfm")


@dataclass(frozen=True)
class Calibration:
    """Everything customers are scored against, as of ``as_of_day``."""

    calibrated_at: dt.datetime
    rules_fingerprint: str
    money: MoneySpec
    windows: Windows
    thresholds: RfmThresholds | None
    models: Models
    observed_from_day: float | None
    parts: Mapping[str, str]
    """Fingerprints of the rule tables each part was made with (for previews)."""
    counts: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None

    @property
    def as_of_day(self) -> int:
        return today(self.calibrated_at)


def resolve_money(rules: StageRules, currency_counts: Mapping[str, int]) -> MoneySpec:
    """The main currency: the configured one, or the one with the most counted orders."""
    currency = rules.money.currency
    if currency == "auto":
        ranked = sorted(currency_counts.items(), key=lambda item: (-item[1], item[0]))
        currency = ranked[0][0] if ranked else "EUR"
    return MoneySpec(currency=currency, rates=dict(rules.money.rates))


def _thresholds(population: Population, as_of: int) -> RfmThresholds | None:
    n = population.buyers
    if n == 0:
        return None
    return RfmThresholds(
        recency=thresholds_from_ranks(
            lambda k: population.recency(as_of, k), n, higher_is_better=False
        ),
        frequency=thresholds_from_ranks(lambda k: float(population.purchase_days.kth(k)), n),
        monetary=thresholds_from_ranks(population.revenue, n),
    )


def calibrate(
    population: Population | FeatureFrame,
    rules: StageRules,
    *,
    now: dt.datetime,
    money: MoneySpec,
    currency_counts: Mapping[str, int],
    reuse: Calibration | None = None,
) -> Calibration:
    """A calibration from every customer as of ``now``: their :class:`Population`, gathered a
    slice at a time, or all their features in one frame.

    With ``reuse``, parts whose rule tables are unchanged (and that were made in the same
    currency) are taken from it instead of being measured again: a preview of edited stage rules
    then shows the effect of the edit alone, not of a refit.
    """
    if isinstance(population, FeatureFrame):
        population = Population.of([population], rules.model.max_fit_customers)
    parts = {part: rules.part_fingerprint(part) for part in PARTS}  # type: ignore[arg-type]
    same = (
        {p for p in PARTS if reuse.parts.get(p) == parts[p]}
        if reuse is not None and reuse.money == money
        else set()
    )
    as_of = today(now)
    measured = measure_shop_cycle(population.cycle_gaps)
    if reuse is not None and "windows" in same:
        windows = reuse.windows
    else:
        windows = derive_windows(rules.windows, measured)
    if reuse is not None and "money" in same:
        thresholds = reuse.thresholds
    else:
        thresholds = _thresholds(population, as_of)
    if reuse is not None and "model" in same:
        models = reuse.models
    else:
        models = fit_models(population.sample, rules.model, today=as_of)
    ignored = {code: n for code, n in currency_counts.items() if code not in money.currencies}
    counts = {
        "customers": population.customers,
        "buyers": population.buyers,
        "repeat_buyers": population.repeat_buyers,
        "orders_ignored_by_currency": dict(sorted(ignored.items())),
        "first_to_second_median_days": measured.median_days,
        "first_to_second_customers": measured.customers,
    }
    return Calibration(
        calibrated_at=now,
        rules_fingerprint=rules.fingerprint,
        money=money,
        windows=windows,
        thresholds=thresholds,
        models=models,
        observed_from_day=population.first_day,
        parts=parts,
        counts=counts,
    )


def refresh_due(calibration: Calibration | None, rules: StageRules, now: dt.datetime) -> bool:
    """Whether the next cycle must recalibrate (and so recompute everyone)."""
    if calibration is None or calibration.rules_fingerprint != rules.fingerprint:
        return True
    age = now - calibration.calibrated_at
    return age >= dt.timedelta(days=rules.calibration.refresh_every.days) or age < dt.timedelta(0)


def save_calibration(connection: Connection, calibration: Calibration) -> Calibration:
    """Store a calibration; it is in force from now on. Returns it with its id."""
    bg, gg = calibration.models.to_json()
    thresholds = None
    if calibration.thresholds is not None:
        t = calibration.thresholds
        thresholds = {
            "recency": t.recency.to_dict(),
            "frequency": t.frequency.to_dict(),
            "monetary": t.monetary.to_dict(),
        }
    observed = calibration.observed_from_day
    result = connection.execute(
        insert(StageCalibration).values(
            calibrated_at=calibration.calibrated_at,
            rules_fingerprint=calibration.rules_fingerprint,
            currency=calibration.money.currency,
            observed_from=day_start(observed) if observed is not None else None,
            cycle_days=calibration.windows.cycle_days,
            windows=calibration.windows.to_dict(),
            rfm_thresholds=thresholds,
            bg_nbd=bg,
            gamma_gamma=gg,
            model_note=calibration.models.note,
            details={
                "rates": dict(calibration.money.rates),
                "parts": dict(calibration.parts),
                "counts": dict(calibration.counts),
            },
        )
    )
    key = result.inserted_primary_key
    return replace(calibration, id=int(key[0]) if key else None)


def load_calibration(connection: Connection, rules: StageRules) -> Calibration | None:
    """The newest stored calibration, or ``None`` before the first full recompute."""
    table = metadata.tables["stage_calibration"]
    row = connection.execute(select(table).order_by(table.c.id.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    stored = StageCalibration.model_validate(dict(row))
    thresholds = None
    if stored.rfm_thresholds is not None:
        data = stored.rfm_thresholds
        thresholds = RfmThresholds(
            recency=Thresholds.from_dict(data["recency"]),
            frequency=Thresholds.from_dict(data["frequency"]),
            monetary=Thresholds.from_dict(data["monetary"]),
        )
    details = stored.details
    observed = stored.observed_from
    return Calibration(
        calibrated_at=stored.calibrated_at,
        rules_fingerprint=stored.rules_fingerprint,
        money=MoneySpec(stored.currency, dict(details.get("rates", {}))),
        windows=Windows.from_dict(stored.windows),
        thresholds=thresholds,
        models=Models.from_json(stored.bg_nbd, stored.gamma_gamma, stored.model_note, rules.model),
        observed_from_day=float(today(observed)) if observed is not None else None,
        parts=dict(details.get("parts", {})),
        counts=dict(details.get("counts", {})),
        id=stored.id,
    )
