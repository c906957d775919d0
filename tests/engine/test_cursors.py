"""Stored cursors: overlap on resume, and versioned formats migrated, not misread."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from clm_hub.cursors import load_resume_point, save_cursor
from clm_hub.records import StreamCursor

NOW = datetime(2026, 6, 1, tzinfo=UTC)
STAMP = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def no_migration(stream: str, version: int, cursor: StreamCursor) -> StreamCursor | None:
    return None


def store_cursor(store: Engine, version: int = 1, token: str | None = "t9") -> None:
    with store.begin() as conn:
        save_cursor(
            conn, "shop", "orders", version, StreamCursor(updated_since=STAMP, token=token), NOW
        )


def resume(store: Engine, **kwargs: object) -> tuple[StreamCursor | None, str]:
    options: dict[str, object] = {
        "current_version": 1, "migrate": no_migration, "overlap": timedelta(minutes=5),
    }  # fmt: skip
    options.update(kwargs)
    with store.connect() as conn:
        point = load_resume_point(conn, "shop", "orders", **options)  # type: ignore[arg-type]
    return point.cursor, point.note


def test_no_cursor_means_a_full_read(store: Engine) -> None:
    assert resume(store) == (None, "no cursor stored yet: full read")


def test_resume_subtracts_the_overlap_and_keeps_the_token(store: Engine) -> None:
    store_cursor(store)
    cursor, _ = resume(store)
    assert cursor == StreamCursor(updated_since=STAMP - timedelta(minutes=5), token="t9")


def test_saving_again_replaces_the_cursor(store: Engine) -> None:
    store_cursor(store, token="a")
    store_cursor(store, token="b")
    cursor, _ = resume(store)
    assert cursor is not None and cursor.token == "b"


def test_an_old_cursor_is_migrated_by_the_connector(store: Engine) -> None:
    store_cursor(store, version=1, token="page:7")

    def migrate(stream: str, version: int, cursor: StreamCursor) -> StreamCursor | None:
        assert (stream, version) == ("orders", 1)
        return StreamCursor(updated_since=cursor.updated_since, token=None)

    cursor, note = resume(store, current_version=2, migrate=migrate)
    assert cursor == StreamCursor(updated_since=STAMP - timedelta(minutes=5))
    assert note == "cursor migrated from v1 to v2"


def test_a_cursor_the_connector_cannot_migrate_means_a_full_re_read(store: Engine) -> None:
    store_cursor(store, version=1)
    cursor, note = resume(store, current_version=2)
    assert cursor is None
    assert "cannot be used by this connector version (v2): full re-read" in note


def test_a_cursor_from_a_newer_version_is_not_trusted(store: Engine) -> None:
    store_cursor(store, version=3)
    cursor, note = resume(store, current_version=2)
    assert cursor is None
    assert "v3 cannot be used" in note
