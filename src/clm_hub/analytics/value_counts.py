"""An exact distribution of integers kept as sorted (value, count) pairs.

Quantiles of a population can be read from its value counts as exactly as from the sorted
values, and the counts take memory per *distinct* value: purchase days, days since the last
order and day gaps take a few thousand values whatever the number of customers. Values arrive
in batches; they are merged into the counts whenever the pending ones outnumber the distinct
values seen so far, so each value is sorted a bounded number of times.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ValueCounts"]

_MIN_PENDING: Final = 65_536


class ValueCounts:
    """How often each integer value occurs, filled a batch at a time."""

    def __init__(self) -> None:
        self._values = np.zeros(0, dtype=np.int64)
        self._counts = np.zeros(0, dtype=np.int64)
        self._pending: list[NDArray[np.int64]] = []
        self._pending_size = 0
        self._cumulative: NDArray[np.int64] | None = None

    def add(self, values: ArrayLike) -> None:
        """Count each of ``values`` once (integers, or floats holding integers)."""
        arr = np.asarray(values)
        ints = arr.astype(np.int64)
        if not np.array_equal(ints, arr):
            raise ValueError("ValueCounts holds integers; got a fractional or non-finite value")
        if ints.size:
            self._pending.append(ints.ravel())
            self._pending_size += ints.size
            self._cumulative = None
            if self._pending_size >= max(_MIN_PENDING, self._values.size):
                self._merge()

    @property
    def total(self) -> int:
        """How many values were counted."""
        return int(self._counts.sum()) + self._pending_size

    @property
    def distinct(self) -> int:
        self._merge()
        return int(self._values.size)

    def kth(self, k: int) -> int:
        """The ``k``-th smallest value counted (from 0), as the sorted values would give it."""
        self._merge()
        if self._cumulative is None:
            self._cumulative = np.cumsum(self._counts)
        if not 0 <= k < (self._cumulative[-1] if self._cumulative.size else 0):
            raise IndexError(f"no {k}-th value among {self.total}")
        return int(self._values[int(np.searchsorted(self._cumulative, k, side="right"))])

    def _merge(self) -> None:
        if not self._pending:
            return
        values = np.concatenate([self._values, *self._pending])
        counts = np.concatenate([self._counts, np.ones(self._pending_size, dtype=np.int64)])
        order = np.argsort(values, kind="stable")
        values, counts = values[order], counts[order]
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        self._values = values[starts]
        self._counts = np.add.reduceat(counts, starts) if starts.size else counts
        self._pending, self._pending_size = [], 0
        self._cumulative = None
