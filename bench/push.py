"""Write-back throughput against HubSpot's documented rate limit, over real HTTP.

The HubSpot simulator (in its own process) enforces the Free/Starter burst limit (100
requests per rolling 10 s) and batch updates of at most 100 inputs: at most 1,000
records/s in steady state. The benchmark seeds N contacts in the simulator and in the
store, each with a stage and segments to write, runs the real push executor with the
real connector, and reports records/s, 429s, and the share of the ceiling reached: the
fastest schedule the limit allows for the requests made, over the time taken (headroom
0 here: every request of the budget is ours to use).

    python bench/push.py                  # 30,000 records
    python bench/push.py --records 5000   # quicker, less steady

Last line: ``RESULT records_per_s=... ceiling_share=... throttled=...``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

BURST_LIMIT = int(__import__("os").environ.get("BENCH_BURST", "100"))
WINDOW_S = 10.0


def simulate(port: int, records: int, throttled: Any, requests: Any) -> None:
    """The simulator, in its own process so it does not compete with the hub for the GIL."""
    import uvicorn

    from clm_hub_plugins.hubspot.simstate import HubSpotState, RateLimits
    from clm_hub_plugins.hubspot.simulator import create_app

    state = HubSpotState(
        rate_limits=RateLimits(
            burst_limit=BURST_LIMIT, burst_window_s=WINDOW_S, daily_limit=10_000_000
        )
    )
    with state.batch():  # one transaction for the whole seeding
        for i in range(records):
            state.add_contact(f"p{i}@example.com")
    app = create_app(state)

    async def count_429s(scope: Any, receive: Any, send: Any) -> None:
        async def observe(message: Any) -> None:
            if message["type"] == "http.response.start":
                counter = throttled if message["status"] == 429 else requests
                with counter.get_lock():
                    counter.value += 1
            await send(message)

        await app(scope, receive, observe)

    uvicorn.run(count_429s, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=30_000)
    args = parser.parse_args()

    import clm_hub_plugins.hubspot as hubspot_plugin
    from clm_hub.linking import customer_t, identity_t, state_t
    from clm_hub.plugins import build_plugin_registry
    from clm_hub.push.executor import PushExecutor
    from clm_hub.push.mapping import PushMapping
    from clm_hub.push.planner import PushTarget
    from clm_hub.redaction import Redactor
    from clm_hub.runtime import configure_connectors, open_connector
    from clm_hub.settings import HubSettings
    from clm_hub.store import open_engine, upgrade
    from clm_hub.store.bulk import bulk_insert
    from clm_hub_plugins.hubspot.simstate import DEFAULT_TOKEN

    now = datetime.now(UTC)
    port = free_port()
    fork = multiprocessing.get_context("fork")
    throttled_counter, request_counter = fork.Value("i", 0), fork.Value("i", 0)
    simulator = fork.Process(
        target=simulate,
        args=(port, args.records, throttled_counter, request_counter),
        daemon=True,
    )
    simulator.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(f"{url}/crm/v3/objects/contacts", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    # The simulator numbers objects from 101 in creation order.
    ids = [str(101 + i) for i in range(args.records)]
    stages = ["new", "repeat", "loyal", "vip", "at-risk", "lapsed"]
    with tempfile.TemporaryDirectory() as folder:
        engine = open_engine(f"sqlite:///{folder}/bench.sqlite3")
        upgrade(engine)
        with engine.begin() as conn:
            bulk_insert(
                conn,
                customer_t,
                [{"id": i + 1, "email": f"p{i}@example.com", "created_at": now,
                  "updated_at": now} for i in range(args.records)],
            )  # fmt: skip
            bulk_insert(
                conn,
                identity_t,
                [{"source": "hs", "external_id": ext, "customer_id": i + 1, "tags": [],
                  "content_hash": "x", "first_seen_at": now, "last_seen_at": now}
                 for i, ext in enumerate(ids)],
            )  # fmt: skip
            bulk_insert(
                conn,
                state_t,
                [{"customer_id": i + 1, "stage": stages[i % len(stages)], "stage_since": now,
                  "segments": ["champions"] if i % 4 == 0 else ["need-attention"],
                  "computed_at": now, "explanation": {}, "orders_count": 0, "revenue": 0}
                 for i in range(args.records)],
            )  # fmt: skip
        settings = HubSettings.model_validate(
            {"connectors": {"hs": {
                "plugin": "hubspot", "base_url": url, "access_token": DEFAULT_TOKEN,
                "burst_limit": BURST_LIMIT, "burst_window_seconds": WINDOW_S,
                "burst_headroom": 0.0, "headroom": 0.0,
            }}}
        )  # fmt: skip
        registry = build_plugin_registry(entry_points=False, extra={"hubspot": hubspot_plugin})
        [item] = configure_connectors(settings, registry)
        assert item.ok, item.error
        mapping = PushMapping(concurrency=8)
        target = PushTarget("hs", mapping, "clm", use_tags=False, use_fields=True)

        async def push() -> tuple[float, int, int, int]:
            connector = open_connector(item, Redactor())
            try:
                request_counter.value = 0  # the readiness probe does not count
                values = {"clm_stage": stages, "clm_segment": ["champions", "need-attention"],
                          "clm_nps": ["promoter", "passive", "detractor"]}  # fmt: skip
                await connector.prepare_push(values)
                started = time.perf_counter()
                executor = PushExecutor(
                    engine, connector, target, now=now, redactor=Redactor(),
                    lock=threading.Lock(),
                )  # fmt: skip
                counts = await executor.run()
                return (time.perf_counter() - started, counts.confirmed, counts.batches,
                        connector.max_push_batch)  # fmt: skip
            finally:
                await connector.http.aclose()

        seconds, confirmed, batches, max_batch = asyncio.run(push())
        engine.dispose()
    simulator.terminate()
    simulator.join(timeout=10)
    throttled = throttled_counter.value
    sent = request_counter.value
    rate = confirmed / seconds
    steady = max_batch * BURST_LIMIT / WINDOW_S
    # The fastest any client can send `sent` requests through a rolling window of
    # BURST_LIMIT per WINDOW_S: a full window at once, then one more window per
    # BURST_LIMIT requests (processing time aside).
    fastest = WINDOW_S * (math.ceil(sent / BURST_LIMIT) - 1)
    share = min(1.0, fastest / seconds) if fastest else 1.0
    print(
        f"pushed {confirmed:,} records in {batches:,} batches of up to {max_batch} "
        f"in {seconds:.1f} s = {rate:,.0f} records/s (the limit allows {steady:,.0f}/s "
        f"in steady state: {BURST_LIMIT} requests / {WINDOW_S:.0f} s x {max_batch})"
    )
    print(
        f"{sent:,} requests in all (property set-up included); the fastest schedule the "
        f"limit allows for them takes {fastest:.1f} s: {share:.1%} of the ceiling reached"
    )
    print(f"429 responses: {throttled}")
    print(f"RESULT records_per_s={rate:.0f} ceiling_share={share:.3f} throttled={throttled}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
