"""The daemon: scheduled connector cycles, the HTTP endpoints and a clean shutdown.

``Daemon`` owns every long-lived part of the process: the scheduler, the leases, the
metrics registry, the webhook receiver, the alerter and the ASGI app. One cycle of a
connector runs at a time per process (a lock) and across replicas (the
``connector:<id>`` lease); a replica that cannot get the lease skips that run.

A connector's cycle has one of four triggers: its schedule; a webhook (a debounced
follow-up that pushes what the delivery changed); its reconciliation sweep (a re-read over
``reconcile.lookback``, or in full, that catches what webhooks and incremental pulls
missed; one replica sweeps per period); and the stage-only run (``stages_schedule``),
which brings time-based stage changes up to date and pushes them to every tool without
pulling. A sweep or stage-only run that finds the connector busy here runs right after.

Shutdown (SIGTERM or SIGINT): the scheduler stops starting cycles, webhooks are answered
503 (the tool retries), and outbound API requests that have not been sent yet are held
back while those already sent finish, within ``shutdown_grace``. Then the cycles in flight
are cancelled. Every page and every push batch's outcomes commit atomically once their
request completed, so nothing is lost and the next start re-sends nothing that landed.
The process exits 0. A second signal cancels at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
import structlog
import uvicorn
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import OperationalError

from clm_hub.alerts import (
    Alerter,
    AlertKind,
    AlertSink,
    LogSink,
    close_sinks,
    collect_alert_sinks,
    crash_alert,
    stale_alert,
)
from clm_hub.connectors.base import WebhookRequest
from clm_hub.customer_ids import CustomerIds
from clm_hub.errors import ConfigError, StoreError
from clm_hub.leases import LeaseHolder, holder_id, holder_is_dead, read_lease, take_over
from clm_hub.metrics import HubMetrics
from clm_hub.plugins import PluginRegistry
from clm_hub.records import now_utc
from clm_hub.redaction import Redactor
from clm_hub.runs import RunKind, RunStatus
from clm_hub.runtime import configure_connectors
from clm_hub.scheduler import (
    DaemonSettings,
    add_periodic_job,
    add_scheduled_job,
    build_scheduler,
    schedule_period,
)
from clm_hub.server import Check, Readiness, create_app
from clm_hub.settings import HubSettings
from clm_hub.store.tables import SyncRun
from clm_hub.sync import ConnectorResult, CycleResult, SyncEngine
from clm_hub.webhooks import (
    Debouncer,
    WebhookOutcome,
    WebhookReceiver,
    WebhookReply,
    prune_deliveries,
)

__all__ = ["Daemon", "Recompute", "RequestGate", "Trigger"]

log = structlog.get_logger("clm_hub.daemon")
run_t = SyncRun.__table__  # type: ignore[attr-defined]

Recompute = Callable[[CustomerIds], None]
"""Brings stages up to date for the given customers (blocking; run in a worker thread)."""

DAEMON_LEASE = "daemon"
RECOMPUTE_ATTEMPTS = 4


class Trigger(StrEnum):
    """Why a connector's cycle runs (the ``trigger`` of its log events and metrics)."""

    SCHEDULE = "schedule"
    WEBHOOK = "webhook"
    RECONCILE = "reconcile"
    STAGES = "stages"


