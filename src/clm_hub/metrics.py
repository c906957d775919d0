"""Prometheus metrics of one daemon process, in a registry the daemon owns.

Counters describe what this replica did (cycles, records, pushes, API calls, 429s,
webhooks, alerts); Prometheus sums them across replicas. Gauges read from the store at
scrape time describe the shared state every replica sees the same way: customers per
stage, each connector's lag, each stream's cursor lag.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from clm_hub.ingest import STREAMS
from clm_hub.records import now_utc
from clm_hub.runs import RunStatus
from clm_hub.store.tables import CustomerState, SyncCursor, SyncRun
from clm_hub.sync import ConnectorResult

__all__ = ["CONTENT_TYPE", "HubMetrics"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
state_t = CustomerState.__table__  # type: ignore[attr-defined]
cursor_t = SyncCursor.__table__  # type: ignore[attr-defined]
run_t = SyncRun.__table__  # type: ignore[attr-defined]

RECORD_OUTCOMES = ("read", "inserted", "updated", "unchanged", "rejected")
PUSH_OUTCOMES = ("planned", "sent", "confirmed", "failed", "gave_up")
CYCLE_STATUSES = ("ok", "partial", "failed", "error", "abandoned")
TRIGGERS = ("schedule", "webhook", "reconcile", "stages")
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class HubMetrics:
    """Every metric the daemon exposes on ``/metrics``."""

    def __init__(
        self,
        engine: Engine,
        connectors: Sequence[str],
        *,
        now: Callable[[], datetime] = now_utc,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.cycles = Counter(
            "clm_hub_cycles", "Connector cycles run by this replica, by outcome.",
            ["connector", "status"], registry=r,
        )  # fmt: skip
        self.cycle_seconds = Histogram(
            "clm_hub_cycle_duration_seconds", "Wall time of one connector cycle.",
            ["connector"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.skipped = Counter(
            "clm_hub_cycles_skipped", "Scheduled cycles not run, by reason "
            "(lease_held: another replica runs it; busy: the previous one still runs; "
            "swept_recently: a replica ran the reconciliation sweep within half a period).",
            ["connector", "reason"], registry=r,
        )  # fmt: skip
        self.triggers = Counter(
            "clm_hub_cycle_triggers", "Cycles run by this replica, by what started them "
            "(schedule, webhook, reconcile: a sweep over a longer window, stages: a push of "
            "time-based stage changes without a pull).",
            ["connector", "trigger"], registry=r,
        )  # fmt: skip
        self.records = Counter(
            "clm_hub_records", "Records pulled, by what ingesting them did.",
            ["connector", "stream", "outcome"], registry=r,
        )  # fmt: skip
        self.rejected = Counter(
            "clm_hub_rejected_records", "Records refused as invalid (see `clm-hub status`).",
            ["connector", "stream"], registry=r,
        )  # fmt: skip
        self.pushes = Counter(
            "clm_hub_push_records", "Tag/field changes written back, by outcome.",
            ["connector", "outcome"], registry=r,
        )  # fmt: skip
        self.push_batches = Counter(
            "clm_hub_push_batches", "Push batches sent.", ["connector"], registry=r
        )
        self.api_calls = Counter(
            "clm_hub_api_calls", "HTTP calls to the tool's API.", ["connector"], registry=r
        )
        self.retries = Counter(
            "clm_hub_api_retries", "API calls retried after a failure.", ["connector"], registry=r
        )
        self.throttled = Counter(
            "clm_hub_api_rate_limited", "Responses with HTTP 429 (rate limited).",
            ["connector"], registry=r,
        )  # fmt: skip
        self.webhooks = Counter(
            "clm_hub_webhooks", "Webhook deliveries, by outcome.",
            ["connector", "outcome"], registry=r,
        )  # fmt: skip
        self.alerts = Counter("clm_hub_alerts", "Alerts raised, by kind.", ["kind"], registry=r)
        self.scheduler_running = Gauge(
            "clm_hub_scheduler_running", "1 while the scheduler takes new work.", registry=r
        )
        for connector in connectors:
            for status in CYCLE_STATUSES:
                self.cycles.labels(connector, status)
            for trigger in TRIGGERS:
                self.triggers.labels(connector, trigger)
            for stream in STREAMS:
                for outcome in RECORD_OUTCOMES:
                    self.records.labels(connector, stream, outcome)
                self.rejected.labels(connector, stream)
            for outcome in PUSH_OUTCOMES:
                self.pushes.labels(connector, outcome)
            for counter in (self.push_batches, self.api_calls, self.retries, self.throttled):
                counter.labels(connector)
        r.register(StoreGauges(engine, connectors, now=now))

    def observe_connector(self, result: ConnectorResult, seconds: float) -> None:
        """Count one finished connector cycle."""
        connector = result.connector
        self.cycles.labels(connector, result.status.value).inc()
        self.cycle_seconds.labels(connector).observe(seconds)
        api_calls = retries = throttled = 0
        for stream in result.streams:
            counts = stream.counts
            for outcome in RECORD_OUTCOMES:
                self.records.labels(connector, stream.stream, outcome).inc(getattr(counts, outcome))
            self.rejected.labels(connector, stream.stream).inc(counts.rejected)
            api_calls += stream.api_calls
            retries += stream.retries
            throttled += stream.throttled
        push = result.push
        if push is not None:
            c = push.counts
            for outcome, value in zip(
                PUSH_OUTCOMES, (c.planned, c.sent, c.confirmed, c.failed, c.gave_up), strict=True
            ):
                self.pushes.labels(connector, outcome).inc(value)
            self.push_batches.labels(connector).inc(c.batches)
            api_calls += push.api_calls
            throttled += push.throttled
        self.api_calls.labels(connector).inc(api_calls)
        self.retries.labels(connector).inc(retries)
        self.throttled.labels(connector).inc(throttled)

    def render(self) -> bytes:
        """The exposition text. Blocking (it reads the store): run it in a worker thread."""
        return generate_latest(self.registry)


class StoreGauges(Collector):
    """Gauges computed from the store on each scrape."""

    def __init__(
        self, engine: Engine, connectors: Sequence[str], *, now: Callable[[], datetime]
    ) -> None:
        self.engine = engine
        self.connectors = list(connectors)
        self.now = now

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("clm_hub_database_up", "1 when the store answered this scrape.")
        stages = GaugeMetricFamily(
            "clm_hub_customers", "Customers per lifecycle stage.", labels=["stage"]
        )
        lag = GaugeMetricFamily(
            "clm_hub_connector_lag_seconds",
            "Seconds since the connector's last successful pull finished (any replica).",
            labels=["connector"],
        )
        cursor_lag = GaugeMetricFamily(
            "clm_hub_cursor_lag_seconds",
            "How far behind now each stream's stored cursor is.",
            labels=["connector", "stream"],
        )
        now = self.now()
        try:
            with self.engine.connect() as conn:
                per_stage = conn.execute(
                    select(state_t.c.stage, func.count()).group_by(state_t.c.stage)
                ).all()
                done = (RunStatus.OK.value, RunStatus.PARTIAL.value)
                last: dict[str, datetime] = dict(
                    conn.execute(
                        select(run_t.c.connector, func.max(run_t.c.finished_at))
                        .where(run_t.c.status.in_(done), run_t.c.stream != "push")
                        .group_by(run_t.c.connector)
                    ).all()
                )
                cursors = conn.execute(
                    select(cursor_t.c.connector, cursor_t.c.stream, cursor_t.c.updated_since)
                ).all()
        except Exception:  # an unreachable store must not break the scrape
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for stage, count in per_stage:
            stages.add_metric([stage], count)
        yield stages
        for connector in self.connectors:
            finished = last.get(connector)
            if finished is not None:
                lag.add_metric([connector], (now - finished).total_seconds())
        yield lag
        for connector, stream, updated_since in cursors:
            if updated_since is not None:
                cursor_lag.add_metric([connector, stream], (now - updated_since).total_seconds())
        yield cursor_lag
