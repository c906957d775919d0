"""One pull cycle: every selected connector, concurrently and in isolation.

Each connector pulls its streams in order (contacts, orders, survey responses) from the
stored cursors. Pages flow through a small bounded queue into the page writer, so a tool's
next page is being fetched while the previous one is written, and memory stays flat
however large the tool is. A connector that is down, slow or returns garbage fails on
its own: its error is recorded and reported, and the others finish normally.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx
import structlog
from sqlalchemy import Engine

from clm_hub.connectors.base import Capability, Connector
from clm_hub.cursors import ResumePoint, load_resume_point
from clm_hub.customer_ids import CustomerIds
from clm_hub.errors import ConfigError
from clm_hub.ingest import STREAMS, PageCounts, PageWriter, Stream
from clm_hub.linking import IdentityContext
from clm_hub.plugins import PluginRegistry
from clm_hub.prepare import PreparedPage, PrepareRules
from clm_hub.pull_worker import PullWorkerError, PullWorkers, WorkerSpec, worker_spec
from clm_hub.push.executor import PushCounts, PushExecutor
from clm_hub.push.planner import PushPlan, PushTarget, plan_push
from clm_hub.records import Page, now_utc
from clm_hub.redaction import Redactor
from clm_hub.runs import (
    RunKind,
    RunStatus,
    finish_stream_run,
    mark_interrupted,
    start_stream_run,
)
from clm_hub.runtime import (
    ConfiguredConnector,
    build_redactor,
    configure_connectors,
    open_connector,
)
from clm_hub.settings import HubSettings

__all__ = [
    "ConnectorResult",
    "CycleResult",
    "ProgressSink",
    "PushResult",
    "StreamResult",
    "SyncEngine",
]

log = structlog.get_logger("clm_hub.sync")

STREAM_CAPABILITY: dict[Stream, Capability] = {
    "contacts": Capability.CONTACTS,
    "orders": Capability.ORDERS,
    "survey_responses": Capability.SURVEY_RESPONSES,
}


@dataclass
class StreamResult:
    """How one stream of one connector went."""

    connector: str
    stream: Stream
    status: RunStatus
    counts: PageCounts
    api_calls: int = 0
    retries: int = 0
    throttled: int = 0
    error: str | None = None
    note: str = ""
    dirty_customers: CustomerIds = field(default_factory=CustomerIds)
    """Customers whose data the stream changed."""


@dataclass
class PushResult:
    """How one connector's write-back went (or what it would do, on a dry run)."""

    connector: str
    plan: PushPlan
    counts: PushCounts = field(default_factory=PushCounts)
    max_batch: int = 1
    held: bool = False
    dry_run: bool = False
    error: str | None = None
    api_calls: int = 0
    throttled: int = 0

    @property
    def status(self) -> RunStatus:
        if self.error:
            return RunStatus.FAILED
        if self.held or self.counts.failed:
            return RunStatus.PARTIAL
        return RunStatus.OK


@dataclass
class ConnectorResult:
    """How one connector went: failed if any stream (or its set-up, or its push) failed."""

    connector: str
    streams: list[StreamResult] = field(default_factory=list)
    push: PushResult | None = None
    error: str | None = None

    @property
    def status(self) -> RunStatus:
        statuses = [s.status for s in self.streams]
        if self.push is not None:
            statuses.append(self.push.status)
        if self.error or RunStatus.FAILED in statuses:
            return RunStatus.FAILED
        if RunStatus.PARTIAL in statuses:
            return RunStatus.PARTIAL
        return RunStatus.OK

    @property
    def pull_failed(self) -> bool:
        return self.error is not None or any(s.status is RunStatus.FAILED for s in self.streams)

    @property
    def reason(self) -> str | None:
        """One line saying why the connector failed, if it did."""
        if self.error:
            return self.error
        failed = [f"{s.stream}: {s.error}" for s in self.streams if s.status is RunStatus.FAILED]
        if self.push is not None and self.push.error:
            failed.append(f"push: {self.push.error}")
        return "; ".join(failed) or None


