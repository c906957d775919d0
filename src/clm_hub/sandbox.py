"""Running plugin simulators over real HTTP on loopback, and injecting faults into them.

Simulators are ASGI apps that reproduce a tool's documented API. ``serve`` runs one
under uvicorn in a background thread on a free 127.0.0.1 port, so tests, the demo and
benchmarks talk to it through real sockets exactly as they would to the tool.
``FaultPlan`` lets a test or the demo make the next requests fail in the ways real APIs
do (429 storms, 5xx, timeouts, malformed JSON, expired tokens).
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum

import uvicorn
from starlette.types import ASGIApp

__all__ = ["Fault", "FaultPlan", "serve"]


class Fault(StrEnum):
    """Ways a simulated API can misbehave on one request."""

    RATE_LIMIT = "rate_limit"
    """Answer with the tool's own 429 (or throttled) response."""
    SERVER_ERROR = "server_error"
    """Answer 500/503."""
    TIMEOUT = "timeout"
    """Hold the request longer than any sane client timeout."""
    MALFORMED = "malformed"
    """Answer 200 with a body that is not valid JSON."""
    EXPIRED_TOKEN = "expired_token"
    """Answer 401 as the tool does for an expired or revoked token."""


@dataclass
class FaultPlan:
    """A queue of faults the simulator applies to its next requests, in order.

    Simulators call ``next_fault(path)`` once per request; ``None`` means behave normally.
    Thread-safe, since the simulator runs in its own thread.
    """

    _queue: deque[tuple[Fault, str | None]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    applied: list[tuple[Fault, str]] = field(default_factory=list)

    def inject(self, fault: Fault, *, times: int = 1, path_prefix: str | None = None) -> None:
        """Make the next ``times`` matching requests fail with ``fault``."""
        with self._lock:
            self._queue.extend((fault, path_prefix) for _ in range(times))

    def next_fault(self, path: str) -> Fault | None:
        """The fault for a request to ``path``, consumed from the queue."""
        with self._lock:
            for index, (fault, prefix) in enumerate(self._queue):
                if prefix is None or path.startswith(prefix):
                    del self._queue[index]
                    self.applied.append((fault, path))
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` over HTTP on loopback for the duration of the block; yields its URL."""
    port = port or _free_port(host)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"sandbox-{port}", daemon=True)
    thread.start()
    try:
        deadline = 200
        while not server.started:
            if not thread.is_alive() or deadline == 0:
                raise RuntimeError(f"simulator did not start on {host}:{port}")
            deadline -= 1
            threading.Event().wait(0.025)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
