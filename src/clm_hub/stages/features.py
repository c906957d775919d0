"""Per-customer features: one grouped SQL pass over the orders, aggregated with numpy.

Counted orders are status ``paid`` or ``partially_refunded``, not deleted, linked to a customer,
in the main currency or one with a configured rate; their value is ``total - refunded``.

SQL groups the counted orders by customer in one pass and hands over, per customer, the order
timestamps concatenated as fixed-width text and the net amounts as a comma-separated list
(``group_concat`` on SQLite, ``string_agg ... ORDER BY`` on PostgreSQL). On SQLite the covering
index ``(customer_id, placed_at, status, currency, total, refunded, deleted_at)`` hands the rows
over already in (customer, time) order, so the pass needs no sort and no table look-up. One
fetched row per customer instead of one per order is what makes this fast: turning millions of
rows into Python objects costs several times the scan (see bench/README.md). numpy then parses the
text and derives everything else: orders, purchase days (distinct UTC days), revenue, first and
last timestamp, the first purchase day's amount, the second and second-to-last purchase day, and
the median gap between purchase days. Customers arrive complete in each batch, and
:func:`feature_slices` merges them with the prospects and survey answers into slices of whole
customers, so a recompute's memory is bounded by a slice, not by the number of customers.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, fields
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from clm_hub.stages.sql import Backend
from clm_hub.store.types import MONEY_SCALE

__all__ = [
    "COUNTED_STATUSES",
    "SCOPE_TABLE",
    "FeatureFrame",
    "MoneySpec",
    "compute_feature_frame",
    "currency_counts",
    "feature_slices",
    "positions",
]

COUNTED_STATUSES: Final = ("paid", "partially_refunded")
SCOPE_TABLE: Final = "_stage_scope"
BATCH_CUSTOMERS: Final = 20_000
"""Buyers aggregated at a time from the orders."""
SLICE_CUSTOMERS: Final = 25_000
"""Customers in each slice :func:`feature_slices` yields: the rules' arrays and result rows of
a slice peak at ~0.6 kB a customer (64 MB for 100,000), so a recompute's memory is set by this."""
STAMP_WIDTH: Final = 26
"""'YYYY-MM-DD HH:MM:SS.ffffff': how SQLAlchemy (and the bulk writer) store a UTC timestamp on
SQLite, and the text PostgreSQL is asked for."""
_DAY_US: Final = 86_400_000_000
_STATUSES_SQL: Final = ", ".join(f"'{status}'" for status in COUNTED_STATUSES)


@dataclass(frozen=True)
class MoneySpec:
    """The main currency and fixed rates into it; orders in other currencies are ignored."""

    currency: str
    rates: Mapping[str, float]

    @property
    def currencies(self) -> tuple[str, ...]:
        return (self.currency, *sorted(c for c in self.rates if c != self.currency))


@dataclass(frozen=True, eq=False)
class FeatureFrame:
    """Features of a set of customers, one array element per customer, sorted by id.

    Day columns are UTC day numbers (days since 1970-01-01), NaN when missing (a prospect has no
    first day; a customer with one purchase day has no second). Amounts are in the main currency.
    ``first_at``/``last_at`` are the first and last counted order's timestamps as text
    ('YYYY-MM-DD HH:MM:SS.ffffff', UTC; empty for prospects), written back with the state
    (None in frames made by hand).
    """

    customer_id: NDArray[np.int64]
    orders: NDArray[np.int64]
    purchase_days: NDArray[np.int64]
    revenue: NDArray[np.float64]
    first_amount: NDArray[np.float64]
    first_day: NDArray[np.float64]
    second_day: NDArray[np.float64]
    prev_day: NDArray[np.float64]
    last_day: NDArray[np.float64]
    median_gap: NDArray[np.float64]
    nps_score: NDArray[np.float64]
    first_at: NDArray[np.bytes_] | None = None
    last_at: NDArray[np.bytes_] | None = None

    def __len__(self) -> int:
        return int(self.customer_id.shape[0])

    @property
    def buyers(self) -> NDArray[np.bool_]:
        return self.purchase_days > 0

    @property
    def repeat_revenue(self) -> NDArray[np.float64]:
        """Revenue after the first purchase day (Gamma-Gamma's spend excludes the first)."""
        return np.where(self.purchase_days > 1, self.revenue - self.first_amount, 0.0)

    @property
    def gap_before_last(self) -> NDArray[np.float64]:
        """Days between the last two purchase days; NaN with fewer than two."""
        return self.last_day - self.prev_day

    def take(self, index: NDArray[np.intp] | NDArray[np.bool_] | slice) -> FeatureFrame:
        """The rows selected by an index or mask."""
        taken: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            taken[f.name] = None if value is None else value[index]
        return FeatureFrame(**taken)

    @classmethod
    def empty(cls) -> FeatureFrame:
        return _prospects(np.zeros(0, dtype=np.int64))

    @classmethod
    def concat(cls, frames: Sequence[FeatureFrame]) -> FeatureFrame:
        """One frame of the rows of ``frames``, in their order."""
        if not frames:
            return cls.empty()
        joined: dict[str, Any] = {}
        for f in fields(cls):
            parts = [getattr(frame, f.name) for frame in frames]
            joined[f.name] = None if any(p is None for p in parts) else np.concatenate(parts)
        return cls(**joined)


