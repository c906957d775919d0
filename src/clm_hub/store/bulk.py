"""Bulk inserts, updates and key lookups with driver-level statements.

SQLAlchemy Core compiles and processes parameters per row for ``execute(insert(t), rows)``
and renders every value of an ``IN`` list as a bound literal, which costs more than the
database's own work on large pages. These helpers build each statement once, apply the
columns' bind processors (so values are stored exactly as the ORM would store them: UTC
timestamps, scaled money, JSON) and hand the driver plain tuples.

The two column types every page is full of get direct processors with the same output as
SQLAlchemy's (a test compares them): timestamps on SQLite, and money.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Column, Connection, Dialect, Table
from sqlalchemy.engine import make_url

from clm_hub.store.types import MONEY_SCALE, Money, UtcDateTime

__all__ = [
    "IN_CHUNK",
    "bulk_insert",
    "bulk_update",
    "chunks",
    "dialect_named",
    "insert_columns",
    "select_in",
    "store_values",
    "update_columns",
]

Processor = Callable[[Any], Any] | None

IN_CHUNK = 900
"""Bound parameters per IN list, well under every backend's limit."""


def chunks(values: Iterable[Any], size: int = IN_CHUNK) -> Iterator[list[Any]]:
    """Split ``values`` into lists of at most ``size``, for IN lists."""
    items = values if isinstance(values, list) else list(values)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sqlite_utc_text(value: datetime) -> str:
    """``UtcDateTime`` on SQLite: naive UTC in SQLAlchemy's text format, microseconds always."""
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
    # "YYYY-MM-DD HH:MM:SS.ffffff" is SQLAlchemy's SQLite storage format; drop "+00:00".
    return value.isoformat(" ", "microseconds")[:-6]


_DATETIMES: TypeAdapter[list[datetime | None]] = TypeAdapter(list[datetime | None])


def _sqlite_utc_texts(values: Sequence[datetime | None]) -> list[str | None]:
    """``_sqlite_utc_text`` for a whole column: pydantic-core writes every value's ISO
    text in one call, several times cheaper than ``isoformat`` per value (a page holds
    thousands). Values it does not write in UTC go through the exact per-value path."""
    column = values if isinstance(values, list) else list(values)
    texts = json.loads(_DATETIMES.dump_json(column, warnings=False))
    out: list[str | None] = []
    append = out.append
    for value, iso in zip(column, texts, strict=True):
        # "YYYY-MM-DDTHH:MM:SS[.ffffff]Z": pydantic writes "Z" only for a zero offset.
        size = len(iso) if type(iso) is str else 0
        if size == 27 and iso[26] == "Z":
            append(f"{iso[:10]} {iso[11:26]}")
        elif size == 20 and iso[19] == "Z":
            append(f"{iso[:10]} {iso[11:19]}.000000")
        else:
            append(None if value is None else _sqlite_utc_text(value))
    return out


