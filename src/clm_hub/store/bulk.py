"""Bulk inserts and updates with one driver-level ``executemany``.

SQLAlchemy Core compiles and processes parameters per row for ``execute(insert(t), rows)``,
which costs more than the database's own work on large pages. These helpers build the
statement once, apply the columns' own bind processors (so values are stored exactly as
the ORM would store them: UTC timestamps, scaled money, JSON) and hand the driver plain
tuples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table

__all__ = ["bulk_insert", "bulk_update"]

Processor = Callable[[Any], Any] | None


def _placeholder(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _processors(conn: Connection, table: Table, columns: Sequence[str]) -> list[Processor]:
    # dialect_impl: the processor SQLAlchemy itself would use on this backend (e.g. the
    # exact text format of timestamps on SQLite, psycopg's JSON wrapper on PostgreSQL).
    dialect = conn.dialect
    return [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]


def _values(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], processors: Sequence[Processor]
) -> list[tuple[Any, ...]]:
    pairs = list(zip(columns, processors, strict=True))
    return [
        tuple(
            value if process is None or value is None else process(value)
            for name, process in pairs
            for value in (row[name],)
        )
        for row in rows
    ]


def bulk_insert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) in one ``executemany``."""
    if not rows:
        return
    columns = list(rows[0])
    quote = conn.dialect.identifier_preparer.quote
    mark = _placeholder(conn)
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(mark for _ in columns)})"
    )
    conn.exec_driver_sql(sql, _values(rows, columns, _processors(conn, table, columns)))


def bulk_update(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *, key: str = "id"
) -> None:
    """Update rows by ``key`` (each mapping holds the key and the new values)."""
    if not rows:
        return
    columns = [c for c in rows[0] if c != key]
    quote = conn.dialect.identifier_preparer.quote
    mark = _placeholder(conn)
    sql = (
        f"UPDATE {quote(table.name)} SET {', '.join(f'{quote(c)} = {mark}' for c in columns)} "
        f"WHERE {quote(key)} = {mark}"
    )
    ordered = [*columns, key]
    conn.exec_driver_sql(sql, _values(rows, ordered, _processors(conn, table, ordered)))