@dataclass
class CycleResult:
    """The whole cycle: per-connector results and the customers whose data changed."""

    run_id: str
    connectors: list[ConnectorResult]
    dirty_customers: CustomerIds = field(default_factory=CustomerIds)

    @property
    def failed(self) -> list[ConnectorResult]:
        return [c for c in self.connectors if c.status is RunStatus.FAILED]


class ProgressSink(Protocol):
    """Where a cycle reports progress (a progress bar, or log lines)."""

    def stream_started(self, connector: str, stream: str, note: str) -> None: ...

    def page_written(self, connector: str, stream: str, counts: PageCounts) -> None: ...

    def stream_finished(self, result: StreamResult) -> None: ...


class LogProgress:
    """Progress as structured log lines (the default when not on a terminal)."""

    def stream_started(self, connector: str, stream: str, note: str) -> None:
        log.info("sync.stream.started", connector=connector, stream=stream, resume=note)

    def page_written(self, connector: str, stream: str, counts: PageCounts) -> None:
        log.debug("sync.page", connector=connector, stream=stream, records=counts.read)

    def stream_finished(self, result: StreamResult) -> None:
        c = result.counts
        log.info(
            "sync.stream.finished", connector=result.connector, stream=result.stream,
            status=result.status.value, read=c.read, inserted=c.inserted, updated=c.updated,
            unchanged=c.unchanged, rejected=c.rejected, api_calls=result.api_calls,
            error=result.error,
        )  # fmt: skip


class _End:
    pass


@dataclass
class _Failure:
    error: BaseException


