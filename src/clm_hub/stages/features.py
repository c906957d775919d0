"""Per-customer features, computed set-based in SQL into temporary tables.

The pipeline, for every customer or for the ids in ``_stage_scope``:

1. ``_stage_days``: one row per (customer, UTC day) with a counted order: orders, net amount,
   first and last timestamp. Counted orders are status ``paid`` or ``partially_refunded``, not
   deleted, linked to a customer, in the main currency or one with a configured rate; their value
   is ``total - refunded``. This is the only pass over ``customer_order`` (one sort); on SQLite a
   full run scans the table instead of the (customer, placed_at) index, whose random row look-ups
   cost more than the sort.
2. ``_stage_agg``: per customer, from ``_stage_days`` in key order (no sort).
3. ``_stage_median``: median gap between purchase days, for customers with four or more (a window
   over their gaps); with two or three it is (last - first) / (days - 1), computed in step 5.
4. ``_stage_nps``: the latest survey answer per customer.
5. ``_stage_features``: everything per customer in scope, prospects included, with the day of the
   second and the second-to-last purchase from key look-ups.

Python then reads the numeric columns in batches into a :class:`FeatureFrame` (numpy arrays, one
row per customer); timestamps stay in SQL until the state is written.
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
TEMP_TABLES: Final = ("_stage_days", "_stage_agg", "_stage_median", "_stage_nps")
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
        return cls.from_matrix(np.zeros((0, len(_COLUMNS)), dtype=np.float64))

    @classmethod
    def from_matrix(cls, matrix: NDArray[np.float64]) -> FeatureFrame:
        """Build from the rows of :data:`_COLUMNS` as read from ``_stage_features``."""
        col = {name: matrix[:, i] for i, name in enumerate(_COLUMNS)}
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
            median_gap=col["median_gap"],
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
    "median_gap",
    "nps_score",
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
    day = db.day_number("o.placed_at")
    currencies = ", ".join(f"'{code}'" for code in money.currencies)
    if scoped:
        order_source = (
            # CROSS JOIN makes SQLite drive from the small scope through the customer index
            # instead of scanning every order; PostgreSQL still picks its own join order.
            f"{SCOPE_TABLE} AS s CROSS JOIN customer_order AS o"
        )
    else:
        order_source = "customer_order AS o NOT INDEXED" if db.sqlite else "customer_order AS o"

    db.create_temp(
        "_stage_days",
        "customer_id BIGINT NOT NULL, day INTEGER NOT NULL, n_orders INTEGER NOT NULL, "
        f"amount BIGINT NOT NULL, first_at {ts} NOT NULL, last_at {ts} NOT NULL",
        "customer_id, day",
    )
    db.execute(
        "INSERT INTO _stage_days (customer_id, day, n_orders, amount, first_at, last_at) "
        f"SELECT o.customer_id, {day}, COUNT(*), SUM({_net_amount(money)}), "
        f"MIN(o.placed_at), MAX(o.placed_at) FROM {order_source} "
        f"WHERE {'o.customer_id = s.customer_id' if scoped else 'o.customer_id IS NOT NULL'} "
        "AND o.deleted_at IS NULL "
        f"AND o.status IN ({_STATUSES_SQL}) AND o.currency IN ({currencies}) "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )
    db.create_temp(
        "_stage_agg",
        "customer_id BIGINT NOT NULL, orders INTEGER NOT NULL, purchase_days INTEGER NOT NULL, "
        "revenue BIGINT NOT NULL, first_day INTEGER NOT NULL, last_day INTEGER NOT NULL, "
        f"first_at {ts} NOT NULL, last_at {ts} NOT NULL",
        "customer_id",
    )
    db.execute(
        "INSERT INTO _stage_agg (customer_id, orders, purchase_days, revenue, first_day, "
        "last_day, first_at, last_at) SELECT customer_id, SUM(n_orders), COUNT(*), SUM(amount), "
        "MIN(day), MAX(day), MIN(first_at), MAX(last_at) FROM _stage_days "
        "GROUP BY customer_id ORDER BY customer_id"
    )
    _analyze(db, "_stage_days", "_stage_agg")
    db.create_temp(
        "_stage_median",
        "customer_id BIGINT NOT NULL, median_gap DOUBLE PRECISION NOT NULL",
        "customer_id",
    )
    # gi counts a customer's gaps from the smallest; the median is the middle one or the mean
    # of the middle two (gn gaps: positions (gn + 1) / 2 and (gn + 2) / 2, integer division).
    db.execute(
        "INSERT INTO _stage_median (customer_id, median_gap) "
        "SELECT customer_id, AVG(CAST(gap AS DOUBLE PRECISION)) FROM ("
        " SELECT customer_id, gap, gn,"
        "  ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY gap) AS gi FROM ("
        "   SELECT d.customer_id, a.purchase_days - 1 AS gn,"
        "    d.day - LAG(d.day) OVER (PARTITION BY d.customer_id ORDER BY d.day) AS gap"
        "   FROM _stage_days AS d JOIN _stage_agg AS a ON a.customer_id = d.customer_id"
        "   WHERE a.purchase_days >= 4) AS g"
        "  WHERE gap IS NOT NULL) AS r "
        "WHERE gi IN ((gn + 1) / 2, (gn + 2) / 2) GROUP BY customer_id ORDER BY customer_id"
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
    _analyze(db, "_stage_median", "_stage_nps")
    db.create_temp(
        FEATURES_TABLE,
        "customer_id BIGINT NOT NULL, orders INTEGER NOT NULL, purchase_days INTEGER NOT NULL, "
        "revenue BIGINT NOT NULL, first_amount BIGINT, first_day INTEGER, second_day INTEGER, "
        "prev_day INTEGER, last_day INTEGER, median_gap DOUBLE PRECISION, nps_score INTEGER, "
        f"first_at {ts}, last_at {ts}",
        "customer_id",
    )
    customers = "customer AS c"
    if scoped:
        customers = f"{SCOPE_TABLE} AS s CROSS JOIN customer AS c"
    db.execute(
        f"INSERT INTO {FEATURES_TABLE} (customer_id, orders, purchase_days, revenue, first_amount, "
        "first_day, second_day, prev_day, last_day, median_gap, nps_score, first_at, last_at) "
        "SELECT c.id, COALESCE(a.orders, 0), COALESCE(a.purchase_days, 0), COALESCE(a.revenue, 0),"
        " (SELECT d.amount FROM _stage_days AS d"
        "   WHERE d.customer_id = a.customer_id AND d.day = a.first_day),"
        " a.first_day,"
        " (SELECT MIN(d.day) FROM _stage_days AS d"
        "   WHERE d.customer_id = a.customer_id AND d.day > a.first_day),"
        " (SELECT MAX(d.day) FROM _stage_days AS d"
        "   WHERE d.customer_id = a.customer_id AND d.day < a.last_day),"
        " a.last_day,"
        " CASE WHEN a.purchase_days >= 4 THEN m.median_gap"
        "  WHEN a.purchase_days >= 2"
        "  THEN CAST(a.last_day - a.first_day AS DOUBLE PRECISION) / (a.purchase_days - 1) END,"
        " n.score, a.first_at, a.last_at "
        f"FROM {customers} "
        "LEFT JOIN _stage_agg AS a ON a.customer_id = c.id "
        "LEFT JOIN _stage_median AS m ON m.customer_id = c.id "
        "LEFT JOIN _stage_nps AS n ON n.customer_id = c.id "
        f"{'WHERE c.id = s.customer_id ' if scoped else ''}ORDER BY c.id"
    )
    _analyze(db, FEATURES_TABLE)
    for table in TEMP_TABLES:
        db.drop_temp(table)


def read_features(db: Backend) -> FeatureFrame:
    """The numeric columns of ``_stage_features``, read in batches."""
    matrix = db.fetch_floats(
        f"SELECT {', '.join(_COLUMNS)} FROM {FEATURES_TABLE} ORDER BY customer_id"
    )
    if matrix.size == 0:
        return FeatureFrame.empty()
    return FeatureFrame.from_matrix(matrix)


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
