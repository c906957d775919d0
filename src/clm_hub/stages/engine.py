"""Recomputing stages: a full recompute and an incremental cycle, through the same code path.

A cycle works on a *scope* of customers: everyone (full), or the customers whose data changed
(given by the sync engine) plus those whose ``next_due_at`` has come (incremental). For the scope
it computes features in SQL (:mod:`~clm_hub.stages.features`), evaluates the rules in numpy
(:mod:`~clm_hub.stages.rules`), writes the outcome into a temporary results table, then records
every stage change in ``stage_transition`` and writes ``customer_state`` with set-based statements
(an upsert, plus updates of the indexed columns only where they change), a slice of customers at
a time and all in one transaction, so memory does not grow with the shop. A new calibration is
gathered in a pass of its own first (:mod:`~clm_hub.stages.population`). Because an
incremental cycle runs exactly the same steps as a full one on fewer customers, and
``next_due_at`` is exact, both leave the same stages, segments and scores
(``tests/stages/test_incremental.py`` checks this with hypothesis).

``stage_since`` and a transition's ``at`` are the ``now`` of the cycle that saw the change.
``p_alive`` and ``expected_value`` are snapshots as of ``computed_at``: they drift daily, and
re-evaluating everyone for that would defeat incremental cycles; the day P(alive) crosses the
at-risk threshold is scheduled exactly, so the stage is never stale.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from sqlalchemy import Connection, Engine

from clm_hub.analytics.rfm import slugify
from clm_hub.customer_ids import CustomerIds
from clm_hub.errors import StoreError
from clm_hub.stages.calibration import (
    Calibration,
    calibrate,
    load_calibration,
    refresh_due,
    resolve_money,
    save_calibration,
)
from clm_hub.stages.config import NPS_CLASSES, StageRules, load_segment_map_for
from clm_hub.stages.features import (
    SCOPE_TABLE,
    FeatureFrame,
    MoneySpec,
    compute_feature_frame,
    currency_counts,
    feature_slices,
    positions,
)
from clm_hub.stages.population import Population
from clm_hub.stages.rules import Evaluation, RuleContext, evaluate
from clm_hub.stages.sql import WRITE_ROWS, Backend, today
from clm_hub.store.types import MONEY_SCALE

__all__ = [
    "CycleResult",
    "compute_features",
    "recompute_full",
    "recompute_incremental",
    "run_stage_cycle",
]

RESULTS_TABLE: Final = "_stage_results"
SQLITE_CACHE_KIB: Final = 8_192
"""Page cache of the store during a full recompute on SQLite (KiB). Its passes read the
covering index once, in order, and write ``customer_state`` a key range at a time, so a larger
cache would only hold pages never read again (and count them in the process's memory); the OS
file cache serves re-reads. 64 MiB took the same time at a million customers (71 s and 73 s)."""
SQLITE_SCOPED_CACHE_KIB: Final = 262_144
"""Page cache of the store during an incremental cycle on SQLite (KiB): its writes dirty a
table page and two index pages per customer, scattered; with a smaller cache SQLite spills
dirty pages to the WAL one write at a time in the middle of the statements (measured at a
million customers, 1% changed: the state update took 0.91 s with 64 MiB, 0.58 s with this)."""
SQLITE_TEMP_CACHE_KIB: Final = 16_384
"""Page cache of SQLite's temporary tables (KiB): the results table holds one slice of
customers (about 8 MB for 25,000); the rest would spill to a temporary file through the OS
cache, which does not count against the process."""
_TARGETED_STATE_COLUMNS: Final = frozenset({"stage", "stage_since", "next_due_at"})
"""Columns of ``customer_state`` the upsert sets only on new rows: on existing ones, targeted
updates write them where they change (``stage`` and ``next_due_at`` are indexed)."""
SQLITE_MMAP_BYTES: Final = 1 << 34
"""Memory-map up to 16 GiB of the SQLite file during incremental cycles (see _tuned)."""


@dataclass(frozen=True)
class CycleResult:
    """What one stage cycle did."""

    mode: Literal["full", "incremental"]
    now: dt.datetime
    calibration_id: int | None
    recalibrated: bool
    customers: int
    """Customers recomputed."""
    changed_given: int
    due: int
    """Customers picked because their next_due_at had come (incremental only)."""
    transitions: int
    seconds: float

    def summary(self) -> str:
        what = "full recompute" + (" with a new calibration" if self.recalibrated else "")
        if self.mode == "incremental":
            what = f"incremental cycle ({self.changed_given} changed, {self.due} due)"
        return (
            f"{what}: {self.customers:,} customers recomputed, {self.transitions:,} stage "
            f"changes, {self.seconds:.2f} s"
        )


def run_stage_cycle(
    engine: Engine,
    rules: StageRules,
    *,
    now: dt.datetime,
    changed_customer_ids: Iterable[int] = (),
) -> CycleResult:
    """The call after each ingest: incremental, or full when the calibration must be refreshed.

    ``changed_customer_ids``: customers whose orders, survey answers or record changed (merged
    or deleted customers included) since the last cycle. A refresh is due when there is no
    calibration yet, the rules changed, or ``[calibration] refresh_every`` has passed.
    """
    with engine.connect() as connection:
        calibration = load_calibration(connection, rules)
    if refresh_due(calibration, rules, now):
        return recompute_full(engine, rules, now=now, recalibrate=True)
    return recompute_incremental(engine, rules, now=now, changed_customer_ids=changed_customer_ids)


def recompute_full(
    engine: Engine, rules: StageRules, *, now: dt.datetime, recalibrate: bool = True
) -> CycleResult:
    """Recompute every customer; with ``recalibrate`` also refresh windows, thresholds, fits.

    A new calibration is gathered in a first pass over the customers (its value counts and
    model sample stay small), then a second pass scores them against it a slice at a time.
    """
    started = time.perf_counter()
    with engine.begin() as connection, _tuned(connection) as db:
        calibration = None if recalibrate else _calibration_or_fail(connection, rules)
        if calibration is None:
            counts = currency_counts(db)
            money = resolve_money(rules, counts)
            population = Population.of(
                feature_slices(db, money, scoped=False, scores=False),
                rules.model.max_fit_customers,
            )
            fresh = calibrate(population, rules, now=now, money=money, currency_counts=counts)
            calibration = save_calibration(connection, fresh)
        slices = feature_slices(db, calibration.money, scoped=False)
        customers, transitions = _evaluate_and_write(
            db, slices, rules, calibration, now, scoped=False
        )
    return CycleResult(
        mode="full",
        now=now,
        calibration_id=calibration.id,
        recalibrated=recalibrate,
        customers=customers,
        changed_given=0,
        due=0,
        transitions=transitions,
        seconds=time.perf_counter() - started,
    )


def recompute_incremental(
    engine: Engine,
    rules: StageRules,
    *,
    now: dt.datetime,
    changed_customer_ids: Iterable[int],
) -> CycleResult:
    """Recompute the changed customers and those due by ``now``, against the stored calibration."""
    started = time.perf_counter()
    changed = CustomerIds(changed_customer_ids).array()
    with engine.begin() as connection, _tuned(connection, scoped=True) as db:
        calibration = _calibration_or_fail(connection, rules)
        db.create_temp(SCOPE_TABLE, "customer_id BIGINT NOT NULL", "customer_id")
        db.executemany(
            f"INSERT INTO {SCOPE_TABLE} (customer_id) VALUES (?)", ((int(i),) for i in changed)
        )
        due = db.execute(
            f"INSERT INTO {SCOPE_TABLE} (customer_id) SELECT customer_id FROM customer_state "
            "WHERE next_due_at <= ? ON CONFLICT (customer_id) DO NOTHING",
            (db.time_value(now),),
        )
        slices = feature_slices(db, calibration.money, scoped=True)
        customers, transitions = _evaluate_and_write(
            db, slices, rules, calibration, now, scoped=True
        )
        db.drop_temp(SCOPE_TABLE)
    return CycleResult(
        mode="incremental",
        now=now,
        calibration_id=calibration.id,
        recalibrated=False,
        customers=customers,
        changed_given=len(changed),
        due=max(due, 0),
        transitions=transitions,
        seconds=time.perf_counter() - started,
    )


def compute_features(
    connection: Connection, money: MoneySpec, customer_ids: Sequence[int] | None = None
) -> FeatureFrame:
    """Features of some customers (or all), without writing anything (explain, preview)."""
    db = Backend(connection)
    scoped = customer_ids is not None
    if customer_ids is not None:
        db.create_temp(SCOPE_TABLE, "customer_id BIGINT NOT NULL", "customer_id")
        db.executemany(
            f"INSERT INTO {SCOPE_TABLE} (customer_id) VALUES (?)",
            ((i,) for i in sorted(set(customer_ids))),
        )
    try:
        return compute_feature_frame(db, money, scoped=scoped)
    finally:
        if scoped:
            db.drop_temp(SCOPE_TABLE)


def _calibration_or_fail(connection: Connection, rules: StageRules) -> Calibration:
    calibration = load_calibration(connection, rules)
    if calibration is None:
        raise StoreError(
            "no stage calibration yet: run a full recompute first (`clm-hub stages --recompute "
            "--full`, or run_stage_cycle, which does so by itself)"
        )
    return calibration


class _tuned:
    """SQLite settings for one recompute, restored afterwards.

    Temporary tables get a page cache large enough to stay in memory; the store a modest one
    on a full recompute (its one pass over orders reads each index page once) and a larger one
    on an incremental cycle (see ``SQLITE_SCOPED_CACHE_KIB``). An incremental cycle also
    memory-maps the file, because it reads a few rows from many pages and each cold page read
    through the cache is a system call.
    """

    def __init__(self, connection: Connection, *, scoped: bool = False) -> None:
        self.db = Backend(connection)
        self.scoped = scoped
        self.previous: list[tuple[str, int]] = []

    def __enter__(self) -> Backend:
        if self.db.sqlite:
            pragmas = {"mmap_size": SQLITE_MMAP_BYTES} if self.scoped else {}
            pragmas["cache_size"] = -(SQLITE_SCOPED_CACHE_KIB if self.scoped else SQLITE_CACHE_KIB)
            pragmas["temp.cache_size"] = -SQLITE_TEMP_CACHE_KIB
            for name, value in pragmas.items():
                rows = self.db.fetch_rows(f"PRAGMA {name}")  # no row: in-memory database
                if rows:
                    self.previous.append((name, int(rows[0][0])))
                    self.db.execute(f"PRAGMA {name} = {value}")
        return self.db

    def __exit__(self, *exc: object) -> None:
        for name, value in self.previous:
            self.db.execute(f"PRAGMA {name} = {value}")


def _evaluate_and_write(
    db: Backend,
    slices: Iterable[FeatureFrame],
    rules: StageRules,
    calibration: Calibration,
    now: dt.datetime,
    *,
    scoped: bool,
) -> tuple[int, int]:
    """Evaluate the customers of ``slices`` and store the outcome, a slice at a time.

    Customers are independent given the calibration, so each slice is evaluated, written to
    the results table and applied to the store before the next is read: the rules' arrays,
    the result rows and the results table all stay the size of a slice, not of the shop.
    Returns (customers, stage changes).
    """
    context = RuleContext(rules, calibration, load_segment_map_for(rules), today(now))
    stages = list(rules.stages)
    code_of_rule = np.array([stages.index(rule.stage) for rule in rules.rules])
    cases = " ".join(f"WHEN '{stage}' THEN {k}" for k, stage in enumerate(stages))
    # The stored stages of a slice's customers: a key range of customer_state (through the
    # scope table on an incremental cycle, whose customers are spread over all ids).
    rows = f"{SCOPE_TABLE} AS k JOIN customer_state AS s ON s.customer_id = k.customer_id"
    previous_sql = (
        f"SELECT s.customer_id, CASE s.stage {cases} ELSE -1 END "
        f"FROM {rows if scoped else 'customer_state AS s'} "
        f"WHERE {'k' if scoped else 's'}.customer_id BETWEEN ? AND ? ORDER BY s.customer_id"
    )
    db.create_temp(
        RESULTS_TABLE,
        "customer_id BIGINT NOT NULL, stage VARCHAR(32) NOT NULL, changed SMALLINT NOT NULL, "
        "reason TEXT, rfm_r SMALLINT, rfm_f SMALLINT, rfm_m SMALLINT, p_alive DOUBLE PRECISION, "
        f"expected_value BIGINT, next_due_at {db.timestamp_type}, segments TEXT NOT NULL, "
        "explanation TEXT NOT NULL, nps_class VARCHAR(16), orders INTEGER NOT NULL, "
        "purchase_days INTEGER NOT NULL, revenue BIGINT NOT NULL, nps_score INTEGER, "
        f"first_at {db.timestamp_type}, last_at {db.timestamp_type}, is_new SMALLINT NOT NULL",
        "customer_id",
    )
    customers = transitions = 0
    for features in slices:
        if not len(features):
            continue
        previous = db.fetch_floats(
            previous_sql, (int(features.customer_id[0]), int(features.customer_id[-1]))
        )
        was = np.full(len(features), np.nan)
        if previous.size:
            at, found = positions(features.customer_id, previous[:, 0].astype(np.int64))
            was[at] = previous[found, 1]
        evaluation = evaluate(features, context)
        stage_code = code_of_rule[evaluation.rule_index]
        db.executemany(
            f"INSERT INTO {RESULTS_TABLE} (customer_id, stage, changed, reason, rfm_r, rfm_f, "
            "rfm_m, p_alive, expected_value, next_due_at, segments, explanation, nps_class, "
            "orders, purchase_days, revenue, nps_score, first_at, last_at, is_new) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _result_rows(  # NaN (no state yet) counts as a change
                db, evaluation, stages, stage_code, ~(was == stage_code), np.isnan(was),
                calibration,
            ),
        )  # fmt: skip
        transitions += _apply_results(db, now)
        customers += len(features)
    db.drop_temp(RESULTS_TABLE)
    return customers, transitions


def _apply_results(db: Backend, now: dt.datetime) -> int:
    """Record the results table's stage changes and write its rows into ``customer_state``,
    set-based; empties the results table. Returns the stage changes recorded."""
    moment = db.time_value(now)
    transitions = db.execute(
        "INSERT INTO stage_transition (customer_id, from_stage, to_stage, at, reason) "
        f"SELECT r.customer_id, s.stage, r.stage, ?, r.reason FROM {RESULTS_TABLE} AS r "
        "LEFT JOIN customer_state AS s ON s.customer_id = r.customer_id WHERE r.changed = 1 "
        "ORDER BY r.customer_id",
        (moment,),
    )
    # One pass over the customers' existing state rows (UPDATE ... FROM looks each up by key).
    # SQLite rewrites the index entries of every column in a SET list, even when the value
    # stays the same, so the indexed ``stage`` and ``next_due_at`` are only set by the
    # statement for the rows where one of them changes; the other rows get the rest.
    plain = ", ".join(f"{column} = {value}" for column, value in _state_values(db).items())
    own_row = f"FROM {RESULTS_TABLE} AS r WHERE r.customer_id = customer_state.customer_id"
    moves = f"r.changed = 1 OR {db.distinct('customer_state.next_due_at', 'r.next_due_at')}"
    db.execute(
        "UPDATE customer_state SET stage = r.stage, stage_since = CASE WHEN r.changed = 1 "
        "THEN ? ELSE customer_state.stage_since END, next_due_at = r.next_due_at, "
        f"{plain} {own_row} AND r.is_new = 0 AND ({moves})",
        (moment, moment),
    )
    db.execute(
        f"UPDATE customer_state SET {plain} {own_row} AND r.is_new = 0 AND NOT ({moves})",
        (moment,),
    )
    state = _state_values(db)
    db.execute(
        f"INSERT INTO customer_state (customer_id, stage, stage_since, next_due_at, "
        f"{', '.join(state)}) SELECT r.customer_id, r.stage, ?, r.next_due_at, "
        f"{', '.join(state.values())} FROM {RESULTS_TABLE} AS r WHERE r.is_new = 1",
        (moment, moment),
    )
    db.execute(f"DELETE FROM {RESULTS_TABLE}")
    return max(transitions, 0)


def _state_values(db: Backend) -> dict[str, str]:
    """``customer_state`` columns besides the key, stage and due time, as SQL on the results
    row ``r`` (``?``: the time of the cycle)."""
    return {
        "segments": db.json_value("r.segments"), "rfm_r": "r.rfm_r", "rfm_f": "r.rfm_f",
        "rfm_m": "r.rfm_m", "orders_count": "r.orders", "purchase_days": "r.purchase_days",
        "revenue": "r.revenue", "first_order_at": "r.first_at", "last_order_at": "r.last_at",
        "nps_score": "r.nps_score", "nps_class": "r.nps_class", "p_alive": "r.p_alive",
        "expected_value": "r.expected_value", "explanation": db.json_value("r.explanation"),
        "computed_at": "?",
    }  # fmt: skip


def _result_rows(
    db: Backend,
    evaluation: Evaluation,
    stages: list[str],
    stage_code: np.ndarray[Any, np.dtype[np.int64]],
    changed: np.ndarray[Any, np.dtype[np.bool_]],
    new: np.ndarray[Any, np.dtype[np.bool_]],
    calibration: Calibration,
) -> Iterator[tuple[Any, ...]]:
    """One row per customer for the results table, zipped from plain lists (fast)."""
    segment_names = evaluation.context.segment_map.segment_names
    segment_json: dict[tuple[int, int], str] = {}

    def segments(rfm: int, nps: int) -> str:
        key = (rfm, nps)
        text = segment_json.get(key)
        if text is None:
            labels = []
            if rfm >= 0:
                labels.append(f"rfm:{slugify(segment_names[rfm])}")
            if nps >= 0:
                labels.append(f"nps:{NPS_CLASSES[nps]}")
            text = segment_json[key] = json.dumps(sorted(labels))
        return text

    explanations = [
        json.dumps({"rule": rule.id, "calibration": calibration.id}) for rule in evaluation.rules
    ]
    nps_names: list[str | None] = [*NPS_CLASSES, None]

    def optional_int(values: np.ndarray[Any, Any]) -> list[int | None]:
        return [int(v) or None for v in values.tolist()]

    def optional_float(values: np.ndarray[Any, Any]) -> list[float | None]:
        return [None if math.isnan(v) else v for v in values.tolist()]

    features = evaluation.features
    # Slice by slice: plain lists are fast to zip, but a million customers' worth of them at
    # once would be the largest thing a full recompute holds.
    for lo in range(0, len(features), WRITE_ROWS):
        part = slice(lo, lo + WRITE_ROWS)
        r, f, m = (optional_int(a[part]) for a in (evaluation.r, evaluation.f, evaluation.m))
        clv = evaluation.clv[part].tolist()
        days = evaluation.next_due_day[part].tolist()
        flags = changed[part].astype(np.int64).tolist()
        nps = evaluation.nps_class[part].tolist()
        rfm = evaluation.rfm_segment[part].tolist()
        yield from zip(
            features.customer_id[part].tolist(),
            [stages[code] for code in stage_code[part].tolist()],
            flags,
            [evaluation.reason(lo + k) if flag else None for k, flag in enumerate(flags)],
            r, f, m,
            optional_float(evaluation.p_alive[part]),
            [None if math.isnan(v) else round(v * MONEY_SCALE) for v in clv],
            [None if math.isnan(v) else db.day_value(v) for v in days],
            [segments(k, n) for k, n in zip(rfm, nps, strict=True)],
            [explanations[k] for k in evaluation.rule_index[part].tolist()],
            [nps_names[k] for k in nps],
            features.orders[part].tolist(),
            features.purchase_days[part].tolist(),
            np.rint(features.revenue[part] * MONEY_SCALE).astype(np.int64).tolist(),
            [None if math.isnan(v) else int(v) for v in features.nps_score[part].tolist()],
            db.stamp_values(None if features.first_at is None else features.first_at[part]),
            db.stamp_values(None if features.last_at is None else features.last_at[part]),
            new[part].astype(np.int64).tolist(),
            strict=True,
        )  # fmt: skip
