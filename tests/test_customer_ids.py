"""The compact set of changed customers: behaves like a set of ints at any size."""

from __future__ import annotations

import random

from clm_hub.customer_ids import CustomerIds


def test_union_of_pages_equals_the_set_union() -> None:
    rng = random.Random(3)
    ids, reference = CustomerIds(), set[int]()
    for _ in range(300):  # past the merge threshold several times
        page = {rng.randrange(1, 200_000) for _ in range(rng.randrange(0, 1_000))}
        ids |= page
        reference |= page
    assert len(ids) == len(reference)
    assert list(ids) == sorted(reference)
    assert ids == reference
    probe = next(iter(reference))
    assert probe in ids and -1 not in ids and "x" not in ids


def test_or_keeps_both_operands_and_accepts_another_compact_set() -> None:
    left, right = CustomerIds([3, 1, 2]), CustomerIds([2, 5])
    both = left | right | {9}
    assert list(both) == [1, 2, 3, 5, 9]
    assert list(left) == [1, 2, 3] and list(right) == [2, 5]


def test_empty() -> None:
    ids = CustomerIds()
    assert not ids and len(ids) == 0 and ids == set() and list(ids) == []
    ids |= set()
    assert not ids
    ids |= {4}
    assert ids and ids == {4}
