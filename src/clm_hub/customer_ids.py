"""A set of customer ids that stays small when it grows to millions.

A cycle collects the customers whose data changed, so that stages are recomputed for them; a
first sync of a million customers marks every one. A Python set costs ~70 bytes an id; this
keeps them as sorted unique int64 arrays (8 bytes an id), merging the pages' ids in amortised
batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["CustomerIds"]

_MERGE_AT: Final = 65_536
"""Pending ids merged into the sorted array once they reach this many (or its size)."""


class CustomerIds:
    """A growing set of integer ids: ``|=`` sets or other ``CustomerIds``, ``len``, ``in``,
    iteration in ascending order."""

    __slots__ = ("_pending", "_pending_count", "_sorted")

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self._sorted: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._pending: list[NDArray[np.int64]] = []
        self._pending_count = 0
        self.update(ids)

    def update(self, ids: Iterable[int]) -> None:
        chunk = ids.array() if isinstance(ids, CustomerIds) else np.fromiter(ids, dtype=np.int64)
        if chunk.size == 0:
            return
        self._pending.append(chunk)
        self._pending_count += int(chunk.size)
        if self._pending_count >= max(_MERGE_AT, self._sorted.size):
            self._merge()

    def __ior__(self, ids: Iterable[int]) -> CustomerIds:
        self.update(ids)
        return self

    def __or__(self, ids: Iterable[int]) -> CustomerIds:
        union = CustomerIds(self)
        union.update(ids)
        return union

    def array(self) -> NDArray[np.int64]:
        """The ids, sorted and unique."""
        self._merge()
        return self._sorted

    def _merge(self) -> None:
        if self._pending:
            self._sorted = np.unique(np.concatenate([self._sorted, *self._pending]))
            self._pending, self._pending_count = [], 0

    def __len__(self) -> int:
        return int(self.array().size)

    def __bool__(self) -> bool:
        return self._sorted.size > 0 or self._pending_count > 0

    def __iter__(self) -> Iterator[int]:
        return iter(self.array().tolist())

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, int | np.integer):
            return False
        ids = self.array()
        at = int(np.searchsorted(ids, item))
        return at < ids.size and int(ids[at]) == int(item)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CustomerIds):
            return bool(np.array_equal(self.array(), other.array()))
        if isinstance(other, set | frozenset):
            return len(self) == len(other) and all(i in other for i in self)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CustomerIds({len(self)} ids)"
