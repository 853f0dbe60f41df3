"""The statements every message goes through, run many rows at a time below SQLAlchemy.

SQLAlchemy Core spends a few microseconds per row of an executemany on parameter dictionaries
and type processors. On the handful of statements each message passes through (its part
stored, its submit answer, its receipt), at thousands of messages a second, that was a large
share of a worker's CPU. Rows here are tuples, and timestamps go in as the column stores them
(SQLite: the text SQLAlchemy writes; PostgreSQL: an aware datetime).

On SQLite the rows go in one statement per chunk (`VALUES (…), (…)` joined to the table), not
the driver's executemany: executemany releases and takes back the GIL around every row, and
with the bind thread running Python each take-back could wait for the switch interval, so a
transaction of a thousand answers held SQLite's write lock for a tenth of a second while the
other worker's claims waited.

On PostgreSQL the rows go as one array per column into one statement (`unnest`): psycopg's
executemany, pipelined, still had the server plan and run the statement once per row, and the
server's CPU is what bounds the rate there (two thirds of the machine at full speed).
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection

_SQLITE_STAMP = "%Y-%m-%d %H:%M:%S.%f"  # what SQLAlchemy's SQLite DATETIME stores
# Rows per statement on SQLite, largest first: a few fixed sizes, so that SQLite's statement
# cache holds a few dozen compiled statements, not one per row count (which grew a worker's
# memory by a hundred megabytes over a long campaign). 512 × 6 is far below its 32,766 limit.
_SIZES = (512, 256, 128, 64, 32, 16, 8, 4, 2, 1)


@dataclass(frozen=True)
class Statement:
    """One statement for many rows at once, in SQLite's form and PostgreSQL's.

    `joined` (SQLite) has `{rows}` where the rows go as `row`, repeated, with `?`
    placeholders; an UPDATE reads them as `v.column1`, `v.column2`… `arrays` (PostgreSQL)
    takes one array parameter per column, `%s::type[]`. When `key` is a column number, rows
    that name the same target are applied once, the first one, as running the statement row
    by row would.
    """

    joined: str
    row: str
    arrays: str
    key: int | None = None


def run(connection: Connection, statement: Statement, rows: list[tuple[Any, ...]]) -> None:
    """Execute `statement` for every row, in one driver call per chunk."""
    if not rows:
        return
    if statement.key is not None:
        rows = list({row[statement.key]: row for row in reversed(rows)}.values())
    if connection.dialect.name != "sqlite":
        columns = tuple(list(column) for column in zip(*rows, strict=True))
        connection.exec_driver_sql(statement.arrays, columns)
        return
    start = 0
    while start < len(rows):
        size = next(size for size in _SIZES if size <= len(rows) - start)
        chunk = rows[start : start + size]
        connection.exec_driver_sql(_joined(statement, size), tuple(v for row in chunk for v in row))
        start += size


@cache
def _joined(statement: Statement, count: int) -> str:
    return statement.joined.format(rows=", ".join([statement.row] * count))


def stamper(connection: Connection) -> Any:
    """A function from epoch seconds to the value a timestamp column takes on this database."""
    if connection.dialect.name == "sqlite":
        return lambda seconds: datetime.fromtimestamp(seconds, UTC).strftime(_SQLITE_STAMP)
    return lambda seconds: datetime.fromtimestamp(seconds, UTC)


def stamp(connection: Connection, at: datetime) -> Any:
    """An aware datetime as a timestamp column takes it on this database."""
    at = at.astimezone(UTC)
    return at.strftime(_SQLITE_STAMP) if connection.dialect.name == "sqlite" else at
