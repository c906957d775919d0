"""Ingest throughput and memory: a synthetic tool (no rate limit) through the real sync
engine into a SQLite file.

The tool is ``clm_hub.testing.synthetic_api`` served over HTTP on loopback from its own
process, as a remote API would be: generating its data is not charged to the hub, while
everything the hub does for a real tool is: HTTP, JSON parsing and pydantic validation of
every record, identity resolution, set-based writes and the cursor, one transaction per
page (or per batch of pages that waited for the writer). The tool's rows are already in
the hub's record shape, so there is no field mapping, which a real connector adds.
``--in-process`` serves the same pages from inside the hub's process instead.

The hub pulls as ``clm-hub sync`` does: in a pull worker process (``[sync] pull_workers``;
``CLM_HUB_SYNC__PULL_WORKERS=false`` for everything in one process), whose start is part of
the timed cycle. The tool answers a page it served before from memory: the untimed
source-only pass renders every page once, so rendering pages in Python (a real tool's
servers do that, not ours) does not take a share of this machine's two cores during the
timed cycle; ``--render-every-request`` renders them again.

records/s = records read and ingested into the store / wall time of ``run_cycle`` (the
sync alone: not the server's start, not the migrations). Also printed: peak RSS of the
hub's process (and of its pull worker) at several sizes, to show memory stays flat as the
record count grows (each size runs in its own process so peaks do not mix), and the rate
of the source alone (tool rendering, hub fetching and parsing in its own process, nothing
written).

    python bench/ingest.py                      # 100k contacts + 500k orders, and a 1/4 run
    python bench/ingest.py --contacts 20000 --orders 100000 --scales 1

Last line: ``RESULT records_per_s=... peak_rss_mb=...`` (the full-size run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any


def serve_api(settings_json: str, port: int, remember: bool) -> None:
    """The synthetic tool's HTTP server (the body of its own process)."""
    import uvicorn

    from clm_hub.testing.synthetic_api import SyntheticSettings, create_app

    app = create_app(SyntheticSettings.model_validate_json(settings_json))
    uvicorn.run(
        remembering(app) if remember else app,
        host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off",
    )  # fmt: skip


def remembering(app: Any) -> Any:
    """Answer a request seen before from memory. The untimed source-only pass asks for
    every page once, so the timed cycle does not charge rendering the tool's pages (~0.4
    of a core in Python) to the hub's two cores: a real tool renders them on its own
    servers. The hub's side of each request (HTTP, parsing, validation) is unchanged."""
    answers: dict[tuple[str, bytes], list[Any]] = {}

    async def serve(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        key = (scope["path"], scope["query_string"])
        if key in answers:
            for message in answers[key]:
                await send(message)
            return
        messages: list[Any] = []

        async def keep(message: Any) -> None:
            messages.append(message)
            await send(message)

        await app(scope, receive, keep)
        answers[key] = messages

    return serve


@contextmanager
def api_process(source: dict[str, object], remember: bool = True) -> Iterator[str]:
    """Run the synthetic tool in its own process for the block; yields its base URL."""
    import httpx

    from clm_hub.testing.synthetic_api import SyntheticSettings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    settings = SyntheticSettings.model_validate(source).model_dump_json()
    process = multiprocessing.get_context("spawn").Process(
        target=serve_api, args=(settings, port, remember), daemon=True
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{url}/contacts", params={"offset": 10**12}, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the synthetic API did not start")
        yield url
    finally:
        process.terminate()
        process.join(10)


def single(
    contacts: int, orders: int, page_size: int, in_process: bool, remember: bool = True
) -> dict[str, float]:
    from clm_hub.plugins import build_plugin_registry
    from clm_hub.settings import HubSettings
    from clm_hub.store import open_engine, upgrade
    from clm_hub.sync import SyncEngine
    from clm_hub.testing import synthetic

    class Quiet:
        def stream_started(self, connector: str, stream: str, note: str) -> None: ...
        def page_written(self, connector: str, stream: str, counts: object) -> None: ...
        def stream_finished(self, result: object) -> None: ...

    source: dict[str, object] = {"contacts": contacts, "orders": orders, "page_size": page_size}
    with ExitStack() as stack:
        if not in_process:
            source["base_url"] = stack.enter_context(api_process(source, remember))
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        url = f"sqlite:///{folder}/bench.sqlite3"
        engine = open_engine(url, background_checkpoints=True)  # as `clm-hub sync` does
        upgrade(engine)
        settings = HubSettings(
            database_url=url,
            log_level="error",
            connectors={"shop": {"plugin": "synthetic", **source}},
        )
        registry = build_plugin_registry(entry_points=False, extra={"synthetic": synthetic})
        source_seconds = asyncio.run(_source_only(settings, registry))
        with SyncEngine(settings, registry, engine, progress=Quiet()) as hub:
            started, cpu = time.perf_counter(), time.process_time()
            cycle = asyncio.run(hub.run_cycle())
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            workers = hub.workers.pids.values() if hub.workers is not None else ()
            worker_mb = max((_peak_mb(pid) for pid in workers), default=0.0)
        engine.dispose()
    [shop] = cycle.connectors
    assert shop.reason is None, shop.reason
    records = sum(s.counts.read for s in shop.streams)
    inserted = sum(s.counts.inserted for s in shop.streams)
    assert inserted == contacts + orders, (inserted, contacts + orders)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "records": records, "seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak_mb,
        "source_seconds": source_seconds, "worker_peak_rss_mb": worker_mb,
    }  # fmt: skip


def _peak_mb(pid: int) -> float:
    """A process's peak RSS from /proc (Linux), 0 where unknown."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _source_only(settings: object, registry: object) -> float:
    """Seconds the source alone takes to serve, fetch and parse every page (no writes):
    the share of a pull that is the tool's and the HTTP's, not the store's."""
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
    parser.add_argument(
        "--in-process", action="store_true", help="serve the source inside the hub's process"
    )
    parser.add_argument(
        "--render-every-request",
        action="store_true",
        help="the tool renders every page again instead of answering from memory",
    )
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        remember = not args.render_every_request
        figures = single(args.contacts, args.orders, args.page_size, args.in_process, remember)
        print(json.dumps(figures))
        return
    where = "generated in-process" if args.in_process else "served over HTTP by its own process"
    rows = []
    for scale in (float(s) for s in args.scales.split(",")):
        contacts, orders = int(args.contacts * scale), int(args.orders * scale)
        out = subprocess.run(
            [sys.executable, __file__, "--single", "--contacts", str(contacts),
             "--orders", str(orders), "--page-size", str(args.page_size),
             *(["--in-process"] if args.in_process else []),
             *(["--render-every-request"] if args.render_every_request else [])],
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
            f"(pull worker {figures['worker_peak_rss_mb']:.1f} MB), "
            f"hub CPU {figures['cpu_seconds'] / figures['seconds']:.2f} cores "
            f"(the source alone, {where} and parsed by the hub: {source_rate:,.0f} records/s)"
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
