"""``clm-hub report``: customers and revenue per stage and segment, KPIs, cohorts and CLV.

Everything is computed from the stored state (``customer_state``, what the tools were told) and,
for cohorts, from the counted orders, with set-based SQL. Definitions (``buyers`` = customers
with a counted order; amounts in the calibration's main currency; CLV is ``expected_value``, the
discounted expected spend over the horizon named in the report):

- acquisition: median days from sign-up (``customer.created_at``) to first order, over buyers
  (negative gaps, orders imported from before the sign-up record, count as 0); conversion rate =
  buyers / customers;
- engagement: repeat-purchase rate = buyers with two or more purchase days / buyers;
- retention: churn rate = buyers whose last order is at least the lapsed window old / buyers;
  retention rate = 1 - churn rate;
- loyalty: purchase frequency = counted orders / buyers; NPS = % promoters - % detractors over
  customers with an answer (latest answer each);
- cohorts: buyers by month of first order x months since it: % of the cohort with an order in
  that month, and that month's revenue;
- median days from first to second purchase day: measured at the calibration.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine

from clm_hub.errors import StoreError
from clm_hub.stages.calibration import Calibration, load_calibration
from clm_hub.stages.config import StageRules
from clm_hub.stages.features import COUNTED_STATUSES, MoneySpec
from clm_hub.stages.sql import Backend, today
from clm_hub.store.types import MONEY_SCALE

__all__ = ["Report", "build_report"]

Row = dict[str, Any]


@dataclass(frozen=True)
class Report:
    """The report as plain data: sections of rows, ready for table, CSV or JSON."""

    as_of: dt.datetime
    currency: str
    clv_horizon: str
    summary: Row
    stages: list[Row]
    segments: list[Row]
    kpis: list[Row]
    cohorts: list[Row]
    clv_by_cohort: list[Row]
    channels: list[Row]
    model: Row = field(default_factory=dict)

    def sections(self) -> dict[str, list[Row]]:
        return {
            "summary": [self.summary],
            "stages": self.stages,
            "segments": self.segments,
            "kpis": self.kpis,
            "cohorts": self.cohorts,
            "clv_by_cohort": self.clv_by_cohort,
            "channels": self.channels,
        }

    def to_json(self) -> str:
        data = {"as_of": self.as_of.isoformat(), **self.sections(), "model": self.model}
        return json.dumps(data, indent=2, default=str)

    def to_csv(self) -> str:
        """Long format: one ``section,key,metric,value`` line per number."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["section", "key", "metric", "value"])
        for name, rows in self.sections().items():
            for row in rows:
                key = _key(row)
                for metric, value in row.items():
                    if metric not in {"stage", "segment", "kpi", "cohort", "channel"}:
                        writer.writerow([name, key, metric, "" if value is None else value])
        return out.getvalue()


def _key(row: Row) -> str:
    parts = [str(row[k]) for k in ("stage", "segment", "kpi", "cohort", "channel") if k in row]
    if "months_since_first_order" in row:
        parts.append(f"m{row['months_since_first_order']}")
    return "/".join(parts) or "all"


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _money(value: Any) -> float:
    return round(float(value or 0) / MONEY_SCALE, 2)


def build_report(engine: Engine, rules: StageRules, *, now: dt.datetime) -> Report:
    """Compute the report from the store as of ``now``."""
    with engine.connect() as connection:
        db = Backend(connection)
        calibration = load_calibration(connection, rules)
        if calibration is None:
            raise StoreError("no stage state yet: run `clm-hub stages --recompute` first")
        return _Builder(db, calibration, now).build()


