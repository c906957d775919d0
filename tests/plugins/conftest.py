"""What every built-in plugin's tests share: one loopback server for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clm_hub.testing import LoopbackServer


@pytest.fixture(scope="session")
def loopback() -> Iterator[LoopbackServer]:
    """A real HTTP server on 127.0.0.1; each test plugs its own simulator in with
    ``loopback.serving(app)`` (starting uvicorn per test would cost ~0.2 s each)."""
    server = LoopbackServer()
    try:
        yield server
    finally:
        server.stop()
