"""Ingest throughput and memory: a synthetic source (no network, no rate limit) through
the real sync engine into a SQLite file.

Prints records/s end to end (pull, validate, identity resolution, set-based writes,
cursor per page) and the process's peak RSS at several sizes, to show memory stays flat
as the record count grows. Each size runs in its own process so peaks do not mix.

    python bench/ingest.py                      # 100k contacts + 500k orders, and a 1/4 run
    python bench/ingest.py --contacts 20000 --orders 100000 --scales 1

Last line: ``RESULT records_per_s=... peak_rss_mb=...`` (the full-size run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def single(contacts: int, orders: int, page_size: int) -> dict[str, float]:
    from clm_hub.plugins import build_plugin_registry
    from clm_hub.settings import HubSettings
    from clm_hub.store import open_engine, upgrade
    from clm_hub.sync import SyncEngine
    from clm_hub.testing import synthetic

    class Quiet:
        def stream_started(self, connector: str, stream: str, note: str) -> None: ...
        def page_written(self, connector: str, stream: str, counts: object) -> None: ...
        def stream_finished(self, result: object) -> None: ...

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.sqlite3"
        engine = open_engine(url)
        upgrade(engine)
        settings = HubSettings(
            database_url=url,
            log_level="error",
            connectors={
                "shop": {
                    "plugin": "synthetic", "contacts": contacts, "orders": orders,
                    "page_size": page_size,
                }
            },
        )  # fmt: skip
        registry = build_plugin_registry(entry_points=False, extra={"synthetic": synthetic})
        source_seconds = asyncio.run(_source_only(settings, registry))
        hub = SyncEngine(settings, registry, engine, progress=Quiet())
        started = time.perf_counter()
        cycle = asyncio.run(hub.run_cycle())
        seconds = time.perf_counter() - started
        engine.dispose()
    [shop] = cycle.connectors
    assert shop.reason is None, shop.reason
    records = sum(s.counts.read for s in shop.streams)
    inserted = sum(s.counts.inserted for s in shop.streams)
    assert inserted == contacts + orders, (inserted, contacts + orders)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "records": records, "seconds": seconds, "peak_rss_mb": peak_mb,
        "source_seconds": source_seconds,
    }  # fmt: skip


async def _source_only(settings: object, registry: object) -> float:
    """Seconds the test source alone takes to generate and parse every page (no writes):
    its share of the end-to-end time, which in a real pull is the tool's JSON parsing."""
    from clm_hub.runtime import build_redactor, configure_connectors, open_connector

    [item] = configure_connectors(settings, registry)  # type: ignore[arg-type]
    connector = open_connector(item, build_redactor([item]))
    started = time.perf_counter()
    async for _ in connector.pull_contacts(None):
        pass
    async for _ in connector.pull_orders(None):
        pass
    await connector.http.aclose()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=500_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--scales", default="0.25,1", help="sizes to run, as shares of full")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(single(args.contacts, args.orders, args.page_size)))
        return
    rows = []
    for scale in (float(s) for s in args.scales.split(",")):
        contacts, orders = int(args.contacts * scale), int(args.orders * scale)
        out = subprocess.run(
            [sys.executable, __file__, "--single", "--contacts", str(contacts),
             "--orders", str(orders), "--page-size", str(args.page_size)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        figures = json.loads(out.strip().splitlines()[-1])
        rate = figures["records"] / figures["seconds"]
        rows.append((scale, figures, rate))
        source_rate = figures["records"] / figures["source_seconds"]
        print(
            f"scale {scale:>5}: {contacts:>8,} contacts + {orders:>9,} orders = "
            f"{figures['records']:>9,.0f} records in {figures['seconds']:7.1f} s "
            f"= {rate:>8,.0f} records/s, peak RSS {figures['peak_rss_mb']:6.1f} MB "
            f"(the source alone, generating and parsing: {source_rate:,.0f} records/s)"
        )
    if len(rows) > 1:
        (small_scale, small, _), (big_scale, big, _) = rows[0], rows[-1]
        growth = big["peak_rss_mb"] / small["peak_rss_mb"]
        print(
            f"memory: {big_scale / small_scale:.0f}x the records took {growth:.2f}x the peak RSS "
            "(flat means streaming: no stage holds the whole data set)"
        )
    _, full, full_rate = rows[-1]
    print(f"RESULT records_per_s={full_rate:.0f} peak_rss_mb={full['peak_rss_mb']:.1f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