def _utc(value: datetime) -> datetime:
    """``UtcDateTime`` on PostgreSQL: aware, in UTC."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


_MONEY_DIGITS = len(str(MONEY_SCALE)) - 1


def _money_units(value: Decimal | int) -> int:
    """``Money``: the amount in 1/10,000 units, refusing finer amounts."""
    scaled = (value if isinstance(value, Decimal) else Decimal(value)).scaleb(_MONEY_DIGITS)
    units = int(scaled)
    if units != scaled:
        raise ValueError(f"amount {value} has more than 4 decimal places")
    return units


def _processor(column: Column[Any], dialect: Dialect) -> Processor:
    kind = column.type
    if isinstance(kind, UtcDateTime):
        return _sqlite_utc_text if dialect.name == "sqlite" else _utc
    if isinstance(kind, Money):
        return _money_units
    # dialect_impl: the processor SQLAlchemy itself would use on this backend (e.g. psycopg's
    # JSON wrapper on PostgreSQL).
    result: Processor = kind.dialect_impl(dialect).bind_processor(dialect)
    return result


def _column_processor(
    column: Column[Any], dialect: Dialect
) -> Callable[[Sequence[Any]], list[Any]] | None:
    """A converter of a whole column where one is cheaper than a value at a time."""
    if isinstance(column.type, UtcDateTime) and dialect.name == "sqlite":
        return _sqlite_utc_texts
    return None


def _placeholder(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def store_values(column: Column[Any], values: Sequence[Any], dialect: Dialect) -> Sequence[Any]:
    """``values`` of ``column`` as the driver takes them (UTC text, money units ...),
    converted in one comprehension (a fraction of a loop over every value)."""
    process = _processor(column, dialect)
    if process is None or not values:
        return values
    first = values[0]
    if all(value is first for value in values):  # the write time, or None, everywhere
        return [None if first is None else process(first)] * len(values)
    if (whole := _column_processor(column, dialect)) is not None:
        return whole(values)
    return [None if value is None else process(value) for value in values]


@lru_cache(maxsize=8)
def dialect_named(name: str) -> Dialect:
    """A dialect object for a driver name (``sqlite``, ``postgresql+psycopg``), for
    converting values away from a connection (a pull worker prepares pages for the hub's
    store)."""
    dialect: Dialect = make_url(f"{name}://").get_dialect()()
    return dialect


def _driver_rows(
    conn: Connection,
    table: Table,
    columns: Mapping[str, Sequence[Any]],
    names: Sequence[str],
    stored: Collection[str] = (),
) -> list[tuple[Any, ...]]:
    """Driver tuples from values given column by column; ``stored`` names columns whose
    values are already as the driver takes them (``store_values``)."""
    dialect = conn.dialect
    converted = [
        columns[name] if name in stored else store_values(table.c[name], columns[name], dialect)
        for name in names
    ]
    return list(zip(*converted, strict=True))


def _columns(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    if len(names) == 1:
        return {names[0]: [row[names[0]] for row in rows]}
    transposed = zip(*map(itemgetter(*names), rows), strict=True)
    return {name: list(values) for name, values in zip(names, transposed, strict=True)}


def bulk_insert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) in one ``executemany``."""
    if rows:
        insert_columns(conn, table, _columns(rows, list(rows[0])))


def bulk_update(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *, key: str = "id"
) -> None:
    """Update rows by ``key`` (each mapping holds the key and the new values)."""
    if rows:
        update_columns(conn, table, _columns(rows, list(rows[0])), key=key)


def insert_columns(
    conn: Connection,
    table: Table,
    columns: Mapping[str, Sequence[Any]],
    *,
    stored: Collection[str] = (),
) -> None:
    """Insert rows given column by column (equal lengths) in one ``executemany``;
    ``stored`` names columns already converted by ``store_values``."""
    names = list(columns)
    if not names or not columns[names[0]]:
        return
    quote = conn.dialect.identifier_preparer.quote
    mark = _placeholder(conn)
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in names)}) "
        f"VALUES ({', '.join(mark for _ in names)})"
    )
    conn.exec_driver_sql(sql, _driver_rows(conn, table, columns, names, stored))


def update_columns(
    conn: Connection,
    table: Table,
    columns: Mapping[str, Sequence[Any]],
    *,
    key: str = "id",
    stored: Collection[str] = (),
) -> None:
    """Update rows by ``key``, given column by column (the key column included)."""
    if not columns.get(key):
        return
    names = [c for c in columns if c != key]
    quote = conn.dialect.identifier_preparer.quote
    mark = _placeholder(conn)
    sql = (
        f"UPDATE {quote(table.name)} SET {', '.join(f'{quote(c)} = {mark}' for c in names)} "
        f"WHERE {quote(key)} = {mark}"
    )
    conn.exec_driver_sql(sql, _driver_rows(conn, table, columns, [*names, key], stored))


@lru_cache(maxsize=256)
def _in_statement(sql: str, count: int, mark: str) -> str:
    return f"{sql.replace('?', mark)} ({', '.join(mark for _ in range(count))})"


def select_in(
    conn: Connection, sql: str, values: Iterable[Any], params: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` for every chunk of ``values``, as the driver returns them.

    ``sql`` uses ``?`` marks for ``params`` and ends with ``IN``; each chunk's marks are
    appended. Values come back unprocessed, so select keys, ids and hashes, not
    timestamps or money. Runs on the connection's own transaction.
    """
    mark = _placeholder(conn)
    rows: list[tuple[Any, ...]] = []
    cursor = conn.connection.cursor()
    try:
        for batch in chunks(values):
            cursor.execute(_in_statement(sql, len(batch), mark), (*params, *batch))
            rows.extend(cursor.fetchall())
    finally:
        cursor.close()
    return rows
