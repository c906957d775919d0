"""Opening the store and bringing its schema up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from clm_hub.errors import ConfigError, StoreError
from clm_hub.store.checkpoint import WalCheckpointer

__all__ = ["current_revision", "head_revision", "open_engine", "open_store", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def open_engine(url: str, *, background_checkpoints: bool = False, **kwargs: Any) -> Engine:
    """Create an engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout.

    ``background_checkpoints``: on a SQLite file, WAL checkpoints (and their fsync) run in a
    thread of their own instead of inside commits (see ``checkpoint.py``); for the processes
    that write a lot (daemon, sync, stage recomputes), until the engine is disposed.
    Statement parameters are kept out of error messages: they hold customers' data,
    which must not reach logs or run history.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database_url {url!r} is not a database URL") from None
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(
                parsed, connect_args={"timeout": 30}, hide_parameters=True, **kwargs
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            if background_checkpoints and parsed.database not in (None, "", ":memory:"):
                WalCheckpointer(parsed.database).attach(engine)
            return engine
        return create_engine(parsed, pool_pre_ping=True, hide_parameters=True, **kwargs)
    except NoSuchModuleError:
        raise ConfigError(
            f"database_url uses {parsed.drivername!r}, which is not installed "
            "(for PostgreSQL use postgresql+psycopg:// and install clm-hub[postgres])"
        ) from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # SQLite's default page cache is 2 MB: large stores then re-read index pages from
    # disk on every page of records. 16 MB per connection keeps the hot index pages; the
    # OS file cache serves the rest. Every pooled connection fills its own cache, so 64 MB
    # each held ~210 MB of the demo's peak at 100,000 people, for no speed (bench/ingest.py,
    # alternating runs: 13,865 and 14,125 records/s with 16 MB, 13,181 and 13,860 with 64).
    cursor.execute("PRAGMA cache_size=-16384")
    cursor.close()


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to ``revision``."""
    try:
        command.upgrade(_alembic_config(engine), revision)
    except OperationalError as exc:
        raise StoreError(f"cannot migrate {engine.url.render_as_string()}: {exc.orig}") from None


def head_revision() -> str:
    """The newest migration this version of clm-hub ships."""
    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (``None`` for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def open_store(url: str, *, background_checkpoints: bool = False) -> Engine:
    """An engine on a store whose schema is current, or a ``StoreError`` saying what to run."""
    engine = open_engine(url, background_checkpoints=background_checkpoints)
    try:
        revision = current_revision(engine)
    except OperationalError as exc:
        engine.dispose()
        raise StoreError(f"cannot open {engine.url.render_as_string()}: {exc.orig}") from None
    head = head_revision()
    if revision != head:
        engine.dispose()
        state = "empty" if revision is None else f"at revision {revision}"
        raise StoreError(
            f"the store {engine.url.render_as_string()} is {state}; this clm-hub needs {head}: "
            "run `clm-hub db upgrade`"
        )
    return engine
