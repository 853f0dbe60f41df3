"""The statements every message goes through, run as the driver's own executemany.

SQLAlchemy Core spends a few microseconds per row of an executemany on parameter dictionaries
and type processors. On the handful of statements each message passes through (its part
stored, its submit answer, its receipt), at thousands of messages a second, that was a large
share of a worker's CPU. These statements are plain SQL that SQLite and PostgreSQL both
accept, written with `?` placeholders; rows are tuples; timestamps go in as the column type
would store them (SQLite: the same text SQLAlchemy writes, PostgreSQL: an aware datetime).
"""

from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection

_SQLITE_STAMP = "%Y-%m-%d %H:%M:%S.%f"  # what SQLAlchemy's SQLite DATETIME stores


def run(connection: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Execute `sql` once per row, in one driver call."""
    if rows:
        connection.exec_driver_sql(_for_driver(sql, connection.dialect.paramstyle), rows)


@cache
def _for_driver(sql: str, paramstyle: str) -> str:
    return sql if paramstyle == "qmark" else sql.replace("?", "%s")


def stamper(connection: Connection) -> Any:
    """A function from epoch seconds to the value a timestamp column takes on this database."""
    if connection.dialect.name == "sqlite":
        return lambda seconds: datetime.fromtimestamp(seconds, UTC).strftime(_SQLITE_STAMP)
    return lambda seconds: datetime.fromtimestamp(seconds, UTC)


def stamp(connection: Connection, at: datetime) -> Any:
    """An aware datetime as a timestamp column takes it on this database."""
    at = at.astimezone(UTC)
    return at.strftime(_SQLITE_STAMP) if connection.dialect.name == "sqlite" else at
