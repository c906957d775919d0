"""Recomputing a slice of customers at a time leaves what one pass over everyone would.

Memory stays flat because a full recompute never holds every customer: the calibration is
gathered as value counts and a fixed-hash sample, and customers are scored and written a
slice at a time. These tests pin that down against the whole-population computation.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import itertools
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, delete

from clm_hub.analytics.rfm import compute_thresholds
from clm_hub.stages import StageRules, load_rules, recompute_full, recompute_incremental
from clm_hub.stages import features as features_module
from clm_hub.stages import sql as sql_module
from clm_hub.stages.calibration import calibrate
from clm_hub.stages.engine import compute_features
from clm_hub.stages.features import FeatureFrame, MoneySpec
from clm_hub.stages.population import Population
from clm_hub.stages.sql import today
from clm_hub.store.tables import metadata
from tests.stages.conftest import Shop, at
from tests.stages.test_incremental import snapshot

USD = MoneySpec("USD", {})
NOW = dt.datetime(1997, 9, 30, 18, tzinfo=dt.UTC)


def small_sample_rules(tmp_path: Path, limit: int) -> StageRules:
    """The default rules with the models fitted on at most ``limit`` buyers."""
    text = (importlib.resources.files("clm_hub.stages") / "default_rules.toml").read_text()
    file = tmp_path / "rules.toml"
    file.write_text(text.replace("max_fit_customers = 50000", f"max_fit_customers = {limit}"))
    rules = load_rules(file)
    assert rules.model.max_fit_customers == limit
    return rules


def pieces(frame: FeatureFrame, seed: int) -> list[FeatureFrame]:
    """The frame cut at random places (some pieces empty)."""
    rng = random.Random(seed)
    cuts = sorted(rng.randrange(len(frame) + 1) for _ in range(12))
    bounds = [0, *cuts, len(frame)]
    return [frame.take(slice(a, b)) for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_calibration_from_slices_equals_one_from_everyone_at_once(
    cdnow_store: Engine, tmp_path: Path, seed: int
) -> None:
    rules = small_sample_rules(tmp_path, 500)  # CDNOW's sample has 2,357 buyers: sampled
    with cdnow_store.connect() as connection:
        frame = compute_features(connection, USD)
    counts = {"USD": 1}
    whole = calibrate(frame, rules, now=NOW, money=USD, currency_counts=counts)
    population = Population.of(pieces(frame, seed), rules.model.max_fit_customers)
    sliced = calibrate(population, rules, now=NOW, money=USD, currency_counts=counts)
    assert sliced == whole

    # ...and both equal what sorting every buyer's values gives.
    buyers = frame.take(frame.buyers)
    recency = np.maximum(float(today(NOW)) - buyers.last_day, 0.0)
    assert whole.thresholds is not None
    assert whole.thresholds.recency == compute_thresholds(recency, higher_is_better=False)
    assert whole.thresholds.frequency == compute_thresholds(buyers.purchase_days.astype(float))
    assert whole.thresholds.monetary == compute_thresholds(buyers.revenue)
    repeat = buyers.purchase_days >= 2
    gaps = (buyers.second_day - buyers.first_day)[repeat]
    assert whole.windows.cycle_days == max(1.0, float(np.median(gaps)))
    assert whole.counts["repeat_buyers"] == int(repeat.sum())
    assert whole.observed_from_day == float(buyers.first_day.min())
    # The fixed-hash sample: the 500 buyers whose hashed ids sort first.
    keys = (buyers.customer_id * 2654435761) % (1 << 32)
    expected = np.sort(buyers.customer_id[np.argsort(keys, kind="stable")[:500]])
    assert population.sample.frame().customer_id.tolist() == expected.tolist()
    assert whole.models.note.startswith(f"fitted by maximum likelihood on a fixed-hash sample "
                                        f"of 500 of {len(buyers):,} buyers")  # fmt: skip


def _fill(shop: Shop) -> list[int]:
    """Buyers, prospects and answers interleaved over the ids."""
    rng = random.Random(5)
    ids = []
    for n in range(40):
        customer = shop.customer()
        ids.append(customer)
        if n % 3:  # every third a prospect
            for _ in range(rng.randrange(1, 5)):
                shop.order(customer, rng.randrange(0, 200), str(rng.randrange(10, 90)))
        if n % 4 == 0:
            shop.answer(customer, rng.randrange(0, 11), rng.randrange(0, 200))
    shop.order(None, 50)  # an order linked to nobody counts for nobody
    return ids


def _history(engine: Engine, rules: StageRules, changed: set[int]) -> Any:
    with engine.begin() as connection:
        for table in ("stage_transition", "customer_state", "stage_calibration"):
            connection.execute(delete(metadata.tables[table]))
    recompute_full(engine, rules, now=at(210))
    recompute_full(engine, rules, now=at(400), recalibrate=False)
    recompute_incremental(engine, rules, now=at(500), changed_customer_ids=changed)
    states, moves = snapshot(engine)
    for state in states:  # the calibration's id: PostgreSQL does not reuse deleted ones
        state["explanation"] = {**state["explanation"], "calibration": None}
    return states, moves


def test_tiny_slices_and_batches_write_what_one_slice_does(
    shop: Shop, rules: StageRules, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _fill(shop)
    changed = set(ids[::5])
    one_slice = _history(shop.engine, rules, changed)
    monkeypatch.setattr(features_module, "SLICE_CUSTOMERS", 4)
    monkeypatch.setattr(features_module, "BATCH_CUSTOMERS", 3)
    monkeypatch.setattr(sql_module, "FETCH_ROWS", 2)  # survey answers in several batches
    tiny = _history(shop.engine, rules, changed)
    assert tiny == one_slice
    states, moves = tiny
    assert len(states) == 40 and moves
    assert {row["nps_score"] for row in states} - {None}  # answers made it through the merge