class RequestGate(httpx.AsyncBaseTransport):
    """The transport of every cycle's API client. Until ``close()`` requests pass through;
    after it, requests not yet sent wait (their cycle is cancelled before they go out)
    while those already sent complete, so shutdown never cuts a push between the tool
    applying a batch and the hub recording it. Environment proxies are honoured."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = httpx.AsyncClient(transport=inner, timeout=None, follow_redirects=False)
        self._open = True
        self._never = asyncio.Event()
        self.in_flight = 0

    def close(self) -> None:
        """Hold back every request from now on."""
        self._open = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self._open:
            await self._never.wait()
        self.in_flight += 1
        try:
            response = await self._client.send(request, stream=True)
        except BaseException:
            self.in_flight -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)  # an async client's
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Counted(response.stream, self._done),
            extensions=response.extensions,
        )

    def _done(self) -> None:
        self.in_flight -= 1

    async def aclose(self) -> None:
        """Clients come and go with each cycle; the gate outlives them (see ``shutdown``)."""

    async def shutdown(self) -> None:
        await self._client.aclose()


class _Counted(httpx.AsyncByteStream):
    """A response body that tells the gate when the response is done with."""

    def __init__(self, stream: httpx.AsyncByteStream, done: Callable[[], None]) -> None:
        self._stream = stream
        self._done: Callable[[], None] | None = done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._done is not None:
                self._done()
                self._done = None


class _Pending:
    """Customers changed by webhooks, waiting for the next stage recompute (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = CustomerIds()

    def add(self, ids: Iterable[int]) -> None:
        with self._lock:
            self._ids |= ids

    def drain(self) -> CustomerIds:
        with self._lock:
            out, self._ids = self._ids, CustomerIds()
        return out


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Daemon:
    """One daemon process: ``await Daemon(...).run()`` returns the exit code."""

    def __init__(
        self,
        settings: HubSettings,
        registry: PluginRegistry,
        engine: Engine,
        *,
        config: DaemonSettings,
        redactor: Redactor | None = None,
        recompute: Recompute | None = None,
        alert_sinks: Sequence[AlertSink] = (),
        transport: httpx.AsyncBaseTransport | None = None,
        holder: str | None = None,
        now: Callable[[], datetime] = now_utc,
    ) -> None:
        """``recompute`` is the stage engine's entry point; ``transport`` replaces real HTTP
        (tests); ``alert_sinks`` are added to the log and the sinks plugins register
        (the configured outbound webhook among them)."""
        self.settings = settings
        self.config = config
        self.engine = engine
        self.now = now
        self.redactor = redactor or Redactor()
        self.holder = holder or holder_id()
        self.connectors = [
            c.connector_id for c in configure_connectors(settings, registry) if c.enabled
        ]
        self.leases = LeaseHolder(engine, holder=self.holder, ttl=config.lease_ttl, now=now)
        self.metrics = HubMetrics(engine, self.connectors, now=now)
        self.gate = RequestGate(transport)
        self._recompute = recompute
        self._pending = _Pending()
        # Pulls go to worker processes unless a test's fake API is given; pushes go
        # through the gate, which is what holds requests back at shutdown.
        self.sync = SyncEngine(
            settings, registry, engine, transport=self.gate, now=now,
            recompute=self._recompute_stages if recompute is not None else None,
            pull_workers=settings.sync.pull_workers and transport is None,
        )  # fmt: skip
        self._sinks: list[AlertSink] = [
            *collect_alert_sinks(registry.manager, settings, self.redactor),
            *alert_sinks,
        ]
        sinks: list[AlertSink] = [LogSink(), *self._sinks]
        self.alerter = Alerter(
            config.alerts, sinks, now=now,
            on_alert=lambda alert: self.metrics.alerts.labels(alert.kind.value).inc(),
        )  # fmt: skip
        self.webhooks = WebhookReceiver(
            settings, registry, engine, self.sync.writer, redactor=self.redactor,
            on_ingested=self._ingested, transport=transport, now=now,
        )  # fmt: skip
        self.debouncer = Debouncer(
            lambda connector_id: self.run_connector(connector_id, Trigger.WEBHOOK),
            delay=config.webhook_debounce, max_wait=config.webhook_max_wait,
        )  # fmt: skip
        self.app = create_app(self, max_body=config.webhook_max_bytes, now=now)
        self.scheduler = build_scheduler()
        self._locks = {c: asyncio.Lock() for c in self.connectors}
        self._owed: dict[str, set[Trigger]] = {}
        """Per connector, runs that found it busy and follow its current cycle."""
        self._followups: set[asyncio.Task[None]] = set()
        self._running: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._stopping = False
        self._forced = False
        self._exit_code = 0
        self._started_at = now()
        self._stale: set[str] = set()

    # -- running -----------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until asked to stop; returns the process exit code."""
        loop = asyncio.get_running_loop()
        keeper: asyncio.Task[None] | None = None
        sock: socket.socket | None = None
        try:
            if self.engine.dialect.name == "sqlite":
                await self._claim_store()
                keeper = asyncio.create_task(
                    self.leases.keep(
                        DAEMON_LEASE, on_lost=lambda: self.request_stop("lease lost", 1)
                    )
                )
            sock = _listen(self.settings.http_host, self.settings.http_port)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop, sig.name)
            await self._serve(sock)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if sock is not None:
                sock.close()
            if keeper is not None:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
                await self.leases.release(DAEMON_LEASE)
        return self._exit_code

    async def _serve(self, sock: socket.socket) -> None:
        server = _Server(
            uvicorn.Config(
                self.app, log_config=None, access_log=False, lifespan="off",
                timeout_graceful_shutdown=5,
            )
        )  # fmt: skip
        server_task = asyncio.create_task(server.serve(sockets=[sock]), name="http")
        self._schedule()
        self.scheduler.start()
        self.metrics.scheduler_running.set(1)
        host, port = sock.getsockname()[:2]
        log.info(
            "daemon.started", holder=self.holder, connectors=self.connectors,
            http=f"{host}:{port}", database=self.engine.dialect.name,
        )  # fmt: skip
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({stop, server_task}, return_when=asyncio.FIRST_COMPLETED)
        if not self._stop.is_set():
            log.error("daemon.http_stopped", error=_task_error(server_task))
            self.request_stop("http server stopped", 1)
        stop.cancel()
        await self._shutdown(server, server_task)

    def request_stop(self, reason: str, exit_code: int = 0) -> None:
        """Begin a graceful shutdown (a second request cancels the cycles at once)."""
        if self._stop.is_set():
            if not self._forced:
                self._forced = True
                log.warning("daemon.forced_stop", reason=reason)
                for task in list(self._running):
                    task.cancel()
            return
        self._stop_reason = reason
        self._exit_code = max(self._exit_code, exit_code)
        self._stop.set()

    def _schedule(self) -> None:
        now = self.now()
        self.scheduler.add_listener(self._job_skipped, EVENT_JOB_MAX_INSTANCES)
        for connector_id in self.connectors:
            config = self.settings.connectors[connector_id]
            add_scheduled_job(
                self.scheduler, f"connector:{connector_id}", config.schedule, self.run_connector,
                args=[connector_id], now=now, run_at_start=self.config.run_at_start,
            )  # fmt: skip
            if config.reconcile.enabled:
                add_scheduled_job(
                    self.scheduler, f"reconcile:{connector_id}", config.reconcile.schedule,
                    self.reconcile, args=[connector_id], now=now, run_at_start=False,
                )  # fmt: skip
        if self._recompute is not None:
            add_scheduled_job(
                self.scheduler, "stages", self.config.stages_schedule, self.run_stages, now=now,
                run_at_start=False,
            )  # fmt: skip
        add_periodic_job(
            self.scheduler, "housekeeping", self.config.housekeeping_every, self.housekeeping,
            now=now,
        )  # fmt: skip

    def _job_skipped(self, event: JobSubmissionEvent) -> None:
        """A run fell due while the previous one of the job still ran."""
        kind, _, connector_id = event.job_id.partition(":")
        trigger = {"connector": Trigger.SCHEDULE, "reconcile": Trigger.RECONCILE}.get(kind)
        if trigger is not None:
            self.metrics.skipped.labels(connector_id, "busy").inc()
            log.info("cycle.skipped", connector=connector_id, trigger=trigger, reason="busy")

    async def _claim_store(self) -> None:
        """SQLite is single-replica: take the ``daemon`` lease or refuse to start."""
        if await self.leases.try_acquire(DAEMON_LEASE):
            return
        lease = await asyncio.to_thread(read_lease, self.engine, DAEMON_LEASE)
        if lease is not None and holder_is_dead(lease.holder):
            taken = await asyncio.to_thread(
                take_over, self.engine, DAEMON_LEASE, dead=lease.holder, holder=self.holder,
                ttl=self.config.lease_ttl, now=self.now(),
            )  # fmt: skip
            if taken:
                log.info("daemon.lease_taken_over", previous=lease.holder)
                return
        other = lease.holder if lease is not None else "another process"
        raise StoreError(
            f"another clm-hub daemon ({other}) is running on this SQLite store. SQLite mode "
            "is single-replica: stop the other daemon first, or store the data in PostgreSQL "
            '(database_url = "postgresql+psycopg://...") to run several replicas.'
        )

    async def _shutdown(self, server: uvicorn.Server, server_task: asyncio.Task[None]) -> None:
        started = time.monotonic()
        self._stopping = True
        self.metrics.scheduler_running.set(0)
        if self.scheduler.running:
            self.scheduler.pause()
        dropped = self.debouncer.cancel_all()
        self.gate.close()
        log.info(
            "daemon.stopping", reason=self._stop_reason, cycles=len(self._running),
            webhook_followups_dropped=dropped,
        )  # fmt: skip
        await self._quiesce(self.config.shutdown_grace.total_seconds())
        abandoned = [t for t in self._running if not t.done()]
        for task in abandoned:
            task.cancel()
        if abandoned:
            await asyncio.wait(abandoned, timeout=10)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server_task, timeout=10)
        for followup in self._followups:
            followup.cancel()
        await asyncio.gather(*self._followups, return_exceptions=True)
        await self.webhooks.aclose()
        await asyncio.to_thread(self.sync.close)
        await self.gate.shutdown()
        await close_sinks(self._sinks)
        log.info(
            "daemon.stopped", abandoned_cycles=len(abandoned),
            duration_ms=round((time.monotonic() - started) * 1000),
        )  # fmt: skip

    async def _quiesce(self, grace: float) -> None:
        """Wait until no cycle runs or no request is in flight any more (the rest wait at
        the gate and can be cancelled safely), at most ``grace`` seconds."""
        deadline = time.monotonic() + grace
        while any(not t.done() for t in self._running) and time.monotonic() < deadline:
            if self.gate.in_flight == 0:
                await asyncio.sleep(0.05)  # let a just-finished batch reach its record step
                if self.gate.in_flight == 0:
                    return
            await asyncio.sleep(0.05)

    # -- cycles ------------------------------------------------------------------------

    async def run_connector(self, connector_id: str, trigger: Trigger = Trigger.SCHEDULE) -> None:
        """One cycle of one connector, unless it already runs here or on another replica."""
        if self._stopping:
            return
        lock = self._locks[connector_id]
        if lock.locked():
            if trigger is not Trigger.SCHEDULE:  # the schedule fires again anyway
                self._owed.setdefault(connector_id, set()).add(trigger)
            self.metrics.skipped.labels(connector_id, "busy").inc()
            log.info("cycle.skipped", connector=connector_id, trigger=trigger, reason="busy")
            return
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            async with lock:
                await self._cycle(connector_id, trigger, task)
        finally:
            self._running.discard(task)
        owed = self._owed.pop(connector_id, set())
        if self._stopping:
            return
        for later in sorted(owed):
            if later is Trigger.WEBHOOK:
                self.debouncer.poke(connector_id)
            else:
                followup = asyncio.create_task(self.run_connector(connector_id, later))
                self._followups.add(followup)
                followup.add_done_callback(self._followups.discard)

    async def reconcile(self, connector_id: str) -> None:
        """The reconciliation sweep of one connector, unless a replica swept it within the
        last half period (every replica schedules the sweep; one per period is enough)."""
        if self._stopping:
            return
        schedule = self.settings.connectors[connector_id].reconcile.schedule
        recent = schedule_period(schedule, now=self.now()) / 2
        try:
            last = await asyncio.to_thread(_last_sweep, self.engine, connector_id)
        except Exception as exc:  # the store is down: the cycle will say so, with an alert
            log.warning("reconcile.check_failed", connector=connector_id, error=type(exc).__name__)
            last = None
        if last is not None and self.now() - last < recent:
            self.metrics.skipped.labels(connector_id, "swept_recently").inc()
            log.info(
                "cycle.skipped", connector=connector_id, trigger=Trigger.RECONCILE,
                reason="swept_recently", last_sweep=last.isoformat(),
            )  # fmt: skip
            return
        await self.run_connector(connector_id, Trigger.RECONCILE)

    async def run_stages(self) -> None:
        """The stage-only run: customers whose stage changes with time alone (at-risk,
        lapsed) are brought up to date and every tool gets the change, without a pull."""
        if self._stopping:
            return
        await asyncio.gather(*(self.run_connector(c, Trigger.STAGES) for c in self.connectors))

    def _start(self, connector_id: str, trigger: Trigger) -> Awaitable[CycleResult]:
        """The sync engine call a trigger makes."""
        if trigger is Trigger.RECONCILE:
            sweep = self.settings.connectors[connector_id].reconcile
            return self.sync.run_cycle(
                [connector_id], full=sweep.full, lookback=None if sweep.full else sweep.lookback,
                kind=RunKind.RECONCILE,
            )  # fmt: skip
        if trigger is Trigger.STAGES:
            return self.sync.run_cycle([connector_id], pull=False, kind=RunKind.STAGES)
        return self.sync.run_cycle([connector_id])

    async def _cycle(self, connector_id: str, trigger: Trigger, task: asyncio.Task[Any]) -> None:
        started = time.monotonic()
        try:
            async with self.leases.hold(f"connector:{connector_id}") as held:
                if not held:
                    if trigger is Trigger.WEBHOOK:  # another replica runs it: try again shortly
                        self._owed.setdefault(connector_id, set()).add(trigger)
                    # A sweep or stage-only run is not owed: the other replica's cycle pulls
                    # and pushes, and the next sweep comes within a period.
                    self.metrics.skipped.labels(connector_id, "lease_held").inc()
                    log.info(
                        "cycle.skipped", connector=connector_id, trigger=trigger,
                        reason="lease_held",
                    )  # fmt: skip
                    return
                log.info(
                    "cycle.started", connector=connector_id, trigger=trigger, holder=self.holder
                )
                try:
                    result = await self._start(connector_id, trigger)
                except asyncio.CancelledError:
                    self._abandoned(connector_id, trigger, task, started)
                    return
                seconds = time.monotonic() - started
                # Logged while the lease is held: replicas' cycle logs never overlap.
                for connector in result.connectors:
                    self.metrics.observe_connector(connector, seconds)
                    self.metrics.triggers.labels(connector.connector, trigger.value).inc()
                    _log_cycle(connector, result.run_id, trigger, seconds)
        except asyncio.CancelledError:
            self._abandoned(connector_id, trigger, task, started)
            return
        except Exception as exc:  # the store or the stage engine failed, not a connector
            self.metrics.cycles.labels(connector_id, "error").inc()
            error = self.redactor.text(f"{type(exc).__name__}: {exc}")
            log.error("cycle.crashed", connector=connector_id, error=error, exc_info=True)
            await self.alerter.raise_alert(crash_alert(connector_id, error, now=self.now()))
            return
        for connector in result.connectors:
            # A stage-only run reads nothing, so it cannot tell that a pull recovered.
            await self.alerter.cycle_finished(connector, resolve=trigger is not Trigger.STAGES)

    def _abandoned(
        self, connector_id: str, trigger: Trigger, task: asyncio.Task[Any], started: float
    ) -> None:
        # Only the daemon cancels cycles (shutdown, or a lost lease): the cancellation ends
        # here, so the scheduler sees a job that returned.
        task.uncancel()
        self.metrics.cycles.labels(connector_id, "abandoned").inc()
        log.warning(
            "cycle.abandoned", connector=connector_id, trigger=trigger,
            reason="shutdown" if self._stopping else "lease lost", duration_ms=_ms(started),
        )  # fmt: skip

    def _recompute_stages(self, dirty: CustomerIds) -> None:
        """The ``recompute`` the sync engine calls: the cycle's changed customers plus
        those changed by webhooks since.

        Connectors' cycles overlap in the daemon (unlike in `clm-hub sync`), so it holds the
        process's writer lock: no page or push outcome is written meanwhile. On SQLite a
        recompute can still meet a commit from elsewhere (run history, leases) between its
        first read and its first write, which SQLite refuses at once as "database is
        locked"; the recompute is one transaction, so it is simply tried again.
        """
        assert self._recompute is not None
        ids = dirty | self._pending.drain()
        with self.sync.writer.lock:
            for attempt in range(1, RECOMPUTE_ATTEMPTS + 1):
                try:
                    self._recompute(ids)
                    return
                except BaseException as exc:
                    if not _sqlite_locked(exc) or attempt == RECOMPUTE_ATTEMPTS:
                        self._pending.add(ids)
                        raise
                    log.warning("stages.retry", attempt=attempt, reason="database is locked")
                    time.sleep(0.1 * attempt)

    # -- webhooks ----------------------------------------------------------------------

    async def webhook(self, connector_id: str, request: WebhookRequest) -> WebhookReply:
        label = connector_id if connector_id in self._locks else "unknown"
        if self._stopping:
            reply = WebhookReply(WebhookOutcome.UNAVAILABLE, "shutting down; retry later")
        else:
            try:
                reply = await self.webhooks.receive(connector_id, request)
            except Exception as exc:  # the store failed: answer 500 so that the tool retries
                error = self.redactor.text(f"{type(exc).__name__}: {exc}")
                log.error("webhook.failed", connector=connector_id, error=error, exc_info=True)
                reply = WebhookReply(WebhookOutcome.ERROR, "internal error; retry later")
        self.metrics.webhooks.labels(label, reply.outcome.value).inc()
        return reply

    def _ingested(self, connector_id: str, dirty: set[int]) -> None:
        self._pending.add(dirty)
        if not self._stopping:
            self.debouncer.poke(connector_id)

    # -- health ------------------------------------------------------------------------

    async def readiness(self) -> Readiness:
        checks: list[Check] = []
        last: dict[str, tuple[datetime | None, datetime | None]] | None = None
        try:
            last = await asyncio.wait_for(asyncio.to_thread(_last_cycles, self.engine), 5)
            checks.append(Check("database", True, "reachable"))
        except Exception as exc:  # unreachable or timed out: that is the answer
            checks.append(Check("database", False, f"unreachable ({type(exc).__name__})"))
        running = self.scheduler.running and not self._stopping
        checks.append(Check("scheduler", running, "running" if running else "stopped"))
        if last is not None:
            now = self.now()
            for connector_id in self.connectors:
                finished = last.get(connector_id, (None, None))[0]
                age = now - max(finished or self._started_at, self._started_at)
                limit = self.stale_after(connector_id)
                checks.append(Check(
                    f"connector:{connector_id}", age <= limit,
                    f"last cycle {_age(finished, now)}; limit {limit.total_seconds():.0f}s",
                ))  # fmt: skip
        return Readiness(tuple(checks))

    def stale_after(self, connector_id: str) -> timedelta:
        """How old a connector's last cycle may be before it counts as stale."""
        if self.config.stale_after is not None:
            return self.config.stale_after
        schedule = self.settings.connectors[connector_id].schedule
        return 3 * schedule_period(schedule, now=self.now()) + schedule.jitter

    async def metrics_text(self) -> bytes:
        return await asyncio.to_thread(self.metrics.render)

    async def housekeeping(self) -> None:
        """Stale-connector alerts and pruning of remembered webhook event ids."""
        now = self.now()
        try:
            last = await asyncio.to_thread(_last_cycles, self.engine)
            pruned = await asyncio.to_thread(
                prune_deliveries, self.engine, older_than=now - self.config.webhook_retention
            )
        except Exception as exc:  # the store is down: readiness says so; try next time
            log.warning("housekeeping.failed", error=type(exc).__name__)
            return
        if pruned:
            log.info("webhook.pruned", deliveries=pruned)
        for connector_id in self.connectors:
            succeeded = last.get(connector_id, (None, None))[1]
            age = now - max(succeeded or self._started_at, self._started_at)
            limit = self.stale_after(connector_id)
            if age <= limit:
                if connector_id in self._stale:
                    self._stale.discard(connector_id)
                    self.alerter.resolved(AlertKind.CONNECTOR_STALE, connector_id)
                    log.info("connector.fresh", connector=connector_id)
                continue
            self._stale.add(connector_id)
            real_age = None if succeeded is None else now - succeeded
            await self.alerter.raise_alert(stale_alert(connector_id, real_age, limit, now=now))


