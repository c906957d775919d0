"""Connector pulls in worker processes, so that a sync uses more than one core.

Python runs one thread at a time per process, and a pull keeps a core busy twice over:
fetching, parsing and validating a tool's pages, then looking up and writing them. A
pull worker is a process per connector that runs the connector's pulls (HTTP, parsing,
validation, rate limits, retries) and prepares every page (``prepare.py``: hashes,
normalised emails and phones, columns); the hub's process receives each prepared page
over a pipe and only does the lookups and the writes. Cursors and transactions are the
hub's as before: every page's cursor is stored with its data, so a worker (or the hub)
dying loses nothing and duplicates nothing.

Workers are forked from a fork server (one clean single-threaded process with clm-hub
preloaded, so a worker starts in milliseconds and inherits no threads or locks), live as
long as their ``PullWorkers`` (the daemon reuses them from cycle to cycle), and die with
the hub: on Linux by a parent-death signal, elsewhere at the end of their pipe. Pushes,
webhooks and connectors that cannot be imported by name in another process (classes
defined inside a function, say) stay in the hub's process.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import pickle
import signal
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import structlog

from clm_hub.connectors.base import Connector
from clm_hub.connectors.http import HttpClient
from clm_hub.errors import ClmHubError
from clm_hub.prepare import PreparedPage, PrepareRules, prepare_page
from clm_hub.records import StreamCursor

__all__ = ["PullWorkerError", "PullWorkers", "WorkerSpec"]

log = structlog.get_logger("clm_hub.pull_worker")

BUFFER_PAGES = 4
"""Prepared pages a worker keeps ready for the hub. With one it often waited for the hub
and the hub for it (both near a full core): 19,300 -> 22,000 records/s in bench/ingest.py;
each is ~150 kB pickled, in the worker."""

_LOCAL_PLUGINS = "clm_hub_local_plugins."
"""Modules of ``plugins_dir`` files (``plugins.load_plugin_file``): loaded by path."""


class PullWorkerError(ClmHubError):
    """A pull failed in its worker; ``text`` is the error as the worker saw it."""

    def __init__(self, text: str, *, expected: bool = True) -> None:
        super().__init__(text)
        self.text = text
        self.expected = expected


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to build its connector (picklable)."""

    connector_id: str
    plugin: str
    module: str
    module_file: str | None
    qualname: str
    settings: bytes
    """The connector's settings model, pickled (secrets included: it is a local pipe)."""
    rules: PrepareRules
    log_level: str
    log_format: str


@dataclass(frozen=True)
class _Pull:
    stream: str
    cursor: StreamCursor | None
    run_id: str


