"""The simulated shop's records in a SQLite file, so a shop of millions stays off the heap.

Customers and orders are rows; ``ShopState.customers`` / ``.orders`` are mapping views that
build a ``SimCustomer`` / ``SimOrder`` from a row when no copy of it is referenced already
(change one through ``ShopState.save``). The indexes match what the simulator serves:
``(sort value, id)`` for connection pages and searches, ``customer_id`` for a customer's
orders, lower-cased email for ``email:`` searches. Cursor bindings and bulk results live in
tables too, since both grow with the records read. Timestamps are whole seconds since the
epoch (Shopify's are second-precise); amounts are the Decimal's text.

One connection serves every thread: callers hold ``ShopState.lock`` around each use.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, ItemsView, Iterator, MutableMapping, ValuesView
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from threading import RLock
from typing import Any, Generic, TypeVar

from clm_hub.testing.simfile import SimulatorFile

__all__ = ["PAGE", "RecordTable", "ShopStore", "epoch", "instant"]

PAGE = 1000
"""Rows read per query when a whole table is walked (a view's ``values()``, a bulk file)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY, email TEXT, email_key TEXT, first_name TEXT, last_name TEXT,
    phone TEXT, email_marketing_state TEXT NOT NULL, tags TEXT NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, state TEXT NOT NULL,
    erasure_requested INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS customers_updated ON customers (updated_at, id);
CREATE INDEX IF NOT EXISTS customers_created ON customers (created_at, id);
CREATE INDEX IF NOT EXISTS customers_email ON customers (email_key);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY, total TEXT NOT NULL, customer_id INTEGER, email TEXT,
    email_key TEXT, currency TEXT NOT NULL, financial_status TEXT,
    created_at INTEGER NOT NULL, processed_at INTEGER, updated_at INTEGER NOT NULL,
    cancelled_at INTEGER, cancel_reason TEXT, refunded TEXT NOT NULL, test INTEGER NOT NULL,
    tags TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer_id, id);
CREATE INDEX IF NOT EXISTS orders_updated ON orders (updated_at, id);
CREATE INDEX IF NOT EXISTS orders_created ON orders (created_at, id);
CREATE INDEX IF NOT EXISTS orders_processed ON orders (coalesce(processed_at, created_at), id);
CREATE INDEX IF NOT EXISTS orders_email ON orders (email_key);
CREATE TABLE IF NOT EXISTS cursors (
    cursor TEXT NOT NULL, root TEXT NOT NULL, query TEXT NOT NULL, sort TEXT NOT NULL,
    rev INTEGER NOT NULL, PRIMARY KEY (cursor, root, query, sort, rev)
) WITHOUT ROWID;
"""

TAG_SEPARATOR = "\x1f"
"""Joins a record's tags in its row (tags never contain it; Shopify splits them on commas)."""


def epoch(value: datetime) -> int:
    """A second-precise instant as stored."""
    return int(value.timestamp())


def instant(value: int) -> datetime:
    """A stored instant as the UTC datetime the simulator works with."""
    return datetime.fromtimestamp(value, UTC)


def join_tags(tags: tuple[str, ...] | list[str]) -> str:
    return TAG_SEPARATOR.join(tags)


def split_tags(text: str) -> list[str]:
    return text.split(TAG_SEPARATOR) if text else []


def _has_tag(tags: str, wanted: str) -> bool:
    """SQL ``has_tag(tags, wanted)``: any of the record's tags among ``wanted`` (lower-cased,
    separator-joined)."""
    mine = {t.lower() for t in split_tags(tags)}
    return bool(mine & set(wanted.split(TAG_SEPARATOR)))


class ShopStore:
    """The SQLite file behind one simulated shop (a temporary one unless ``path`` is given)."""

    def __init__(self, path: Path | None = None) -> None:
        self._file = SimulatorFile(path, name="shopify")
        self.path = self._file.path
        self.db = self._file.db
        self.db.create_function("has_tag", 2, _has_tag, deterministic=True)
        self.db.executescript(_SCHEMA)

    def batch(self) -> AbstractContextManager[None]:
        """One transaction around many writes (seeding); nests."""
        return self._file.batch()

    def close(self) -> None:
        self._file.close()


