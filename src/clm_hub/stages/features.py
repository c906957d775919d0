"""Per-customer features, computed set-based in SQL into temporary tables.

Counted orders are status ``paid`` or ``partially_refunded``, not deleted, linked to a customer,
in the main currency or one with a configured rate; their value is ``total - refunded``. The
pipeline, for every customer or for the ids in ``_stage_scope``:

1. ``_stage_agg``: one pass over counted orders grouped by customer: orders, purchase days
   (distinct UTC days), revenue, first and last timestamp. The covering index
   ``(customer_id, placed_at, status, currency, total, refunded, deleted_at)`` hands SQLite the
   rows already in customer order from the index alone, so this pass needs no sort and no
   table look-up; it is the only pass over every order.
2. ``_stage_nps``: the latest survey answer per customer.
3. ``_stage_features``: everything per customer in scope, prospects included. The amount of the
   first purchase day and the days of the second and the second-to-last purchase day are index
   look-ups bounded by the first and last timestamp (only for customers with two or more
   purchase days; with two, they are the first and last day).

:func:`read_features` then reads the numeric columns in batches into a :class:`FeatureFrame`
(numpy arrays, one row per customer); timestamps stay in SQL until the state is written. The
median gap between purchase days is the one order statistic: with two or three purchase days it
is (last - first) / (days - 1); with four or more, SQL streams those customers' order days in
index order and numpy takes the median of the gaps between distinct days (a per-customer sort
in SQL would cost a second sort of most orders; see bench/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

import numpy as np
from numpy.typing import NDArray

from clm_hub.stages.sql import Backend
from clm_hub.store.types import MONEY_SCALE

__all__ = [
    "COUNTED_STATUSES",
    "FeatureFrame",
    "MoneySpec",
    "build_features",
    "currency_counts",
    "drop_features",
    "read_features",
]

COUNTED_STATUSES: Final = ("paid", "partially_refunded")
SCOPE_TABLE: Final = "_stage_scope"
TEMP_TABLES: Final = ("_stage_agg", "_stage_nps")
FEATURES_TABLE: Final = "_stage_features"
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

    def take(self, index: NDArray[np.intp] | NDArray[np.bool_]) -> FeatureFrame:
        """The rows selected by an index or mask."""
        return FeatureFrame(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def empty(cls) -> FeatureFrame:
        return cls.from_columns({name: np.zeros(0) for name in _COLUMNS}, np.zeros(0))

    @classmethod
    def from_columns(
        cls, col: Mapping[str, NDArray[np.float64]], median_gap: NDArray[np.float64]
    ) -> FeatureFrame:
        """Build from the :data:`_COLUMNS` read from ``_stage_features`` and the median gaps."""
        return cls(
            customer_id=col["customer_id"].astype(np.int64),
            orders=col["orders"].astype(np.int64),
            purchase_days=col["purchase_days"].astype(np.int64),
            revenue=col["revenue"] / MONEY_SCALE,
            first_amount=col["first_amount"] / MONEY_SCALE,
            first_day=col["first_day"],
            second_day=col["second_day"],
            prev_day=col["prev_day"],
            last_day=col["last_day"],
            median_gap=median_gap,
            nps_score=col["nps_score"],
        )


_COLUMNS: Final = (
    "customer_id",
    "orders",
    "purchase_days",
    "revenue",
    "first_amount",
    "first_day",
    "second_day",
    "prev_day",
    "last_day",
    "nps_score",
)


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


def build_features(db: Backend, money: MoneySpec, *, scoped: bool) -> None:
    """Fill ``_stage_features`` for every customer, or for those in ``_stage_scope``."""
    ts = db.timestamp_type
    counted = _counted(money)
    # An IN list, not a join: SQLite (3.40) then seeks the covering index per customer without
    # falling back to table rows, and groups in index order without a sort.
    order_filter = (
        f"o.customer_id IN (SELECT customer_id FROM {SCOPE_TABLE})"
        if scoped
        else "o.customer_id IS NOT NULL"
    )
    db.create_temp(
        "_stage_agg",
        "customer_id BIGINT NOT NULL, orders INTEGER NOT NULL, purchase_days INTEGER NOT NULL, "
        f"revenue BIGINT NOT NULL, first_at {ts} NOT NULL, last_at {ts} NOT NULL",
        "customer_id",
    )
    db.execute(
        "INSERT INTO _stage_agg (customer_id, orders, purchase_days, revenue, first_at, last_at) "
        f"SELECT o.customer_id, COUNT(*), COUNT(DISTINCT {db.day_key('o.placed_at')}), "
        f"SUM({_net_amount(money)}), MIN(o.placed_at), MAX(o.placed_at) FROM customer_order AS o "
        f"WHERE {order_filter} AND {counted} GROUP BY o.customer_id ORDER BY o.customer_id"
    )
    responses = "survey_response AS r"
    if scoped:
        responses = f"{SCOPE_TABLE} AS s CROSS JOIN survey_response AS r"
    db.create_temp(
        "_stage_nps", "customer_id BIGINT NOT NULL, score INTEGER NOT NULL", "customer_id"
    )
    db.execute(
        "INSERT INTO _stage_nps (customer_id, score) SELECT customer_id, score FROM ("
        " SELECT r.customer_id, r.score, ROW_NUMBER() OVER ("
        "  PARTITION BY r.customer_id ORDER BY r.answered_at DESC, r.id DESC) AS rn"
        f" FROM {responses} WHERE r.customer_id "
        f"{'= s.customer_id' if scoped else 'IS NOT NULL'}) AS t "
        "WHERE rn = 1 ORDER BY customer_id"
    )
    _analyze(db, "_stage_agg", "_stage_nps")
    db.create_temp(
        FEATURES_TABLE,
        "customer_id BIGINT NOT NULL, orders INTEGER NOT NULL, purchase_days INTEGER NOT NULL, "
        "revenue BIGINT NOT NULL, first_amount BIGINT, first_day INTEGER, second_day INTEGER, "
        f"prev_day INTEGER, last_day INTEGER, nps_score INTEGER, first_at {ts}, last_at {ts}",
        "customer_id",
    )
    after_first = db.day_begin("a.first_at", days_later=1)
    own_orders = f"FROM customer_order AS o WHERE o.customer_id = a.customer_id AND {counted}"
    second = f"(SELECT MIN(o.placed_at) {own_orders} AND o.placed_at >= {after_first})"
    before_last = (
        f"(SELECT MAX(o.placed_at) {own_orders} AND o.placed_at < {db.day_begin('a.last_at')})"
    )
    first_amount = (
        f"(SELECT SUM({_net_amount(money)}) {own_orders} AND o.placed_at < {after_first})"
    )
    customers = "customer AS c"
    if scoped:
        customers = f"{SCOPE_TABLE} AS s CROSS JOIN customer AS c"
    db.execute(
        f"INSERT INTO {FEATURES_TABLE} (customer_id, orders, purchase_days, revenue, first_amount, "
        "first_day, second_day, prev_day, last_day, nps_score, first_at, last_at) "
        "SELECT c.id, COALESCE(a.orders, 0), COALESCE(a.purchase_days, 0), COALESCE(a.revenue, 0),"
        " CASE WHEN a.purchase_days = 1 THEN a.revenue"
        f"  WHEN a.purchase_days > 1 THEN {first_amount} END, {db.day_number('a.first_at')},"
        f" CASE WHEN a.purchase_days = 2 THEN {db.day_number('a.last_at')}"
        f"  WHEN a.purchase_days > 2 THEN {db.day_number(second)} END,"
        f" CASE WHEN a.purchase_days = 2 THEN {db.day_number('a.first_at')}"
        f"  WHEN a.purchase_days > 2 THEN {db.day_number(before_last)} END,"
        f" {db.day_number('a.last_at')}, n.score, a.first_at, a.last_at "
        f"FROM {customers} "
        "LEFT JOIN _stage_agg AS a ON a.customer_id = c.id "
        "LEFT JOIN _stage_nps AS n ON n.customer_id = c.id "
        f"{'WHERE c.id = s.customer_id ' if scoped else ''}ORDER BY c.id"
    )
    _analyze(db, FEATURES_TABLE)
    for table in TEMP_TABLES:
        db.drop_temp(table)


def read_features(db: Backend, money: MoneySpec) -> FeatureFrame:
    """The numeric columns of ``_stage_features``, read in batches, with the median gaps."""
    matrix = db.fetch_floats(
        f"SELECT {', '.join(_COLUMNS)} FROM {FEATURES_TABLE} ORDER BY customer_id"
    )
    if matrix.size == 0:
        return FeatureFrame.empty()
    columns = {name: matrix[:, i] for i, name in enumerate(_COLUMNS)}
    days = columns["purchase_days"]
    median = np.full(days.shape, np.nan)
    few = (days >= 2) & (days <= 3)
    median[few] = (columns["last_day"][few] - columns["first_day"][few]) / (days[few] - 1)
    ids, gaps = _median_gaps(db, money)
    median[np.searchsorted(columns["customer_id"], ids)] = gaps
    return FeatureFrame.from_columns(columns, median)


def _median_gaps(db: Backend, money: MoneySpec) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(customer ids, median gap) for customers with four or more purchase days.

    SQL streams their counted orders' UTC days (index order, no sort); numpy keeps distinct
    days, takes the gaps between consecutive ones and the middle gap (mean of the middle two).
    """
    chunks = list(
        db.iter_float_batches(
            f"SELECT o.customer_id, {db.day_number('o.placed_at')} FROM customer_order AS o "
            f"WHERE o.customer_id IN (SELECT customer_id FROM {FEATURES_TABLE} "
            f"WHERE purchase_days >= 4) AND {_counted(money)}"
        )
    )
    if not chunks:
        return np.zeros(0), np.zeros(0)
    rows = np.concatenate(chunks, axis=0)
    customer, day = rows[:, 0], rows[:, 1]
    step = np.diff(customer)
    if np.any(step < 0) or np.any(np.diff(day)[step == 0] < 0):  # not in index order
        order = np.lexsort((day, customer))
        customer, day = customer[order], day[order]
    distinct = np.r_[True, (customer[1:] != customer[:-1]) | (day[1:] != day[:-1])]
    customer, day = customer[distinct], day[distinct]
    same = customer[1:] == customer[:-1]
    owner, gap = customer[1:][same], (day[1:] - day[:-1])[same]
    order = np.lexsort((gap, owner))
    owner, gap = owner[order], gap[order]
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    counts = np.diff(np.r_[starts, owner.size])
    middle = (gap[starts + (counts - 1) // 2] + gap[starts + counts // 2]) / 2.0
    return owner[starts], middle


def drop_features(db: Backend) -> None:
    for table in (*TEMP_TABLES, FEATURES_TABLE):
        db.drop_temp(table)


def currency_counts(db: Backend) -> dict[str, int]:
    """Counted orders per currency, over the whole store (for "auto" and the report)."""
    rows = db.fetch_rows(
        "SELECT currency, COUNT(*) FROM customer_order "
        "WHERE customer_id IS NOT NULL AND deleted_at IS NULL "
        f"AND status IN ({_STATUSES_SQL}) GROUP BY currency"
    )
    return {str(code): int(count) for code, count in rows}


def _analyze(db: Backend, *tables: str) -> None:
    """PostgreSQL plans temporary tables blind until they are analysed."""
    if not db.sqlite:
        for table in tables:
            db.execute(f"ANALYZE {table}")