def _last_cycles(engine: Engine) -> dict[str, tuple[datetime | None, datetime | None]]:
    """Per connector: when its last pull stream finished at all, and successfully."""
    c = run_t.c
    done = (RunStatus.OK.value, RunStatus.PARTIAL.value)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        any_rows = conn.execute(
            select(c.connector, func.max(c.finished_at))
            .where(c.stream != "push", c.finished_at.is_not(None))
            .group_by(c.connector)
        ).all()
        ok_rows = conn.execute(
            select(c.connector, func.max(c.finished_at))
            .where(c.stream != "push", c.status.in_(done))
            .group_by(c.connector)
        ).all()
    ok: dict[str, datetime | None] = dict(ok_rows)
    return {connector: (finished, ok.get(connector)) for connector, finished in any_rows}


def _last_sweep(engine: Engine, connector_id: str) -> datetime | None:
    """When the connector's last finished reconciliation sweep ended (any replica's)."""
    c = run_t.c
    done = (RunStatus.OK.value, RunStatus.PARTIAL.value)
    with engine.connect() as conn:
        last: datetime | None = conn.execute(
            select(func.max(c.finished_at)).where(
                c.connector == connector_id,
                c.kind == RunKind.RECONCILE.value,
                c.stream != "push",
                c.status.in_(done),
            )
        ).scalar_one_or_none()
    return last


