"""The few SQL fragments that differ between SQLite and PostgreSQL, and fast raw I/O.

Everything else in the stage engine is plain SQL that both run: window functions, ``ON CONFLICT``
upserts, temporary tables. Timestamps become UTC day numbers (days since 1970-01-01) in SQL, so
that "days since last order" means the same on both backends and needs no time-zone logic in
Python.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import count, islice
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, Dialect

from clm_hub.store.types import UtcDateTime

__all__ = [
    "EPOCH",
    "Backend",
    "day_of",
    "day_start",
    "today",
]

EPOCH: Final = dt.date(1970, 1, 1)
FETCH_ROWS: Final = 50_000
WRITE_ROWS: Final = 20_000


def today(now: dt.datetime) -> int:
    """The UTC day number of ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return (now.astimezone(dt.UTC).date() - EPOCH).days


def day_of(day: float) -> dt.date:
    """The calendar date of a day number."""
    return EPOCH + dt.timedelta(days=int(day))


def day_start(day: float) -> dt.datetime:
    """Midnight UTC at the start of a day number."""
    return dt.datetime.combine(day_of(day), dt.time(), tzinfo=dt.UTC)


class Backend:
    """Dialect-specific SQL text and raw DBAPI reads and writes for one connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect: Dialect = connection.dialect
        self.sqlite = self.dialect.name == "sqlite"
        if self.dialect.name not in {"sqlite", "postgresql"}:
            raise NotImplementedError(
                f"the stage engine supports SQLite and PostgreSQL, not {self.dialect.name}"
            )
        self.mark = "?" if self.sqlite else "%s"
        bind = UtcDateTime().bind_processor(self.dialect)
        self._bind_time: Callable[[dt.datetime], Any] = bind or (lambda value: value)
        if self.sqlite:  # the text SQLAlchemy stores, also at whole seconds (sqlite3's own
            # adapter drops '.000000' there, and equal instants would then compare unequal)
            self._bind_time = _sqlite_text
        self._day_cache: dict[int, Any] = {}
        self._cursor_names = count()

    # -- SQL text ---------------------------------------------------------------------------

    def day_number(self, column: str) -> str:
        """SQL for the UTC day number of a timestamp column."""
        if self.sqlite:
            # Stored as naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'; julianday of a date is x.5.
            return f"CAST(julianday(substr({column}, 1, 10)) - 2440587.5 AS INTEGER)"
        return f"(CAST(({column} AT TIME ZONE 'UTC') AS DATE) - DATE '1970-01-01')"

    def day_key(self, column: str) -> str:
        """SQL for a value that is equal exactly for timestamps on the same UTC day (cheap)."""
        return f"substr({column}, 1, 10)" if self.sqlite else self.day_number(column)

    def day_begin(self, column: str, *, days_later: int = 0) -> str:
        """SQL for midnight UTC starting the day of a timestamp column (or ``days_later``).

        On SQLite this is the date text 'YYYY-MM-DD', which sorts before every stored timestamp
        of that day and after every one of the day before, so it compares like the midnight.
        """
        if self.sqlite:
            if days_later:
                return f"date({column}, '+{int(days_later)} day')"
            return f"substr({column}, 1, 10)"
        return (
            f"((date_trunc('day', {column} AT TIME ZONE 'UTC') "
            f"+ INTERVAL '{int(days_later)} day') AT TIME ZONE 'UTC')"
        )

    def month_number(self, column: str) -> str:
        """SQL for year * 12 + month - 1 of a timestamp column, in UTC."""
        if self.sqlite:
            return (
                f"(CAST(substr({column}, 1, 4) AS INTEGER) * 12 "
                f"+ CAST(substr({column}, 6, 2) AS INTEGER) - 1)"
            )
        return (
            f"CAST(EXTRACT(YEAR FROM {column} AT TIME ZONE 'UTC') * 12 "
            f"+ EXTRACT(MONTH FROM {column} AT TIME ZONE 'UTC') - 1 AS INTEGER)"
        )

    @property
    def timestamp_type(self) -> str:
        return "TEXT" if self.sqlite else "TIMESTAMP WITH TIME ZONE"

    def create_temp(self, name: str, columns: str, key: str) -> None:
        """(Re)create a temporary table with a primary key (clustered on SQLite)."""
        self.drop_temp(name)
        suffix = " WITHOUT ROWID" if self.sqlite else ""
        self.execute(f"CREATE TEMPORARY TABLE {name} ({columns}, PRIMARY KEY ({key})){suffix}")

    def drop_temp(self, name: str) -> None:
        self.execute(f"DROP TABLE IF EXISTS {name}")

    def json_value(self, column: str) -> str:
        """A text column as a JSON value for insertion into a JSON column."""
        return column if self.sqlite else f"CAST({column} AS JSON)"

    def distinct(self, left: str, right: str) -> str:
        """SQL that is true when two values differ, NULL counting as a value."""
        return f"{left} IS NOT {right}" if self.sqlite else f"{left} IS DISTINCT FROM {right}"

    # -- values -----------------------------------------------------------------------------

    def time_value(self, moment: dt.datetime) -> Any:
        """``moment`` as the driver stores it in a UtcDateTime column."""
        return self._bind_time(moment)

    def day_value(self, day: float) -> Any:
        """Midnight UTC of a day number, as stored in a UtcDateTime column."""
        key = int(day)
        value = self._day_cache.get(key)
        if value is None:
            value = self._bind_time(day_start(key))  # once per day, not per row
            self._day_cache[key] = value
        return value

    def stamp_values(self, stamps: NDArray[np.bytes_] | None) -> list[Any]:
        """UTC timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' bytes (empty: none) as the driver
        stores them: that very text on SQLite, the text with its offset on PostgreSQL (which
        would otherwise read it in the session's time zone)."""
        if stamps is None:
            raise ValueError("these features carry no order timestamps")
        suffix = "" if self.sqlite else "+00"
        return [text.decode() + suffix if text else None for text in stamps.tolist()]

    # -- raw I/O ----------------------------------------------------------------------------

    @contextmanager
    def _cursor(
        self, sql: str, params: Sequence[Any] = (), *, stream: bool = False
    ) -> Iterator[Any]:
        """A DBAPI cursor that has run ``sql`` (``?`` parameters), closed afterwards.

        ``stream``: rows are read as they are fetched. SQLite's cursors always do; psycopg's
        plain cursor would hold the whole result in memory, so a named (server-side) one is used.
        """
        if stream and not self.sqlite:
            name = f"clm_hub_stream_{next(self._cursor_names)}"
            cursor = self.connection.connection.cursor(name=name)
        else:
            cursor = self.connection.connection.cursor()
        try:
            if params:
                cursor.execute(self._marks(sql), tuple(params))
            else:
                cursor.execute(sql)
            yield cursor
        finally:
            cursor.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement with ``?`` parameters; returns the affected row count."""
        with self._cursor(sql, params) as cursor:
            return int(cursor.rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Insert rows in batches of ``WRITE_ROWS``; returns how many were written."""
        cursor = self.connection.connection.cursor()
        statement = self._marks(sql)
        written = 0
        remaining = iter(rows)
        try:
            while batch := list(islice(remaining, WRITE_ROWS)):
                cursor.executemany(statement, batch)
                written += len(batch)
        finally:
            cursor.close()
        return written

    def fetch_floats(self, sql: str, params: Sequence[Any] = ()) -> NDArray[np.float64]:
        """All rows of a numeric query as a float matrix (NULL becomes NaN), read in batches."""
        chunks = list(self.iter_float_batches(sql, params))
        if not chunks:
            return np.zeros((0, 0), dtype=np.float64)
        return np.concatenate(chunks, axis=0)

    def iter_float_batches(
        self, sql: str, params: Sequence[Any] = ()
    ) -> Generator[NDArray[np.float64], None, None]:
        with self._cursor(sql, params, stream=True) as cursor:
            width = len(cursor.description or ())
            while rows := cursor.fetchmany(FETCH_ROWS):
                yield np.array(rows, dtype=np.float64).reshape(len(rows), width)

    def fetch_ints(self, sql: str, params: Sequence[Any] = ()) -> NDArray[np.int64]:
        """The first column of every row, as integers (no NULLs), read in batches."""
        chunks = [
            np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
            for rows in self.iter_row_batches(sql, FETCH_ROWS, params)
        ]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)

    def iter_row_batches(
        self, sql: str, size: int, params: Sequence[Any] = ()
    ) -> Generator[Sequence[Any], None, None]:
        """The rows of a query as the driver returns them, ``size`` at a time (streamed: on
        PostgreSQL through a server-side cursor, which also works while other statements run)."""
        with self._cursor(sql, params, stream=True) as cursor:
            while rows := cursor.fetchmany(size):
                yield rows

    def fetch_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._cursor(sql, params) as cursor:
            return [tuple(row) for row in cursor.fetchall()]

    def _marks(self, sql: str) -> str:
        """``?`` placeholders in psycopg's style (the SQL here never contains ``?`` or ``%``)."""
        return sql if self.sqlite else sql.replace("?", "%s")


def _sqlite_text(moment: dt.datetime) -> str:
    """A UTC timestamp as SQLAlchemy writes it to SQLite: naive UTC, six fraction digits."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
