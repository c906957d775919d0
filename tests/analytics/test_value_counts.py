"""ValueCounts: order statistics read from counts equal those of the sorted values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clm_hub.analytics import value_counts
from clm_hub.analytics.rfm import compute_thresholds, thresholds_from_ranks
from clm_hub.analytics.value_counts import ValueCounts

batches = st.lists(st.lists(st.integers(-50, 50), max_size=30), min_size=1, max_size=8)


@settings(max_examples=80, deadline=None)
@given(batches=batches)
def test_kth_equals_the_sorted_values_however_they_arrive(batches: list[list[int]]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(value_counts, "_MIN_PENDING", 4)  # merge often
        _check_kth(batches)


def _check_kth(batches: list[list[int]]) -> None:
    counts = ValueCounts()
    for batch in batches:
        counts.add(np.array(batch, dtype=np.int64))
    ordered = sorted(v for batch in batches for v in batch)
    assert counts.total == len(ordered)
    assert [counts.kth(k) for k in range(len(ordered))] == ordered
    assert counts.distinct == len(set(ordered))


def test_floats_holding_integers_are_counted_and_fractions_refused() -> None:
    counts = ValueCounts()
    counts.add(np.array([3.0, 1.0, 3.0]))
    assert [counts.kth(k) for k in range(3)] == [1, 3, 3]
    with pytest.raises(ValueError, match="integers"):
        counts.add(np.array([1.5]))
    with pytest.raises(ValueError, match="integers"):
        counts.add(np.array([np.nan]))
    with pytest.raises(IndexError):
        counts.kth(3)


def test_memory_follows_distinct_values_not_their_number() -> None:
    counts = ValueCounts()
    rng = np.random.default_rng(3)
    for _ in range(50):
        counts.add(rng.integers(0, 400, size=20_000))
    assert counts.total == 1_000_000
    assert counts.distinct == 400


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(st.integers(-20, 20), min_size=1, max_size=40),
    higher_is_better=st.booleans(),
)
def test_thresholds_from_counts_equal_thresholds_from_values(
    values: list[int], higher_is_better: bool
) -> None:
    counts = ValueCounts()
    counts.add(np.array(values))
    from_counts = thresholds_from_ranks(
        lambda k: float(counts.kth(k)), counts.total, higher_is_better=higher_is_better
    )
    assert from_counts == compute_thresholds(
        np.array(values, dtype=np.float64), higher_is_better=higher_is_better
    )