def _prospects(ids: NDArray[np.int64]) -> FeatureFrame:
    """Every customer in ``ids`` as if they had no counted order and no answer."""
    n = ids.shape[0]

    def nan() -> NDArray[np.float64]:
        return np.full(n, np.nan)

    def zero_int() -> NDArray[np.int64]:
        return np.zeros(n, dtype=np.int64)

    return FeatureFrame(
        customer_id=ids, orders=zero_int(), purchase_days=zero_int(), revenue=np.zeros(n),
        first_amount=nan(), first_day=nan(), second_day=nan(), prev_day=nan(), last_day=nan(),
        median_gap=nan(), nps_score=nan(), first_at=np.zeros(n, dtype=f"S{STAMP_WIDTH}"),
        last_at=np.zeros(n, dtype=f"S{STAMP_WIDTH}"),
    )  # fmt: skip


def _counted(money: MoneySpec) -> str:
    """SQL condition on ``o`` for an order that counts (linked-customer test left to callers)."""
    currencies = ", ".join(f"'{code}'" for code in money.currencies)
    return (
        f"o.deleted_at IS NULL AND o.status IN ({_STATUSES_SQL}) AND o.currency IN ({currencies})"
    )


def _net_amount(money: MoneySpec) -> str:
    net = "(o.total - o.refunded)"
    if not money.rates:
        return net
    # Currency codes and rates are validated (^[A-Z]{3}$, float), so inlining them is safe.
    branches = [f"WHEN '{money.currency}' THEN {net}"]
    branches += [
        f"WHEN '{code}' THEN CAST(ROUND({net} * {float(rate)!r}) AS BIGINT)"
        for code, rate in sorted(money.rates.items())
        if code != money.currency
    ]
    return f"CASE o.currency {' '.join(branches)} END"


def feature_slices(
    db: Backend, money: MoneySpec, *, scoped: bool, rows: int | None = None, scores: bool = True
) -> Iterator[FeatureFrame]:
    """Features of every customer (or of those in ``_stage_scope``), a slice at a time.

    Slices (of ``SLICE_CUSTOMERS`` unless ``rows`` says) come in customer-id order and each
    holds whole customers, so memory is bounded by a slice whatever the size of the shop. The
    customer ids, the buyers' aggregated orders and the latest survey answers are three
    streams in id order, merged as they are read.
    ``scores=False`` leaves NPS scores out (NaN): the calibration does not use them.
    """
    scope = f" WHERE c.id IN (SELECT customer_id FROM {SCOPE_TABLE})" if scoped else ""
    id_rows = db.iter_row_batches(
        f"SELECT c.id FROM customer AS c{scope} ORDER BY c.id", rows or SLICE_CUSTOMERS
    )
    order_batches = _order_batches(db, money, scoped=scoped)
    answers = _score_batches(db, scoped=scoped) if scores else _no_frames()
    with closing(id_rows), closing(order_batches), closing(answers):
        buyers = _Upto(order_batches)
        answered = _Upto(answers)
        for batch in id_rows:
            ids = np.fromiter((row[0] for row in batch), dtype=np.int64, count=len(batch))
            frame = _prospects(ids)
            for part in buyers.upto(int(ids[-1])):
                at, found = positions(ids, part.customer_id)  # found: unless deleted meanwhile
                for f in fields(FeatureFrame):
                    if f.name not in {"customer_id", "nps_score"}:
                        getattr(frame, f.name)[at] = getattr(part, f.name)[found]
            for part in answered.upto(int(ids[-1])):
                at, found = positions(ids, part.customer_id)
                frame.nps_score[at] = part.nps_score[found]
            yield frame


