"""WAL checkpoints in a background thread: commits stop paying for them, nothing is lost."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import Engine, text

from clm_hub.store import open_engine
from clm_hub.store.checkpoint import WalCheckpointer

ROWS = 3_000
"""Rows of ~2 KB: about 1,500 pages, past SQLite's default auto-checkpoint of 1,000."""


def _write_many(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS blob (id INTEGER PRIMARY KEY, v)"))
        connection.execute(
            text("INSERT INTO blob (v) VALUES (:v)"), [{"v": "x" * 2000} for _ in range(ROWS)]
        )


def _rows_in_database_file(path: Path) -> int:
    """Rows the main database file holds, ignoring what is still only in the WAL."""
    connection = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        tables = connection.execute("SELECT name FROM sqlite_master WHERE name = 'blob'")
        if tables.fetchone() is None:
            return 0
        return int(connection.execute("SELECT COUNT(*) FROM blob").fetchone()[0])
    finally:
        connection.close()


def _settled_rows(path: Path) -> int:
    """Rows in the database file, or 0 while a checkpoint is writing it (an immutable read
    may then see a half-written page)."""
    try:
        return _rows_in_database_file(path)
    except sqlite3.DatabaseError:
        return 0


def test_without_the_thread_a_big_commit_checkpoints_by_itself(tmp_path: Path) -> None:
    path = tmp_path / "plain.sqlite3"
    engine = open_engine(f"sqlite:///{path}")
    _write_many(engine)
    assert _rows_in_database_file(path) == ROWS  # the commit waited for the checkpoint
    engine.dispose()


def test_commit_leaves_the_checkpoint_to_the_thread_which_writes_it_on_stop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.sqlite3"
    engine = open_engine(f"sqlite:///{path}")
    checkpointer = WalCheckpointer(str(path), interval=3600).attach(engine)
    _write_many(engine)
    assert _rows_in_database_file(path) == 0  # committed, still only in the WAL
    with engine.connect() as connection:  # and visible to every reader
        assert connection.execute(text("SELECT COUNT(*) FROM blob")).scalar_one() == ROWS
    checkpointer.stop()
    assert _rows_in_database_file(path) == ROWS
    assert checkpointer.checkpoints == 1
    engine.dispose()


def test_background_checkpoints_land_within_seconds_and_stop_with_the_engine(
    tmp_path: Path,
) -> None:
    path = tmp_path / "daemon.sqlite3"
    engine = open_engine(f"sqlite:///{path}", background_checkpoints=True)
    _write_many(engine)
    deadline = time.monotonic() + 20
    while _settled_rows(path) < ROWS and time.monotonic() < deadline:
        time.sleep(0.1)
    engine.dispose()  # the thread has stopped: the file is settled
    assert _rows_in_database_file(path) == ROWS
    assert not [t for t in threading.enumerate() if t.name == f"wal-checkpoint:{path}"]


def test_in_memory_databases_get_no_thread() -> None:
    before = {t.name for t in threading.enumerate()}
    engine = open_engine("sqlite://", background_checkpoints=True)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
    assert {t.name for t in threading.enumerate()} == before
    engine.dispose()
