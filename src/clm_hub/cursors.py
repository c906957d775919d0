"""Stored stream cursors: where each connector stream resumes, versioned.

A connector declares ``cursor_version``; a cursor stored by an older version is handed to
the connector's ``migrate_cursor`` instead of being silently reused (or dropped), so an
upgrade that changes the cursor format neither skips nor re-reads everything by accident.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from clm_hub.records import StreamCursor
from clm_hub.store.tables import SyncCursor

__all__ = ["ResumePoint", "cursor_t", "load_resume_point", "save_cursor"]

cursor_t = SyncCursor.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ResumePoint:
    """Where a stream starts this run, and why."""

    cursor: StreamCursor | None
    note: str


def save_cursor(
    conn: Connection,
    connector: str,
    stream: str,
    version: int,
    cursor: StreamCursor,
    now: datetime,
) -> None:
    """Store ``cursor`` as the stream's resume point (inside the page's transaction)."""
    values = {
        "version": version,
        "updated_since": cursor.updated_since,
        "token": cursor.token,
        "updated_at": now,
    }
    where = (cursor_t.c.connector == connector) & (cursor_t.c.stream == stream)
    if conn.execute(update(cursor_t).where(where).values(values)).rowcount == 0:
        conn.execute(insert(cursor_t).values(connector=connector, stream=stream, **values))


def load_resume_point(
    conn: Connection,
    connector: str,
    stream: str,
    *,
    current_version: int,
    migrate: Callable[[str, int, StreamCursor], StreamCursor | None],
    overlap: timedelta,
    full: bool = False,
) -> ResumePoint:
    """The cursor to pass to the connector: stored, migrated if needed, minus the overlap."""
    if full:
        return ResumePoint(None, "full re-read requested")
    row = conn.execute(
        select(cursor_t.c.version, cursor_t.c.updated_since, cursor_t.c.token).where(
            cursor_t.c.connector == connector, cursor_t.c.stream == stream
        )
    ).first()
    if row is None:
        return ResumePoint(None, "no cursor stored yet: full read")
    version, updated_since, token = row
    cursor = StreamCursor(updated_since=updated_since, token=token)
    note = f"resuming from cursor v{version}"
    if version != current_version:
        migrated = migrate(stream, version, cursor) if version < current_version else None
        if migrated is None:
            return ResumePoint(
                None,
                f"cursor v{version} cannot be used by this connector version "
                f"(v{current_version}): full re-read",
            )
        cursor, note = migrated, f"cursor migrated from v{version} to v{current_version}"
    if cursor.updated_since is not None and overlap:
        cursor = cursor.model_copy(update={"updated_since": cursor.updated_since - overlap})
    return ResumePoint(cursor, note)