class SyncEngine:
    """Runs pull cycles for the configured connectors against one store."""

    def __init__(
        self,
        settings: HubSettings,
        registry: PluginRegistry,
        engine: Engine,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        now: Callable[[], datetime] = now_utc,
        progress: ProgressSink | None = None,
        recompute: Callable[[CustomerIds], None] | None = None,
        pull_workers: bool | None = None,
    ) -> None:
        """``recompute`` brings stages up to date for the changed customers between the
        pulls and the pushes of a cycle (the stage engine plugs in here).
        ``pull_workers``: pull in worker processes (``pull_worker.py``); by default as
        ``sync.pull_workers`` says, unless a ``transport`` is given (a test's fake API
        exists in this process only). Call ``close()`` when done with the engine."""
        self.settings = settings
        self.registry = registry
        self.engine = engine
        self.transport = transport
        self.now = now
        self.progress = progress or LogProgress()
        self.writer = PageWriter(engine, now=now)
        self.recompute = recompute
        if pull_workers is None:
            pull_workers = settings.sync.pull_workers and transport is None
        self.workers = PullWorkers() if pull_workers else None

    def close(self) -> None:
        """Stop the pull workers (the daemon keeps them from cycle to cycle)."""
        if self.workers is not None:
            self.workers.close()

    def __enter__(self) -> SyncEngine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _worker_spec(self, item: ConfiguredConnector) -> WorkerSpec | None:
        if self.workers is None or item.connector is None:
            return None
        settings = self.settings
        rules = PrepareRules(
            settings.identity, settings.default_region, settings.tag_prefix,
            self.engine.url.drivername,
        )  # fmt: skip
        return worker_spec(
            item.connector_id, item.plugin, item.connector, item.settings, rules,
            log_level=settings.log_level, log_format=settings.log_format,
        )  # fmt: skip

    def selected(self, connector_ids: Sequence[str] | None) -> list[ConfiguredConnector]:
        """The connectors a cycle runs: the named ones, or every enabled one."""
        configured = configure_connectors(self.settings, self.registry)
        if not connector_ids:
            return [c for c in configured if c.enabled]
        by_id = {c.connector_id: c for c in configured}
        unknown = sorted(set(connector_ids) - set(by_id))
        if unknown:
            known = ", ".join(sorted(by_id)) or "none"
            raise ConfigError(f"unknown connector id(s) {', '.join(unknown)} (configured: {known})")
        return [by_id[i] for i in connector_ids]

    async def run_cycle(
        self,
        connector_ids: Sequence[str] | None = None,
        *,
        full: bool = False,
        dry_run: bool = False,
        push: bool = True,
        apply_large: bool = False,
        pull: bool = True,
        lookback: timedelta | None = None,
        kind: RunKind = RunKind.CYCLE,
    ) -> CycleResult:
        """Pull every selected connector, let stages catch up, then write back.

        Never raises for one connector's failure. Pushes wait for every pull, since a
        customer's stage depends on what all tools said about them. The daemon's
        reconciliation sweeps pass ``lookback`` (resume that far before each stored cursor,
        without its page token, instead of ``cursor_overlap``); its stage-only runs pass
        ``pull=False``. ``kind`` is recorded in the run history.
        """
        selected = self.selected(connector_ids)
        redactor = build_redactor(configure_connectors(self.settings, self.registry))
        run_id = str(uuid.uuid4())
        structlog.contextvars.bind_contextvars(run_id=run_id)
        opened: dict[str, Connector[Any]] = {}
        try:
            results = await asyncio.gather(
                *(
                    self._pull_connector(
                        item,
                        run_id,
                        redactor,
                        full,
                        dry_run,
                        opened,
                        pull=pull,
                        lookback=lookback,
                        kind=kind,
                    )
                    for item in selected
                )
            )
            cycle = CycleResult(run_id, list(results))
            for connector in results:
                for stream in connector.streams:
                    cycle.dirty_customers |= stream.dirty_customers
            if self.recompute is not None and not dry_run:
                await asyncio.to_thread(self.recompute, cycle.dirty_customers)
            if push:
                await asyncio.gather(
                    *(
                        self._push_connector(
                            opened[r.connector],
                            r,
                            run_id,
                            redactor,
                            dry_run,
                            apply_large,
                            kind=kind,
                        )
                        for r in results
                        if r.connector in opened and not r.pull_failed
                    )
                )
        finally:
            structlog.contextvars.unbind_contextvars("run_id")
            for client in opened.values():
                await client.http.aclose()
        return cycle

    async def _pull_connector(
        self,
        item: ConfiguredConnector,
        run_id: str,
        redactor: Redactor,
        full: bool,
        dry_run: bool,
        opened: dict[str, Connector[Any]],
        *,
        pull: bool = True,
        lookback: timedelta | None = None,
        kind: RunKind = RunKind.CYCLE,
    ) -> ConnectorResult:
        result = ConnectorResult(item.connector_id)
        if not item.ok:
            result.error = item.error
            return result
        try:
            connector = open_connector(item, redactor, transport=self.transport)
        except Exception as exc:  # a plugin's own set-up code failed
            result.error = redactor.text(f"{type(exc).__name__}: {exc}")
            return result
        opened[item.connector_id] = connector
        if not dry_run:
            now = self.now()
            await asyncio.to_thread(mark_interrupted, self.engine, item.connector_id, now)
        spec = self._worker_spec(item) if pull else None
        for stream in STREAMS if pull else ():
            if STREAM_CAPABILITY[stream] in connector.capabilities:
                result.streams.append(
                    await self._run_stream(
                        connector,
                        spec,
                        stream,
                        run_id,
                        redactor,
                        full,
                        dry_run,
                        lookback=lookback,
                        kind=kind,
                    )
                )
        return result

    async def _push_connector(
        self,
        connector: Connector[Any],
        result: ConnectorResult,
        run_id: str,
        redactor: Redactor,
        dry_run: bool,
        apply_large: bool,
        *,
        kind: RunKind = RunKind.CYCLE,
    ) -> None:
        config = self.settings.connectors[connector.connector_id]
        caps = connector.capabilities
        can_tag, can_field = Capability.TAG_PUSH in caps, Capability.FIELD_PUSH in caps
        mapping = config.push
        use_tags = can_tag if mapping.tags is None else mapping.tags and can_tag
        use_fields = (can_field and not can_tag) if mapping.fields is None else mapping.fields
        use_fields = use_fields and can_field
        if not mapping.enabled or not (use_tags or use_fields):
            return
        target = PushTarget(
            connector.connector_id, mapping, self.settings.tag_prefix, use_tags, use_fields
        )
        now = self.now()
        plan = await asyncio.to_thread(self._plan, target, now)
        push = PushResult(
            connector.connector_id, plan, max_batch=connector.max_push_batch, dry_run=dry_run
        )
        result.push = push
        if dry_run or plan.changes == 0:
            return
        if plan.held(mapping.max_change_share) and not apply_large:
            push.held = True
            log.warning(
                "push.held", connector=connector.connector_id, changes=plan.changes_to_tagged,
                tagged=plan.tagged_before, share=round(plan.change_share(), 3),
                limit=mapping.max_change_share,
            )  # fmt: skip
            return
        row_id = await asyncio.to_thread(
            start_stream_run, self.engine, run_id=run_id, connector=connector.connector_id,
            stream="push", now=now, kind=kind,
        )  # fmt: skip
        before = connector.http.stats.snapshot()
        if use_fields:
            try:
                await connector.prepare_push(
                    {name: sorted(values) for name, values in plan.field_values.items()}
                )
            except Exception as exc:  # the fields cannot be made: nothing can be pushed
                push.error = redactor.text(f"{type(exc).__name__}: {exc}")
        executor = PushExecutor(
            self.engine, connector, target, now=now, redactor=redactor, lock=self.writer.lock
        )
        try:
            if push.error is None:
                push.counts = await executor.run()
                push.error = executor.exhausted  # the records wait; the operator is alerted
        except Exception as exc:  # isolation: the tool refused us; the others go on
            push.counts = executor.counts
            push.error = redactor.text(f"{type(exc).__name__}: {exc}")
            log.warning("push.failed", connector=connector.connector_id, error=push.error,
                        exc_info=not _expected(exc))  # fmt: skip
        delta = connector.http.stats.since(before)
        push.api_calls, push.throttled = delta.api_calls, delta.throttled
        await asyncio.to_thread(
            finish_stream_run, self.engine, row_id, status=push.status, now=self.now(),
            http=delta, push=push.counts, error=push.error,
        )  # fmt: skip

    def _plan(self, target: PushTarget, now: datetime) -> PushPlan:
        with self.engine.connect() as conn:
            return plan_push(conn, target, now)

    def _identity_context(
        self, source: str, *, observes_tags: bool = False
    ) -> Callable[[datetime], IdentityContext]:
        def build(now: datetime) -> IdentityContext:
            settings = self.settings
            return IdentityContext(
                source, settings.identity, settings.default_region, now, settings.tag_prefix,
                observes_tags,
            )  # fmt: skip

        return build

    async def _run_stream(
        self,
        connector: Connector[Any],
        spec: WorkerSpec | None,
        stream: Stream,
        run_id: str,
        redactor: Redactor,
        full: bool,
        dry_run: bool,
        *,
        lookback: timedelta | None = None,
        kind: RunKind = RunKind.CYCLE,
    ) -> StreamResult:
        source = connector.connector_id
        with self.engine.connect() as conn:
            resume = load_resume_point(
                conn, source, stream,
                current_version=connector.cursor_version,
                migrate=connector.migrate_cursor,
                overlap=lookback or self.settings.sync.cursor_overlap,
                full=full,
            )  # fmt: skip
        if lookback is not None and resume.cursor is not None:
            resume = _sweep_from(resume, lookback)
        self.progress.stream_started(source, stream, resume.note)
        row_id = None
        if not dry_run:
            row_id = await asyncio.to_thread(
                start_stream_run, self.engine, run_id=run_id, connector=source, stream=stream,
                now=self.now(), kind=kind,
            )  # fmt: skip
        before = connector.http.stats.snapshot()
        counts = PageCounts()
        dirty = CustomerIds()
        status, error = RunStatus.OK, None
        pages: AsyncIterator[Page[Any] | PreparedPage]
        if spec is not None and self.workers is not None:
            pages = self.workers.pages(spec, stream, resume.cursor, run_id, connector.http)
        else:
            pages = getattr(connector, f"pull_{stream}")(resume.cursor)
        queue: asyncio.Queue[Page[Any] | PreparedPage | _End | _Failure] = asyncio.Queue(
            maxsize=self.settings.sync.prefetch_pages
        )
        producer = asyncio.create_task(_produce(pages, queue))
        context = self._identity_context(
            source,
            observes_tags=connector.reports_tags and Capability.TAG_PUSH in connector.capabilities,
        )
        try:
            item: Page[Any] | PreparedPage | _End | _Failure = await queue.get()
            while not isinstance(item, _End):
                if isinstance(item, _Failure):
                    raise item.error
                # Every page already waiting goes into the same transaction.
                batch, after = [item], None
                while after is None and not queue.empty():
                    waiting = queue.get_nowait()
                    if isinstance(waiting, Page | PreparedPage):
                        batch.append(waiting)
                    else:
                        after = waiting
                written = await asyncio.to_thread(
                    self.writer.write_pages, context, stream, batch, run_row_id=row_id,
                    run_id=run_id, cursor_version=connector.cursor_version, dry_run=dry_run,
                )  # fmt: skip
                counts.add(written)
                dirty |= written.dirty_customers
                self.progress.page_written(source, stream, written)
                item = after or await queue.get()
            if counts.rejected:
                status = RunStatus.PARTIAL
        except Exception as exc:  # isolation: one tool's failure is recorded, not spread
            status, error = RunStatus.FAILED, redactor.text(_describe(exc))
            log.warning(
                "sync.stream.failed", connector=source, stream=stream, error=error,
                exc_info=not _expected(exc),
            )  # fmt: skip
        finally:
            if not producer.done():
                producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
        delta = connector.http.stats.since(before)
        result = StreamResult(
            source, stream, status, counts,
            api_calls=delta.api_calls, retries=delta.retries, throttled=delta.throttled,
            error=error, note=resume.note, dirty_customers=dirty,
        )  # fmt: skip
        if row_id is not None:
            await asyncio.to_thread(
                finish_stream_run, self.engine, row_id, status=status, now=self.now(),
                http=delta, error=error,
            )  # fmt: skip
        self.progress.stream_finished(result)
        return result


