"""A `clm-hub sync` killed with SIGKILL at random points loses and duplicates nothing.

Each page, its cursor and the run counters commit in one transaction, so whatever the
moment of death, the next run resumes from a consistent store and ends with exactly the
store an uninterrupted run gives.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from clm_hub.store import open_engine
from clm_hub.store.tables import SyncRun
from tests.engine.conftest import snapshot

CLM_HUB = Path(sys.executable).with_name("clm-hub")
run_t = SyncRun.__table__  # type: ignore[attr-defined]

SOURCES = (
    '[connectors.shop]\nplugin = "synthetic"\ncontacts = 150\norders = 500\n'
    "survey_responses = 60\npage_size = 20\npage_delay = 0.02\nbad_every = 37\n"
    '[connectors.crm]\nplugin = "synthetic"\nid_prefix = "c"\nfirst_person = 100\n'
    "contacts = 120\norders = 0\npage_size = 15\npage_delay = 0.02\n"
)


def write_config(folder: Path, database_url: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    plugins = folder / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "synthetic_source.py").write_text(
        "from clm_hub.testing.synthetic import register_connectors  # noqa: F401\n"
    )
    config = folder / "hub.toml"
    config.write_text(
        f'database_url = "{database_url}"\nplugins_dir = ["plugins"]\nlog_level = "error"\n'
        + SOURCES
    )
    return config


def clm_hub(config: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLM_HUB_")}
    return subprocess.Popen(
        [str(CLM_HUB), *args, "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def finish(config: Path, *args: str) -> None:
    process = clm_hub(config, *args)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()


def started_pages(database_url: str) -> int:
    engine = open_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.sum(run_t.c.pages), 0))).scalar_one())
    except Exception:  # tables not there yet
        return 0
    finally:
        engine.dispose()


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux's /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def assert_gone(pids: set[int], timeout: float = 10.0) -> None:
    """The hub's helper processes do not outlive it (they would keep pulling)."""
    deadline = time.monotonic() + timeout
    while alive := {p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)}:
        assert time.monotonic() < deadline, f"processes outlived the killed hub: {alive}"
        time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("reference")
    url = f"sqlite:///{folder}/reference.sqlite3"
    config = write_config(folder, url)
    finish(config, "db", "upgrade")
    finish(config, "sync")
    engine = open_engine(url)
    try:
        return snapshot(engine)
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_mid_sync_then_rerun_gives_the_uninterrupted_store(
    seed: int, database_url: str, tmp_path: Path, reference: dict[str, object]
) -> None:
    config = write_config(tmp_path, database_url)
    finish(config, "db", "upgrade")
    rng = random.Random(seed)
    wanted_pages = rng.randint(1, 30)
    process = clm_hub(config, "sync")
    deadline = time.monotonic() + 60
    while started_pages(database_url) < wanted_pages and process.poll() is None:
        assert time.monotonic() < deadline, "sync made no progress"
        time.sleep(0.01)
    time.sleep(rng.uniform(0, 0.05))  # somewhere inside the next page
    helpers = descendants(process.pid)  # the pull workers and their fork server
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert_gone(helpers)
    finish(config, "sync")
    engine = open_engine(database_url)
    try:
        assert snapshot(engine) == reference
        with engine.connect() as conn:
            statuses = set(conn.execute(select(run_t.c.status)).scalars())
    finally:
        engine.dispose()
    assert "interrupted" in statuses  # it really died mid-run
    assert "running" not in statuses