def _log_cycle(result: ConnectorResult, run_id: str, trigger: str, seconds: float) -> None:
    totals = {"read": 0, "inserted": 0, "updated": 0, "unchanged": 0, "rejected": 0}
    api_calls = retries = throttled = 0
    for stream in result.streams:
        for key in totals:
            totals[key] += getattr(stream.counts, key)
        api_calls += stream.api_calls
        retries += stream.retries
        throttled += stream.throttled
    push = result.push
    if push is not None:
        c = push.counts
        log.info(
            "push.finished", connector=result.connector, run_id=run_id,
            status=push.status.value, planned=c.planned, sent=c.sent, confirmed=c.confirmed,
            failed=c.failed, gave_up=c.gave_up, batches=c.batches, held=push.held,
            api_calls=push.api_calls, throttled=push.throttled, error=push.error,
        )  # fmt: skip
    log.info(
        "cycle.finished", connector=result.connector, run_id=run_id, trigger=trigger,
        status=result.status.value, duration_ms=round(seconds * 1000), **totals,
        api_calls=api_calls + (push.api_calls if push else 0), retries=retries,
        throttled=throttled + (push.throttled if push else 0),
        pushed=push.counts.confirmed if push else 0, error=result.reason,
    )  # fmt: skip


def _listen(host: str, port: int) -> socket.socket:
    """Bind the HTTP socket now, so a taken port is a clear start-up error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"http_host {host!r} does not resolve: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}): set http_host/http_port to a "
            "free address"
        ) from None
    sock.setblocking(False)
    return sock


def _sqlite_locked(exc: BaseException) -> bool:
    """SQLite's "database is locked", raised through SQLAlchemy or by a raw cursor."""
    if isinstance(exc, OperationalError):
        exc = exc.orig or exc
    return isinstance(exc, sqlite3.OperationalError) and "database is locked" in str(exc)


def _age(moment: datetime | None, now: datetime) -> str:
    return "never" if moment is None else f"{(now - moment).total_seconds():.0f}s ago"


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _task_error(task: asyncio.Task[Any]) -> str:
    if task.cancelled():
        return "cancelled"
    exc = task.exception()
    return "exited" if exc is None else f"{type(exc).__name__}: {exc}"