def compute_feature_frame(db: Backend, money: MoneySpec, *, scoped: bool) -> FeatureFrame:
    """Features of every customer, or of those in ``_stage_scope``, in one frame (for the
    callers that need them all at once: explanations, previews, tests)."""
    return FeatureFrame.concat(list(feature_slices(db, money, scoped=scoped)))


def _no_frames() -> Generator[FeatureFrame, None, None]:
    yield from ()


class _Upto:
    """A stream of id-sorted frames, handed out up to a given customer id at a time."""

    def __init__(self, frames: Iterator[FeatureFrame]) -> None:
        self._frames = frames
        self._pending: FeatureFrame | None = None

    def upto(self, last: int) -> Iterator[FeatureFrame]:
        """The rows with customer id <= ``last`` not handed out yet."""
        while True:
            if self._pending is None:
                self._pending = next(self._frames, None)
                if self._pending is None:
                    return
            cut = int(np.searchsorted(self._pending.customer_id, last, side="right"))
            if cut == len(self._pending):
                yield self._pending
                self._pending = None
                continue
            if cut:
                yield self._pending.take(slice(0, cut))
                self._pending = self._pending.take(slice(cut, None))
            return


def positions(
    ids: NDArray[np.int64], keys: NDArray[np.int64]
) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """Where each of ``keys`` sits in the sorted ``ids``: (positions of the keys found, mask
    of the keys found)."""
    if ids.shape[0] == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(keys.shape, dtype=bool)
    at = np.searchsorted(ids, keys)
    found = ids[np.minimum(at, ids.shape[0] - 1)] == keys
    return at[found], found


def _order_batches(
    db: Backend, money: MoneySpec, *, scoped: bool
) -> Generator[FeatureFrame, None, None]:
    """The buyers' order features, a batch of whole customers at a time."""
    if scoped:  # an IN list: SQLite seeks the covering index per customer, in customer order
        where = f"o.customer_id IN (SELECT customer_id FROM {SCOPE_TABLE})"
    else:
        where = "o.customer_id IS NOT NULL"
    if db.sqlite:
        stamps = "group_concat(o.placed_at, '')"
        nets = f"group_concat({_net_amount(money)}, ',')"
    else:
        text = "to_char(o.placed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
        stamps = f"string_agg({text}, '' ORDER BY o.placed_at)"
        nets = f"string_agg(CAST({_net_amount(money)} AS TEXT), ',' ORDER BY o.placed_at)"
    sql = (
        f"SELECT o.customer_id, {stamps}, {nets} FROM customer_order AS o "
        f"WHERE {where} AND {_counted(money)} GROUP BY o.customer_id ORDER BY o.customer_id"
    )
    for rows in db.iter_row_batches(sql, BATCH_CUSTOMERS):
        yield _aggregate(rows)