def worker_spec(
    connector_id: str,
    plugin: str,
    connector: type[Connector[Any]],
    settings: Any,
    rules: PrepareRules,
    *,
    log_level: str = "info",
    log_format: str = "auto",
) -> WorkerSpec | None:
    """How to build this connector in another process, or ``None`` when it cannot be."""
    module = sys.modules.get(connector.__module__)
    if module is None or "<locals>" in connector.__qualname__ or module.__name__ == "__main__":
        return None
    module_file = None
    if module.__name__.startswith(_LOCAL_PLUGINS):
        module_file = getattr(module, "__file__", None)
        if module_file is None:
            return None
    try:
        pickled = pickle.dumps(settings, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None
    return WorkerSpec(
        connector_id, plugin, module.__name__, module_file, connector.__qualname__, pickled,
        rules, log_level, log_format,
    )  # fmt: skip


class _Worker:
    """One worker process and the hub's end of its pipe."""

    def __init__(self, spec: WorkerSpec, context: Any) -> None:
        self.spec = spec
        self.conn, child = context.Pipe(duplex=True)
        self.process = context.Process(
            target=_main, args=(child, spec), daemon=True, name=f"clm-hub pull {spec.connector_id}"
        )
        self.process.start()
        child.close()

    def ask(self, request: _Pull) -> None:
        """Send a pull request (blocking); ``PullWorkerError`` when the worker is gone."""
        try:
            self.conn.send(request)
        except OSError:  # it died since its last stream
            raise self._exited() from None

    def receive(self) -> tuple[Any, ...]:
        """The worker's next message (blocking); ``PullWorkerError`` when it is gone."""
        try:
            message: tuple[Any, ...] = pickle.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            raise self._exited() from None
        return message

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit and wait for it (blocking)."""
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(timeout)
        self.kill()
        self.process.join(5)

    def kill(self) -> None:
        """Kill it without waiting (safe on the event loop); it is reaped later."""
        if self.process.is_alive():
            self.process.kill()
        self.conn.close()

    def _exited(self) -> PullWorkerError:
        return PullWorkerError(
            f"WorkerExited: the pull worker of {self.spec.connector_id} {self.describe_exit()}",
            expected=False,
        )

    def describe_exit(self) -> str:
        self.process.join(1)
        code = self.process.exitcode
        if code is None:
            return "stopped answering"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"


class PullWorkers:
    """The pull workers of one sync engine, one per connector, started on first use."""

    def __init__(self) -> None:
        self._workers: dict[str, _Worker] = {}
        self._context: Any = None
        self._lock = threading.Lock()  # connectors' streams start workers from threads

    def _start(self, spec: WorkerSpec) -> _Worker:
        """The connector's running worker, started if needed (blocking: run in a thread)."""
        with self._lock:
            worker = self._workers.get(spec.connector_id)
            if worker is not None and (worker.spec != spec or not worker.process.is_alive()):
                worker.kill()
                worker = None
            if worker is None:
                worker = _Worker(spec, self._mp_context())
                self._workers[spec.connector_id] = worker
            return worker

    def _mp_context(self) -> Any:
        if self._context is None:
            context: Any
            try:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([__name__])
            except ValueError:  # no fork server on this platform
                context = multiprocessing.get_context("spawn")
            self._context = context
        return self._context

    async def pages(
        self,
        spec: WorkerSpec,
        stream: str,
        cursor: StreamCursor | None,
        run_id: str,
        http: HttpClient,
    ) -> AsyncIterator[PreparedPage]:
        """The stream's prepared pages, pulled by the connector's worker. Its API calls,
        retries and 429s count in ``http`` (the hub's client of the same connector: run
        history, and the budget its pushes share). A stream left before its end (a write
        failed, the cycle was cancelled) stops the worker: it is restarted on next use.
        Nothing here blocks the event loop (starting a worker may wait seconds for the fork
        server): the daemon's lease renewals run on it."""
        worker = await asyncio.to_thread(self._start, spec)
        finished = False
        try:
            await asyncio.to_thread(worker.ask, _Pull(stream, cursor, run_id))
            while True:
                message = await asyncio.to_thread(worker.receive)
                if message[0] == "page":
                    yield message[1]
                    continue
                finished = True
                http.made_elsewhere(message[-1])
                if message[0] == "error":
                    raise PullWorkerError(message[1], expected=message[2])
                return
        finally:
            if not finished:
                self._workers.pop(spec.connector_id, None)
                worker.kill()

    @property
    def pids(self) -> dict[str, int]:
        """Connector id -> process id of its running worker (for monitoring)."""
        return {
            connector: worker.process.pid
            for connector, worker in self._workers.items()
            if worker.process.pid is not None and worker.process.is_alive()
        }

    def close(self) -> None:
        """Stop every worker (they finish no pull: the hub is not reading any more)."""
        workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.stop()


# --- the worker process --------------------------------------------------------------


def _main(conn: Connection, spec: WorkerSpec) -> None:
    """A worker's life: build the connector, then serve pull requests until told to stop
    or until the hub's end of the pipe closes."""
    _die_with_parent()
    from clm_hub.log import configure_logging
    from clm_hub.redaction import Redactor, secrets_in

    connector_class = _load_connector(spec)
    settings = pickle.loads(spec.settings)
    redactor = Redactor()
    redactor.add(secrets_in(settings))
    configure_logging(redactor, level=spec.log_level, fmt=spec.log_format)  # type: ignore[arg-type]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(conn, spec, connector_class, settings, redactor))


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this process when its parent dies (the fork server,
    which itself ends with the hub), even mid-request or asleep on a rate limit."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _load_connector(spec: WorkerSpec) -> type[Connector[Any]]:
    import importlib

    if spec.module_file is not None:
        from clm_hub.plugins import load_plugin_file

        module = load_plugin_file(Path(spec.module_file))
    else:
        module = importlib.import_module(spec.module)
    target: Any = module
    for part in spec.qualname.split("."):
        target = getattr(target, part)
    return target  # type: ignore[no-any-return]


async def _serve(
    conn: Connection,
    spec: WorkerSpec,
    connector_class: type[Connector[Any]],
    settings: Any,
    redactor: Any,
) -> None:
    from clm_hub.runtime import ConfiguredConnector, open_connector

    item = ConfiguredConnector(spec.connector_id, spec.plugin, True, connector_class, settings)
    while True:
        try:
            request = await asyncio.to_thread(conn.recv)
        except (EOFError, OSError):
            return
        if request is None:
            return
        # A connector (and client, and rate limiter) per pull, as the hub makes one per
        # cycle: limits learnt in one cycle are the tool's headers' to correct in the next.
        connector = open_connector(item, redactor)
        try:
            await _pull(conn, connector, request, spec.rules, redactor)
        except (EOFError, OSError):  # the hub went away mid-answer
            return
        finally:
            await connector.http.aclose()


async def _pull(
    conn: Connection, connector: Connector[Any], request: _Pull, rules: PrepareRules, redactor: Any
) -> None:
    """Pull one stream: pages are fetched and prepared while the previous one is sent."""
    structlog.contextvars.bind_contextvars(run_id=request.run_id)
    before = connector.http.stats.snapshot()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=BUFFER_PAGES)

    async def produce() -> None:
        pages = getattr(connector, f"pull_{request.stream}")(request.cursor)
        try:
            async for page in pages:
                prepared = prepare_page(request.stream, page, rules)
                await queue.put(pickle.dumps(("page", prepared), protocol=pickle.HIGHEST_PROTOCOL))
        finally:
            close = getattr(pages, "aclose", None)
            if close is not None:
                await close()
            await queue.put(None)

    producer = asyncio.create_task(produce())
    try:
        while (data := await queue.get()) is not None:
            await asyncio.to_thread(conn.send_bytes, data)
        await producer
        outcome: tuple[Any, ...] = ("end",)
    except Exception as exc:
        expected = isinstance(exc, ClmHubError | NotImplementedError)
        text = redactor.text(f"{type(exc).__name__}: {exc}")
        if not expected:
            log.warning("pull_worker.failed", stream=request.stream, error=text, exc_info=True)
        outcome = ("error", text, expected)
    finally:
        if not producer.done():
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
    delta = connector.http.stats.since(before)
    conn.send_bytes(pickle.dumps((*outcome, delta), protocol=pickle.HIGHEST_PROTOCOL))
