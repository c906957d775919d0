"""Stage engine at scale: full recompute, a 1%-changed incremental cycle, and a pandas baseline.

Generates a synthetic shop (deterministic seed) straight into a SQLite file with bulk inserts:
customers buy as a BG/NBD process (Poisson purchases at a Gamma-distributed rate, Beta-distributed
dropout after each purchase), over three years, with same-day repeat orders, refunds,
cancellations, a second currency and NPS answers. Then, each in its own process so that peak
memory does not mix:

1. ``full``: two full recomputes with a fresh calibration (features in SQL, thresholds, BG/NBD and
   Gamma-Gamma fits, rules, writes); the second - a ``--full`` on a running hub - is timed,
   with the process's peak RSS;
2. ``incremental``: 1% of customers get a new order, a day passes, one incremental cycle runs
   (the changed customers plus every customer whose next_due_at has come);
3. ``features``: the RFM features alone (orders, purchase days, revenue, first/last/second day,
   median gap, R/F/M quintile scores), by the engine's SQL and by pandas from the same file.

    python bench/stages.py                               # 1,000,000 customers, 5,000,000 orders
    python bench/stages.py --customers 100000 --orders 500000

Last line: ``RESULT full_s=... incremental_s=... peak_rss_mb=... vs_pandas=...`` where
``vs_pandas`` = pandas seconds / engine seconds for the same RFM features (> 1: engine faster).
The data file (~0.9 GB at full size) is kept in ``--data-dir`` (default: the system temp
directory) and reused when it exists with the same size and seed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

END = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
"""The synthetic shop's "today"; the data covers the three years before it."""
SPAN_DAYS = 3 * 365
CHANNELS = ("organic", "paid_search", "social", "email", "referral")
STATUSES = ("paid", "partially_refunded", "refunded", "cancelled", "pending")
STATUS_SHARES = (0.93, 0.02, 0.02, 0.02, 0.01)


# -- data ----------------------------------------------------------------------------------


def _simulate(rng: np.random.Generator, first: np.ndarray, end: int, rate_scale: float) -> Any:
    """Repeat purchase days per buyer under BG/NBD: returns (buyer index, day) of repeats."""
    n = first.size
    lam = rng.gamma(0.75, 1.0 / 60.0, n) * rate_scale  # purchases per day while alive
    p = rng.beta(0.8, 4.0, n)  # dropout chance after each purchase
    alive_repeats = np.minimum(rng.geometric(p) - 1, 400)
    owner = np.repeat(np.arange(n), alive_repeats)
    gaps = rng.exponential(1.0, owner.size) / lam[owner]
    cumulative = np.cumsum(gaps)
    starts = np.r_[0, np.cumsum(alive_repeats)[:-1]]
    before = np.r_[0.0, cumulative][starts]  # sum of all earlier customers' gaps
    elapsed = cumulative - np.repeat(before, alive_repeats)
    day = first[owner] + np.floor(elapsed).astype(np.int64)
    keep = day < end
    return owner[keep], day[keep]