def _sweep_from(resume: ResumePoint, lookback: timedelta) -> ResumePoint:
    """A sweep re-reads the window by time: a page token would skip into the middle of it,
    and a cursor without a time cannot be moved back, so that stream is re-read in full."""
    assert resume.cursor is not None
    if resume.cursor.updated_since is None:
        return ResumePoint(None, "reconcile: the cursor has no time: full re-read")
    cursor = resume.cursor.model_copy(update={"token": None})
    return ResumePoint(cursor, f"reconcile: re-reading the last {lookback} before the cursor")


async def _produce(
    pages: AsyncIterator[Page[Any] | PreparedPage],
    queue: asyncio.Queue[Page[Any] | PreparedPage | _End | _Failure],
) -> None:
    """Fetch pages ahead into the bounded queue; hand any failure over in order."""
    try:
        async for page in pages:
            await queue.put(page)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        await queue.put(_Failure(exc))
        return
    finally:
        close = getattr(pages, "aclose", None)
        if close is not None:
            await close()
    await queue.put(_End())


def _expected(exc: BaseException) -> bool:
    """Errors a tool causes (no traceback needed) as opposed to bugs in our code."""
    from clm_hub.errors import ClmHubError

    if isinstance(exc, PullWorkerError):
        return exc.expected
    return isinstance(exc, ClmHubError | NotImplementedError)


def _describe(exc: BaseException) -> str:
    """An error as one line; a pull worker's error reads as it did in the worker."""
    if isinstance(exc, PullWorkerError):
        return exc.text
    return f"{type(exc).__name__}: {exc}"
