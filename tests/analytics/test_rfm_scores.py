"""RFM 1-5 scores: the min-rank-quintile convention keeps ties together."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clm_hub.analytics.rfm import (
    SCORING_CONVENTION,
    ScoringConvention,
    Thresholds,
    compute_thresholds,
    score,
    score_array,
    score_rfm,
)

# Small integer pools force many ties, which is the case that matters.
values_lists = st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=60)
directions = st.booleans()
no_example_database = settings(database=None)  # keep runs read-only: no .hypothesis/ folder


def _scores(values, higher_is_better=True):
    return score_array(values, compute_thresholds(values, higher_is_better=higher_is_better))


@no_example_database
@given(values_lists, directions)
def test_equal_values_get_equal_scores(values, higher_is_better) -> None:
    scores = _scores(values, higher_is_better)
    by_value: dict[int, set[int]] = {}
    for value, s in zip(values, scores.tolist(), strict=True):
        by_value.setdefault(value, set()).add(s)
    assert all(len(group) == 1 for group in by_value.values())


@no_example_database
@given(values_lists, directions, st.randoms(use_true_random=False))
def test_permuting_the_input_never_changes_a_values_score(values, higher_is_better, rnd) -> None:
    shuffled = list(values)
    rnd.shuffle(shuffled)
    before = dict(zip(values, _scores(values, higher_is_better).tolist(), strict=True))
    after = dict(zip(shuffled, _scores(shuffled, higher_is_better).tolist(), strict=True))
    assert before == after


@no_example_database
@given(values_lists)
def test_scores_never_decrease_as_the_value_grows(values) -> None:
    order = np.argsort(values, kind="stable")
    assert np.all(np.diff(_scores(values)[order]) >= 0)


@no_example_database
@given(values_lists)
def test_lower_is_better_scores_never_increase_as_the_value_grows(values) -> None:
    order = np.argsort(values, kind="stable")
    assert np.all(np.diff(_scores(values, higher_is_better=False)[order]) <= 0)


@no_example_database
@given(values_lists, directions)
def test_thresholds_reproduce_the_documented_rank_formula(values, higher_is_better) -> None:
    n = len(values)
    sign = 1 if higher_is_better else -1
    expected = [1 + math.floor(5 * sum(sign * v < sign * x for v in values) / n) for x in values]
    assert _scores(values, higher_is_better).tolist() == expected


@settings(max_examples=50, database=None)
@given(values_lists, st.integers(min_value=-5, max_value=20))
def test_single_value_scored_against_stored_thresholds_matches_rank_formula(values, x) -> None:
    n = len(values)
    expected = min(5, 1 + math.floor(5 * sum(v < x for v in values) / n))
    assert score(x, compute_thresholds(values)) == expected


def test_distinct_values_fill_five_equal_quintiles() -> None:
    scores = _scores(np.arange(100))
    assert np.bincount(scores).tolist() == [0, 20, 20, 20, 20, 20]


def test_most_recent_customer_gets_recency_score_five() -> None:
    days_since_last_purchase = [1, 30, 60, 90, 400]
    scores = score_rfm(days_since_last_purchase, [1, 1, 1, 1, 1], [5, 5, 5, 5, 5])
    assert scores.r.tolist() == [5, 4, 3, 2, 1]


def test_cdnow_customers_with_one_purchase_day_share_one_frequency_score(cdnow_summary) -> None:
    scores = _scores(cdnow_summary.frequency)
    one_day = cdnow_summary.frequency == 0
    assert set(scores[one_day].tolist()) == {1}
    assert set(scores[~one_day].tolist()) <= {3, 4, 5}


def test_values_outside_the_reference_range_score_at_the_extremes() -> None:
    thresholds = compute_thresholds([10, 20, 30, 40, 50])
    assert (score(-1e9, thresholds), score(1e9, thresholds)) == (1, 5)


def test_nan_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        compute_thresholds([1.0, float("nan")])


def test_empty_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="no values"):
        compute_thresholds([])


def test_explain_names_the_scoring_convention() -> None:
    text = compute_thresholds([1, 2, 3]).explain()
    assert SCORING_CONVENTION is ScoringConvention.MIN_RANK_QUINTILE
    assert "min-rank-quintile" in text and "strictly below" in text


def test_thresholds_survive_a_round_trip_through_storage() -> None:
    thresholds = compute_thresholds([0, 3, 9, 27, 81, 243], higher_is_better=False)
    assert Thresholds.from_dict(thresholds.to_dict()) == thresholds


def test_stored_thresholds_with_an_unknown_convention_are_rejected() -> None:
    data = compute_thresholds([1, 2, 3]).to_dict() | {"convention": "rank-first"}
    with pytest.raises(ValueError, match="rank-first"):
        Thresholds.from_dict(data)