def generate(path: Path, customers: int, orders: int, seed: int) -> dict[str, float]:
    """Write the synthetic shop into a fresh SQLite store at ``path``."""
    from clm_hub.store import open_engine, upgrade

    started = time.perf_counter()
    engine = open_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    rng = np.random.default_rng(seed)
    end = (END.date() - dt.date(1970, 1, 1)).days
    created = end - SPAN_DAYS + rng.integers(0, SPAN_DAYS, customers)
    buyer = np.flatnonzero(rng.random(customers) < 0.9)
    first = np.minimum(created[buyer] + rng.geometric(1 / 20, buyer.size), end - 1)

    # Scale purchase rates so the expected number of orders is close to the target.
    target_repeats = max(orders - buyer.size, 0) / max(buyer.size, 1) / 1.05
    lo, hi = 0.05, 20.0
    probe = np.random.default_rng(seed + 1)
    sample = first[: min(first.size, 50_000)]
    for _ in range(30):
        mid = (lo * hi) ** 0.5
        owner, _ = _simulate(np.random.default_rng(seed + 2), sample, end, mid)
        lo, hi = (mid, hi) if owner.size / sample.size < target_repeats else (lo, mid)
    owner, day = _simulate(rng, first, end, (lo * hi) ** 0.5)
    cust = np.r_[np.arange(buyer.size), owner]
    day = np.r_[first, day]
    # Same-day repeat orders (split baskets), then trim or pad to exactly `orders`.
    extra = max(orders - cust.size, 0)
    pick = probe.integers(0, cust.size, extra)
    cust, day = np.r_[cust, cust[pick]], np.r_[day, day[pick]]
    if cust.size > orders:
        repeat = np.arange(buyer.size, cust.size)
        drop = probe.choice(repeat, cust.size - orders, replace=False)
        keep = np.ones(cust.size, dtype=bool)
        keep[drop] = False
        cust, day = cust[keep], day[keep]
    customer_id = buyer[cust] + 1
    seconds = day * 86400 + rng.integers(0, 86400, day.size)
    total = np.round(np.exp(rng.normal(3.8, 0.6, day.size)), 2)
    scaled = (total * 10_000).astype(np.int64)
    status = rng.choice(len(STATUSES), day.size, p=STATUS_SHARES)
    refunded = np.where(
        status == 1, (scaled * 3 // 10) // 100 * 100, np.where(status == 2, scaled, 0)
    )
    currency = np.where(rng.random(day.size) < 0.02, "USD", "EUR")
    order = np.argsort(seconds, kind="stable")  # ingested in time order, like a real shop

    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-1000000")
    channel = rng.integers(0, len(CHANNELS), customers)
    con.executemany(
        "INSERT INTO customer (id, email, created_at, updated_at, acquisition_channel) VALUES "
        "(?, 'c' || ? || '@bench.example', datetime(?, 'unixepoch') || '.000000', "
        "datetime(?, 'unixepoch') || '.000000', ?)",
        (
            (i + 1, i + 1, int(created[i]) * 86400, int(created[i]) * 86400, CHANNELS[channel[i]])
            for i in range(customers)
        ),
    )
    status_names = np.array(STATUSES)
    for start in range(0, day.size, 250_000):
        idx = order[start : start + 250_000]
        con.executemany(
            "INSERT INTO customer_order (source, external_id, customer_id, placed_at, total, "
            "refunded, currency, status, content_hash) VALUES ('shop', CAST(? AS TEXT), ?, "
            "datetime(?, 'unixepoch') || '.000000', ?, ?, ?, ?, 'h')",
            zip(
                (idx + 1).tolist(),
                customer_id[idx].tolist(),
                seconds[idx].tolist(),
                scaled[idx].tolist(),
                refunded[idx].tolist(),
                currency[idx].tolist(),
                status_names[status[idx]].tolist(),
                strict=True,
            ),
        )
    answered = rng.choice(customers, customers // 5, replace=False) + 1
    con.executemany(
        "INSERT INTO survey_response (source, external_id, customer_id, score, answered_at, "
        "content_hash) VALUES ('survey', CAST(? AS TEXT), ?, ?, "
        "datetime(?, 'unixepoch') || '.000000', 'h')",
        zip(
            range(1, answered.size + 1),
            answered.tolist(),
            rng.choice(11, answered.size, p=np.r_[[0.02] * 7, 0.1, 0.2, 0.28, 0.28]).tolist(),
            ((end - rng.integers(1, 365, answered.size)) * 86400).tolist(),
            strict=True,
        ),
    )
    con.commit()
    con.execute("ANALYZE")
    con.close()
    return {"seconds": time.perf_counter() - started, "orders": int(day.size)}


# -- measurements (each runs in its own process) -------------------------------------------


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_full(path: Path) -> dict[str, Any]:
    from clm_hub.stages import load_rules, recompute_full
    from clm_hub.store import open_engine

    engine = open_engine(f"sqlite:///{path}")
    rules = load_rules()
    first = recompute_full(engine, rules, now=END + dt.timedelta(hours=6))
    first_peak = _peak_mb()
    second = recompute_full(engine, rules, now=END + dt.timedelta(hours=7))
    with engine.connect() as connection:
        stages: dict[str, int] = dict(
            connection.exec_driver_sql(
                "SELECT stage, COUNT(*) FROM customer_state GROUP BY stage ORDER BY 2 DESC"
            ).all()
        )
        note = connection.exec_driver_sql(
            "SELECT model_note FROM stage_calibration ORDER BY id DESC LIMIT 1"
        ).scalar_one()
    engine.dispose()
    return {
        "first_s": first.seconds,
        "full_s": second.seconds,
        "transitions": second.transitions,
        "peak_rss_mb": _peak_mb(),
        "first_peak_rss_mb": first_peak,
        "stages": stages,
        "model": note,
    }


def measure_incremental(path: Path, fraction: float, seed: int) -> dict[str, Any]:
    from clm_hub.stages import load_rules, recompute_incremental
    from clm_hub.store import open_engine

    rng = np.random.default_rng(seed + 10)
    con = sqlite3.connect(path)
    customers = con.execute("SELECT MAX(id) FROM customer").fetchone()[0]
    next_order = con.execute("SELECT MAX(id) FROM customer_order").fetchone()[0] + 1
    changed = np.sort(rng.choice(customers, int(customers * fraction), replace=False) + 1)
    moment = int((END + dt.timedelta(hours=2)).timestamp())
    con.executemany(
        "INSERT INTO customer_order (source, external_id, customer_id, placed_at, total, "
        "currency, status, content_hash) VALUES ('shop', CAST(? AS TEXT), ?, "
        "datetime(?, 'unixepoch') || '.000000', 450000, 'EUR', 'paid', 'h')",
        ((next_order + k, int(c), moment) for k, c in enumerate(changed)),
    )
    con.commit()
    con.close()
    # The full step just wrote ~1 GB that the kernel has not flushed yet; the cycle's own
    # commit would fsync behind that backlog. A daemon's cycles meet a settled file, so the
    # backlog is flushed (untimed) first; the cycle's own writes and fsyncs stay timed.
    os.sync()
    # As in the daemon: WAL checkpoints (and their fsync) run in a thread of their own, so the
    # cycle's commit does not wait for them; the time until the file is settled is reported.
    engine = open_engine(f"sqlite:///{path}", background_checkpoints=True)
    result = recompute_incremental(
        engine, load_rules(), now=END + dt.timedelta(days=1, hours=6),
        changed_customer_ids=changed.tolist(),
    )  # fmt: skip
    settle = time.perf_counter()
    engine.dispose()  # the last checkpoint of the background thread
    return {
        "incremental_s": result.seconds,
        "checkpoint_s": time.perf_counter() - settle,
        "changed": result.changed_given,
        "due": result.due,
        "recomputed": result.customers,
        "transitions": result.transitions,
        "peak_rss_mb": _peak_mb(),
    }


def measure_engine_features(path: Path) -> dict[str, Any]:
    """The engine's RFM features: SQL pipeline, read, thresholds and 1-5 scores."""
    from clm_hub.analytics.rfm import score_rfm
    from clm_hub.stages.engine import compute_features
    from clm_hub.stages.features import MoneySpec
    from clm_hub.store import open_engine

    engine = open_engine(f"sqlite:///{path}")
    started = time.perf_counter()
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA cache_size=-1000000")
        features = compute_features(connection, MoneySpec("EUR", {}))
    today = (END.date() - dt.date(1970, 1, 1)).days
    buyers = features.take(features.buyers)
    scores = score_rfm(today - buyers.last_day, buyers.purchase_days, buyers.revenue)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {
        "seconds": seconds,
        "buyers": len(buyers),
        "r5": int((scores.r == 5).sum()),
        "median_gap_mean": float(np.nanmean(buyers.median_gap)),
        "peak_rss_mb": _peak_mb(),
    }


def measure_pandas_features(path: Path) -> dict[str, Any]:
    """The same RFM features with pandas, from the same SQLite file."""
    import pandas as pd

    from clm_hub.analytics.rfm import score_rfm

    started = time.perf_counter()
    con = sqlite3.connect(path)
    orders = pd.read_sql_query(
        "SELECT customer_id, placed_at, total - refunded AS net FROM customer_order "
        "WHERE customer_id IS NOT NULL AND deleted_at IS NULL "
        "AND status IN ('paid', 'partially_refunded') AND currency = 'EUR'",
        con,
    )
    con.close()
    placed = pd.to_datetime(orders["placed_at"], format="%Y-%m-%d %H:%M:%S.%f")
    orders["day"] = placed.values.astype("datetime64[D]").astype(np.int64)
    days = (
        orders.groupby(["customer_id", "day"], sort=True)
        .agg(n=("net", "size"), amount=("net", "sum"))
        .reset_index()
    )
    days["gap"] = days.groupby("customer_id")["day"].diff()
    per = days.groupby("customer_id").agg(
        orders=("n", "sum"), purchase_days=("day", "size"), revenue=("amount", "sum"),
        first_day=("day", "min"), last_day=("day", "max"), median_gap=("gap", "median"),
    )  # fmt: skip
    per["second_day"] = days.groupby("customer_id")["day"].nth(1).reindex(per.index)
    today = (END.date() - dt.date(1970, 1, 1)).days
    scores = score_rfm(today - per["last_day"].to_numpy(), per["purchase_days"].to_numpy(),
                       per["revenue"].to_numpy() / 10_000)  # fmt: skip
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "buyers": len(per),
        "r5": int((scores.r == 5).sum()),
        "median_gap_mean": float(per["median_gap"].mean()),
        "peak_rss_mb": _peak_mb(),
    }


def _child(step: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--step", step, "--db", str(args.db_path),
               "--customers", str(args.customers), "--orders", str(args.orders),
               "--seed", str(args.seed), "--changed", str(args.changed)]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=5_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--changed", type=float, default=0.01, help="share changed per cycle")
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "clm-hub-bench"
    )
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        from clm_hub.malloc import tune_malloc

        tune_malloc()  # as `clm-hub` does at start
        steps: dict[str, Callable[[], object]] = {
            "generate": lambda: generate(args.db, args.customers, args.orders, args.seed),
            "full": lambda: measure_full(args.db),
            "incremental": lambda: measure_incremental(args.db, args.changed, args.seed),
            "engine_features": lambda: measure_engine_features(args.db),
            "pandas_features": lambda: measure_pandas_features(args.db),
        }
        print(json.dumps(steps[args.step]()))
        return

    args.data_dir.mkdir(parents=True, exist_ok=True)
    base = args.data_dir / f"stages-{args.customers}-{args.orders}-{args.seed}.sqlite3"
    if not base.exists():
        args.db_path = base.with_suffix(".tmp")
        args.db_path.unlink(missing_ok=True)
        made = _child("generate", args)
        args.db_path.rename(base)
        print(f"generated {args.customers:,} customers, {made['orders']:,} orders "
              f"in {made['seconds']:.1f} s -> {base}", flush=True)  # fmt: skip
    work = base.with_name(base.stem + "-work.sqlite3")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    # A file copy that does not pass through this process: a child's peak RSS starts from
    # its parent's (kept across fork and exec), so reading the file here would be counted
    # in every step's figure.
    shutil.copyfile(base, work)
    args.db_path = work

    full = _child("full", args)
    print(f"full recompute: first {full['first_s']:.1f} s, again {full['full_s']:.1f} s, "
          f"peak RSS {full['first_peak_rss_mb']:.0f} MB after the first, "
          f"{full['peak_rss_mb']:.0f} MB after both; stages {full['stages']}; "
          f"model: {full['model']}", flush=True)  # fmt: skip
    inc = _child("incremental", args)
    print(f"incremental: {inc['changed']:,} changed + {inc['due']:,} due -> "
          f"{inc['recomputed']:,} recomputed, {inc['transitions']:,} stage changes in "
          f"{inc['incremental_s']:.2f} s (peak {inc['peak_rss_mb']:.0f} MB, mostly memory-mapped "
          f"file pages); its WAL "
          f"checkpoint, in the background thread, settled {inc['checkpoint_s']:.2f} s later",
          flush=True)  # fmt: skip
    ours = _child("engine_features", args)
    theirs = _child("pandas_features", args)
    print(f"RFM features: engine {ours['seconds']:.1f} s (peak {ours['peak_rss_mb']:.0f} MB), "
          f"pandas {theirs['seconds']:.1f} s (peak {theirs['peak_rss_mb']:.0f} MB); "
          f"buyers {ours['buyers']:,} vs {theirs['buyers']:,}, R=5 {ours['r5']:,} vs "
          f"{theirs['r5']:,}", flush=True)  # fmt: skip
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    vs_pandas = theirs["seconds"] / ours["seconds"]
    # The figure: the full recompute's peak. The incremental cycle's RSS counts the
    # file pages it memory-maps (shared, reclaimable page cache), printed above.
    peak = full["peak_rss_mb"]
    print(f"RESULT full_s={full['full_s']:.1f} incremental_s={inc['incremental_s']:.2f} "
          f"peak_rss_mb={peak:.0f} vs_pandas={vs_pandas:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