class _Builder:
    def __init__(self, db: Backend, calibration: Calibration, now: dt.datetime) -> None:
        self.db = db
        self.cal = calibration
        self.now = now

    def build(self) -> Report:
        money = self.cal.money
        horizon = str(self.cal.models.clv_horizon)
        totals = self.db.fetch_rows(
            "SELECT COUNT(*), SUM(CASE WHEN purchase_days > 0 THEN 1 ELSE 0 END), "
            "SUM(revenue), SUM(orders_count) FROM customer_state"
        )[0]
        customers, buyers = int(totals[0] or 0), int(totals[1] or 0)
        summary = {
            "customers": customers,
            "buyers": buyers,
            "revenue": _money(totals[2]),
            "orders": int(totals[3] or 0),
            "currency": money.currency,
            "orders_ignored_by_currency": self.cal.counts.get("orders_ignored_by_currency", {}),
            "clv_horizon": horizon,
            "calibrated_at": self.cal.calibrated_at.isoformat(),
        }
        return Report(
            as_of=self.now,
            currency=money.currency,
            clv_horizon=horizon,
            summary=summary,
            stages=self._stages(customers, totals[2]),
            segments=self._segments(),
            kpis=self._kpis(customers, buyers, int(totals[3] or 0)),
            cohorts=self._cohorts(money),
            clv_by_cohort=self._clv_by_cohort(),
            channels=self._channels(),
            model=self._model(),
        )

    def _stages(self, customers: int, revenue: Any) -> list[Row]:
        rows = self.db.fetch_rows(
            "SELECT stage, COUNT(*), SUM(revenue), AVG(CAST(expected_value AS DOUBLE PRECISION)) "
            "FROM customer_state GROUP BY stage ORDER BY COUNT(*) DESC, stage"
        )
        return [
            {
                "stage": stage,
                "customers": int(n),
                "share": _ratio(int(n), customers),
                "revenue": _money(rev),
                "revenue_share": _ratio(float(rev or 0), float(revenue or 0)),
                "mean_clv": _money(clv) if clv is not None else None,
            }
            for stage, n, rev, clv in rows
        ]

    def _segments(self) -> list[Row]:
        if self.db.sqlite:
            source = "customer_state AS s, json_each(s.segments) AS j"
            label = "j.value"
        else:
            source = "customer_state AS s, json_array_elements_text(s.segments) AS j(value)"
            label = "j.value"
        rows = self.db.fetch_rows(
            f"SELECT {label}, COUNT(*), SUM(s.revenue) FROM {source} GROUP BY {label} "
            f"ORDER BY {label}"
        )
        return [
            {"segment": str(name), "customers": int(n), "revenue": _money(rev)}
            for name, n, rev in rows
        ]

    def _kpis(self, customers: int, buyers: int, orders: int) -> list[Row]:
        db = self.db
        signup = db.fetch_floats(
            f"SELECT {db.day_number('s.first_order_at')} - {db.day_number('c.created_at')} "
            "FROM customer_state AS s JOIN customer AS c ON c.id = s.customer_id "
            "WHERE s.first_order_at IS NOT NULL"
        )
        gaps = np.maximum(signup[:, 0], 0.0) if signup.size else np.zeros(0)
        repeat = db.fetch_rows("SELECT COUNT(*) FROM customer_state WHERE purchase_days >= 2")
        cutoff = today(self.now) - self.cal.windows.lapsed_days
        lapsed = db.fetch_rows(
            "SELECT COUNT(*) FROM customer_state WHERE last_order_at IS NOT NULL AND "
            f"{db.day_number('last_order_at')} <= ?",
            (cutoff,),
        )
        nps = dict(
            db.fetch_rows(
                "SELECT nps_class, COUNT(*) FROM customer_state WHERE nps_class IS NOT NULL "
                "GROUP BY nps_class"
            )
        )
        answered = sum(int(v) for v in nps.values())
        churn = _ratio(int(lapsed[0][0]), buyers)
        score = None
        if answered:
            score = round(
                100.0 * (int(nps.get("promoter", 0)) - int(nps.get("detractor", 0))) / answered, 2
            )
        return [
            {
                "kpi": "acquisition.days_signup_to_first_order_median",
                "value": float(np.median(gaps)) if gaps.size else None,
            },
            {"kpi": "acquisition.conversion_rate", "value": _ratio(buyers, customers)},
            {"kpi": "engagement.repeat_purchase_rate", "value": _ratio(int(repeat[0][0]), buyers)},
            {
                "kpi": "retention.retention_rate",
                "value": None if churn is None else round(1 - churn, 4),
            },
            {"kpi": "retention.churn_rate", "value": churn},
            {"kpi": "loyalty.purchase_frequency", "value": _ratio(orders, buyers)},
            {"kpi": "loyalty.nps", "value": score},
            {"kpi": "loyalty.nps_answers", "value": answered},
            {
                "kpi": "days_first_to_second_purchase_median",
                "value": self.cal.counts.get("first_to_second_median_days"),
            },
        ]

    def _cohorts(self, money: MoneySpec) -> list[Row]:
        db = self.db
        statuses = ", ".join(f"'{s}'" for s in COUNTED_STATUSES)
        currencies = ", ".join(f"'{c}'" for c in money.currencies)
        net = "(o.total - o.refunded)"
        if money.rates:
            branches = " ".join(
                f"WHEN '{code}' THEN {net} * {float(rate)!r}"
                for code, rate in sorted(money.rates.items())
            )
            net = f"CASE o.currency WHEN '{money.currency}' THEN {net} {branches} END"
        cohort = db.month_number("s.first_order_at")
        rows = db.fetch_rows(
            f"SELECT {cohort} AS cohort, {db.month_number('o.placed_at')} - {cohort} AS k, "
            f"COUNT(DISTINCT o.customer_id), SUM({net}) FROM customer_order AS o "
            "JOIN customer_state AS s ON s.customer_id = o.customer_id "
            f"WHERE o.deleted_at IS NULL AND o.status IN ({statuses}) "
            f"AND o.currency IN ({currencies}) AND s.first_order_at IS NOT NULL "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        )
        sizes = {
            int(c): int(n)
            for c, n in db.fetch_rows(
                f"SELECT {cohort}, COUNT(*) FROM customer_state AS s "
                "WHERE s.first_order_at IS NOT NULL GROUP BY 1"
            )
        }
        return [
            {
                "cohort": _month(int(c)),
                "months_since_first_order": int(k),
                "cohort_customers": sizes.get(int(c), 0),
                "active_customers": int(active),
                "retention": _ratio(int(active), sizes.get(int(c), 0)),
                "revenue": _money(rev),
            }
            for c, k, active, rev in rows
        ]

    def _clv_by_cohort(self) -> list[Row]:
        db = self.db
        cohort = db.month_number("first_order_at")
        rows = db.fetch_rows(
            f"SELECT {cohort}, COUNT(*), SUM(revenue), "
            "AVG(CAST(expected_value AS DOUBLE PRECISION)), COUNT(expected_value) "
            "FROM customer_state WHERE first_order_at IS NOT NULL GROUP BY 1 ORDER BY 1"
        )
        return [
            {
                "cohort": _month(int(c)),
                "customers": int(n),
                "revenue_per_customer": round(_money(rev) / int(n), 2) if n else None,
                "mean_clv": _money(clv) if clv is not None else None,
                "customers_with_clv": int(with_clv),
            }
            for c, n, rev, clv, with_clv in rows
        ]

    def _channels(self) -> list[Row]:
        rows = self.db.fetch_rows(
            "SELECT COALESCE(c.acquisition_channel, '(unknown)'), COUNT(*), "
            "SUM(CASE WHEN s.purchase_days > 0 THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN s.purchase_days >= 2 THEN 1 ELSE 0 END), SUM(s.revenue), "
            "AVG(CAST(s.expected_value AS DOUBLE PRECISION)) "
            "FROM customer_state AS s JOIN customer AS c ON c.id = s.customer_id "
            "GROUP BY 1 ORDER BY 2 DESC, 1"
        )
        return [
            {
                "channel": str(name),
                "customers": int(n),
                "buyers": int(b or 0),
                "conversion_rate": _ratio(int(b or 0), int(n)),
                "repeat_purchase_rate": _ratio(int(rep or 0), int(b or 0)),
                "revenue": _money(rev),
                "mean_clv": _money(clv) if clv is not None else None,
            }
            for name, n, b, rep, rev, clv in rows
        ]

    def _model(self) -> Row:
        cal = self.cal
        bg, gg = cal.models.to_json()
        thresholds = None
        if cal.thresholds is not None:
            thresholds = {
                "recency_days": cal.thresholds.recency.to_dict(),
                "frequency_purchase_days": cal.thresholds.frequency.to_dict(),
                "monetary_revenue": cal.thresholds.monetary.to_dict(),
            }
        observed = cal.observed_from_day
        return {
            "calibration_id": cal.id,
            "calibration_window": {
                "from": None if observed is None else _iso_day(observed),
                "to": cal.calibrated_at.isoformat(),
            },
            "currency": cal.money.currency,
            "bg_nbd": bg,
            "gamma_gamma": gg,
            "model_note": cal.models.note,
            "p_alive_threshold": cal.models.p_alive_threshold,
            "clv": {
                "horizon": str(cal.models.clv_horizon),
                "periods": cal.models.clv_periods,
                "discount_rate_per_period": cal.models.clv_discount_rate,
            },
            "rfm_thresholds": thresholds,
            "windows": cal.windows.to_dict(),
        }


def _month(number: int) -> str:
    return f"{number // 12:04d}-{number % 12 + 1:02d}"


def _iso_day(day: float) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat()


def render_table(report: Report, sections: Sequence[str] | None = None) -> list[Any]:
    """Rich tables, one per section (the CLI prints them)."""
    from rich.table import Table

    tables = []
    for name, rows in report.sections().items():
        if sections is not None and name not in sections:
            continue
        table = Table(title=f"{name} ({report.currency}, CLV over {report.clv_horizon})")
        columns = list(dict.fromkeys(k for row in rows for k in row))
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(_cell(row.get(c)) for c in columns))
        tables.append(table)
    return tables


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
