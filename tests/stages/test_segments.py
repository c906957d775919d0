"""Named RFM segments (rf_grid) and NPS classes, from hand-set thresholds: pure, no database."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from clm_hub.analytics.rfm import RfmThresholds, Thresholds
from clm_hub.stages.calibration import Calibration
from clm_hub.stages.config import StageRules, TimeSpan, WindowsConfig, load_segment_map_for
from clm_hub.stages.features import FeatureFrame, MoneySpec
from clm_hub.stages.models import Models
from clm_hub.stages.rules import RuleContext, evaluate
from clm_hub.stages.windows import ShopCycle, derive_windows

TODAY = 20_000
RFM = RfmThresholds(
    recency=Thresholds((40.0, 30.0, 20.0, 10.0), higher_is_better=False, n_reference=100),
    frequency=Thresholds((1.0, 2.0, 3.0, 4.0), higher_is_better=True, n_reference=100),
    monetary=Thresholds((50.0, 100.0, 200.0, 400.0), higher_is_better=True, n_reference=100),
)
DAYS_FOR_R = {5: 5, 4: 15, 3: 25, 2: 35, 1: 45}


def _context(rules: StageRules) -> RuleContext:
    calibration = Calibration(
        calibrated_at=dt.datetime(2024, 10, 1, tzinfo=dt.UTC),
        rules_fingerprint=rules.fingerprint,
        money=MoneySpec("EUR", {}),
        windows=derive_windows(WindowsConfig(), ShopCycle(None, 0)),
        thresholds=RFM,
        models=Models(None, None, "none", 0.3, TimeSpan(52, "weeks"), 12, 0.01),
        observed_from_day=None,
        parts={},
    )
    return RuleContext(rules, calibration, load_segment_map_for(rules), TODAY)


def _customer(r: int, f: int, nps: float = np.nan) -> FeatureFrame:
    last = float(TODAY - DAYS_FOR_R[r])
    first = last - 10.0 * (f - 1)

    def one(value: float) -> np.ndarray:
        return np.array([value], dtype=np.float64)

    return FeatureFrame(
        customer_id=np.array([1]), orders=np.array([f]), purchase_days=np.array([f]),
        revenue=one(150.0), first_amount=one(150.0 / f), first_day=one(first),
        second_day=one(first + 10 if f > 1 else np.nan),
        prev_day=one(last - 10 if f > 1 else np.nan), last_day=one(last),
        median_gap=one(10.0 if f > 1 else np.nan), nps_score=one(nps),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("r", "f", "segment"),
    [
        (5, 1, "rfm:new"),
        (5, 2, "rfm:potential-loyalist"),
        (5, 4, "rfm:champions"),
        (4, 1, "rfm:promising"),
        (4, 5, "rfm:loyal"),
        (3, 1, "rfm:about-to-sleep"),
        (3, 3, "rfm:need-attention"),
        (2, 3, "rfm:at-risk"),
        (1, 5, "rfm:cant-lose-them"),
        (1, 1, "rfm:hibernating"),
    ],
)
def test_rfm_cell_gets_its_named_segment(rules: StageRules, r: int, f: int, segment: str) -> None:
    evaluation = evaluate(_customer(r, f), _context(rules))
    assert (int(evaluation.r[0]), int(evaluation.f[0])) == (r, f)
    assert evaluation.segments(0) == [segment]


def test_lost_split_takes_the_lowest_cell_when_enabled(rules: StageRules) -> None:
    split = rules.model_copy(
        update={"rfm": rules.rfm.model_copy(update={"splits": {"Lost": True}})}
    )
    assert evaluate(_customer(1, 1), _context(split)).segments(0) == ["rfm:lost"]


@pytest.mark.parametrize(
    ("score", "label"),
    [
        (10, "promoter"), (9, "promoter"), (8, "passive"), (7, "passive"),
        (6, "detractor"), (0, "detractor"),
    ],
)  # fmt: skip
def test_latest_nps_answer_gives_the_nps_segment(rules: StageRules, score: int, label: str) -> None:
    segments = evaluate(_customer(3, 3, float(score)), _context(rules)).segments(0)
    assert f"nps:{label}" in segments


def test_r_score_change_is_scheduled_as_a_due_day(rules: StageRules) -> None:
    evaluation = evaluate(_customer(5, 2), _context(rules))  # 5 days since last order, cut at 10
    assert evaluation.next_due_day[0] == TODAY + 5
