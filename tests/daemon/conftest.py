"""Real `clm-hub run` processes for the daemon tests: start, probe, signal, read logs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from clm_hub.store import open_engine, upgrade

CLM_HUB = Path(sys.executable).with_name("clm-hub")
HERE = Path(__file__).parent
SYNTHETIC = "from clm_hub.testing.synthetic import register_connectors  # noqa: F401\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(
    condition: Callable[[], object], *, timeout: float = 15.0, what: str = "condition"
) -> Any:
    """Poll until ``condition()`` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def write_config(
    folder: Path, database_url: str, connectors: str, *, extra: str = "", hookbox: bool = False
) -> Path:
    """A hub.toml with the synthetic source (and the hookbox plugin) in ``plugins_dir``."""
    plugins = folder / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "synthetic_source.py").write_text(SYNTHETIC)
    if hookbox:
        shutil.copy(HERE / "hookbox.py", plugins / "hookbox.py")
    config = folder / "hub.toml"
    config.write_text(
        f'database_url = "{database_url}"\nplugins_dir = ["plugins"]\n'
        f'log_level = "info"\nlog_format = "json"\n{extra}\n{connectors}'
    )
    return config


def migrate(database_url: str) -> None:
    """Bring a test store to the current schema (in-process: faster than `db upgrade`)."""
    engine = open_engine(database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def clm_hub(config: Path, *args: str, timeout: float = 60) -> str:
    """Run a one-shot command; fail the test when it fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLM_HUB_")}
    done = subprocess.run(
        [str(CLM_HUB), *args, "--config", str(config)],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Daemon:
    """One `clm-hub run` process with its own port and log file."""

    config: Path
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Daemon:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(CLM_HUB), "run", "--config", str(self.config)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=self._log,
        )  # fmt: skip
        return self

    def wait_ready(self, timeout: float = 20) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                code = self.process.returncode
                raise AssertionError(f"daemon exited with {code}:\n{self.text()}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=timeout, what="/readyz to answer 200")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=5)

    def post(self, path: str, *, headers: dict[str, str], content: bytes) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", headers=headers, content=content, timeout=10)

    def metrics(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """Samples by name, then by sorted labels."""
        out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(self.get("/metrics").text):
            for sample in family.samples:
                key = tuple(sorted(sample.labels.items()))
                out.setdefault(sample.name, {})[key] = sample.value
        return out

    def counter(self, name: str, **labels: str) -> float:
        samples = self.metrics().get(name, {})
        return sum(
            v for k, v in samples.items() if all(dict(k).get(a) == b for a, b in labels.items())
        )

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, timeout: float = 15) -> tuple[int, float]:
        """SIGTERM; return the exit code and the seconds it took to exit."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def text(self) -> str:
        if self._log is not None:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def events(self, name: str | None = None, **fields: object) -> list[dict[str, Any]]:
        """Parsed JSON log lines, optionally only one event name with these fields."""
        out = []
        for line in self.text().splitlines():
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            if name is not None and event.get("event") != name:
                continue
            if all(event.get(k) == v for k, v in fields.items()):
                out.append(event)
        return out


def stamp(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """A factory of daemon processes; any still running at the end is killed."""
    started: list[Daemon] = []

    def make(config: Path, *, name: str = "daemon", **settings: str) -> Daemon:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLM_HUB_")}
        env["CLM_HUB_HTTP_PORT"] = str(port)
        env.update({f"CLM_HUB_DAEMON__{k.upper()}": v for k, v in settings.items()})
        daemon = Daemon(config, port, env, tmp_path / f"{name}.log")
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.kill()