Row = tuple[Any, ...]
"""A row as sqlite3 returns it."""
T = TypeVar("T")


class RecordTable(MutableMapping[int, T], Generic[T]):
    """A table as a mapping of id to records, read under the shop's lock.

    A record read while another copy of it is still referenced is that same object (a weak
    identity map), so a test holding a customer sees the changes ``update_customer`` makes,
    as with records kept in memory; nothing else is kept. Iterating walks the table by id
    in pages, so it never holds the whole table; ``put`` (or setting an item) writes one.
    """

    def __init__(
        self,
        store: ShopStore,
        lock: RLock,
        table: str,
        build: Callable[[Row], T],
        write: Callable[[T], None],
    ) -> None:
        self._store, self._lock, self._table = store, lock, table
        self._build, self._write = build, write
        self._live: weakref.WeakValueDictionary[int, T] = weakref.WeakValueDictionary()

    def record(self, row: Row) -> T:
        """The record of a row: the live object if there is one."""
        ident = int(row[0])
        with self._lock:
            found = self._live.get(ident)
            if found is None:
                found = self._live[ident] = self._build(row)
            return found

    def put(self, ident: int, record: T) -> None:
        """Write a record, and make it the live one for its id."""
        with self._lock:
            self._write(record)
            self._live[ident] = record

    def __getitem__(self, key: int) -> T:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def get(self, key: object, default: object = None) -> T | None:  # type: ignore[override]
        if not isinstance(key, int):
            return None
        with self._lock:
            found = self._live.get(key)
            if found is not None:
                return found
            row = self._store.db.execute(
                f"SELECT * FROM {self._table} WHERE id = ?", (key,)
            ).fetchone()
            return None if row is None else self.record(row)

    def __setitem__(self, key: int, value: T) -> None:
        self.put(key, value)

    def __delitem__(self, key: int) -> None:
        with self._lock:
            self._live.pop(key, None)
            gone = self._store.db.execute(f"DELETE FROM {self._table} WHERE id = ?", (key,))
            if gone.rowcount == 0:
                raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, int):
            return False
        with self._lock:
            return (
                self._store.db.execute(
                    f"SELECT 1 FROM {self._table} WHERE id = ?", (key,)
                ).fetchone()
                is not None
            )

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._store.db.execute(f"SELECT count(*) FROM {self._table}").fetchone()
        return int(count)

    def rows(self) -> Iterator[Row]:
        """Every row by id, a page at a time (the lock is held per page, not throughout)."""
        last = -(2**63)
        while True:
            with self._lock:
                page = self._store.db.execute(
                    f"SELECT * FROM {self._table} WHERE id > ? ORDER BY id LIMIT ?", (last, PAGE)
                ).fetchall()
            yield from page
            if len(page) < PAGE:
                return
            last = int(page[-1][0])

    def __iter__(self) -> Iterator[int]:
        for row in self.rows():
            yield int(row[0])

    def values(self) -> ValuesView[T]:
        return _Values(self)

    def items(self) -> ItemsView[int, T]:
        return _Items(self)

    def select(self, where: str, params: tuple[object, ...] = ()) -> list[T]:
        """The records matching a SQL condition (callers keep it selective)."""
        with self._lock:
            rows = self._store.db.execute(
                f"SELECT * FROM {self._table} WHERE {where}", params
            ).fetchall()
            return [self.record(row) for row in rows]


class _Values(ValuesView[T]):
    """Values built from paged rows (one query per page, not per record)."""

    _mapping: RecordTable[T]

    def __iter__(self) -> Iterator[T]:
        table = self._mapping
        for row in table.rows():
            yield table.record(row)


class _Items(ItemsView[int, T]):
    _mapping: RecordTable[T]

    def __iter__(self) -> Iterator[tuple[int, T]]:
        table = self._mapping
        for row in table.rows():
            yield int(row[0]), table.record(row)