def _aggregate(rows: Sequence[tuple[int, str, str]]) -> FeatureFrame:
    """Features of the customers in ``rows`` (customer id, concatenated stamps, nets)."""
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    stamp_text = [row[1] for row in rows]
    counts = np.fromiter(map(len, stamp_text), dtype=np.int64, count=len(rows))
    if np.any(counts % STAMP_WIDTH):
        raise ValueError(
            "customer_order.placed_at holds a timestamp not in 'YYYY-MM-DD HH:MM:SS.ffffff' form"
        )
    counts //= STAMP_WIDTH
    stamps = np.frombuffer("".join(stamp_text).encode("ascii"), dtype=f"S{STAMP_WIDTH}")
    micros = stamps.astype("datetime64[us]").astype(np.int64)
    net = np.fromstring(",".join(row[2] for row in rows), dtype=np.int64, sep=",")
    if net.shape != micros.shape:
        raise ValueError("order amounts and timestamps do not pair up")
    owner = np.repeat(np.arange(len(rows)), counts)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    if np.any(np.diff(micros)[owner[1:] == owner[:-1]] < 0):  # SQLite promises no order
        order = np.lexsort((micros, owner))
        micros, net, stamps = micros[order], net[order], stamps[order]
    ends = starts + counts - 1
    day = micros // _DAY_US
    new_day = np.ones(day.shape, dtype=bool)
    new_day[1:] = (day[1:] != day[:-1]) | (owner[1:] != owner[:-1])
    day_starts = np.flatnonzero(new_day)
    day_number, day_owner = day[day_starts], owner[day_starts]
    day_amount = np.add.reduceat(net, day_starts)
    days = np.bincount(day_owner, minlength=len(rows))
    first = np.r_[0, np.cumsum(days)[:-1]]  # each customer's first purchase day, in day arrays
    last = first + days - 1
    several = days >= 2
    second_day = np.where(several, day_number[np.minimum(first + 1, last)], np.nan)
    prev_day = np.where(several, day_number[np.maximum(last - 1, first)], np.nan)
    return FeatureFrame(
        customer_id=ids, orders=counts, purchase_days=days,
        revenue=np.add.reduceat(net, starts) / MONEY_SCALE,
        first_amount=day_amount[first] / MONEY_SCALE,
        first_day=day_number[first].astype(np.float64), second_day=second_day,
        prev_day=prev_day, last_day=day_number[last].astype(np.float64),
        median_gap=_median_gaps(day_number, day_owner, first, days),
        nps_score=np.full(len(rows), np.nan), first_at=stamps[starts], last_at=stamps[ends],
    )  # fmt: skip


def _median_gaps(
    day: NDArray[np.int64], owner: NDArray[np.int64], first: NDArray[np.int64],
    days: NDArray[np.int64],
) -> NDArray[np.float64]:  # fmt: skip
    """Median days between consecutive purchase days per customer (NaN with one day): gaps
    sorted within each customer by one integer sort on (customer, gap), then the middle (the
    mean of the middle two for an even count)."""
    gaps = np.diff(day)
    mine = owner[1:] == owner[:-1]
    gap, gap_owner = gaps[mine], owner[1:][mine]
    ordered = np.sort((gap_owner << 32) | gap) & 0xFFFFFFFF
    count = days - 1
    start = first - np.arange(days.shape[0])  # each customer has days - 1 gaps
    median = np.full(days.shape, np.nan)
    has = count > 0
    low = ordered[start[has] + (count[has] - 1) // 2]
    high = ordered[start[has] + count[has] // 2]
    median[has] = (low + high) / 2.0
    return median


def _score_batches(db: Backend, *, scoped: bool) -> Generator[FeatureFrame, None, None]:
    """Each customer's latest survey answer, in customer-id order, as frames holding only
    ``customer_id`` and ``nps_score``."""
    scope = (
        f"r.customer_id IN (SELECT customer_id FROM {SCOPE_TABLE})"
        if scoped
        else ("r.customer_id IS NOT NULL")
    )
    for matrix in db.iter_float_batches(
        "SELECT customer_id, score FROM ("
        " SELECT r.customer_id, r.score, ROW_NUMBER() OVER ("
        "  PARTITION BY r.customer_id ORDER BY r.answered_at DESC, r.id DESC) AS rn"
        f" FROM survey_response AS r WHERE {scope}) AS t WHERE rn = 1 ORDER BY customer_id"
    ):
        frame = _prospects(matrix[:, 0].astype(np.int64))
        frame.nps_score[:] = matrix[:, 1]
        yield frame


def currency_counts(db: Backend) -> dict[str, int]:
    """Counted orders per currency, over the whole store (for "auto" and the report)."""
    rows = db.fetch_rows(
        "SELECT currency, COUNT(*) FROM customer_order "
        "WHERE customer_id IS NOT NULL AND deleted_at IS NULL "
        f"AND status IN ({_STATUSES_SQL}) GROUP BY currency"
    )
    return {str(code): int(count) for code, count in rows}
