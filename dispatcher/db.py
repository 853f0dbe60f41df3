"""Database engine and sessions; SQLite tuned for one writer at a time."""

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine

from dispatcher.settings import get_settings


def make_engine(url: str) -> Engine:
    """An engine for `url`; on SQLite with WAL, a busy timeout and write-locking transactions.

    Statement parameters are never rendered into errors or logs (`hide_parameters`): they may
    be subscriber numbers.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=10, hide_parameters=True
        )
    if parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 60}, hide_parameters=True
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy issue BEGIN itself (see _sqlite_on_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    # Take the write lock up front: a deferred transaction that reads and then writes can
    # fail at once with SQLITE_BUSY instead of waiting for the other writer. A connection
    # marked read-only (see `reading`) reads a snapshot instead, without waiting for writers.
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("BEGIN DEFERRED")
    else:
        _begin_immediate(connection.connection.dbapi_connection)


LOCK_POLL = 0.001  # seconds between two tries for SQLite's write lock
LOCK_WAIT = 60.0


def _begin_immediate(dbapi_connection: Any) -> None:
    """BEGIN IMMEDIATE, trying for the write lock every millisecond.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25… ms between tries, so a writer
    waiting for another's transaction (one worker's claim behind another's store) woke up to
    25 ms after the lock was free, and the lock sat idle meanwhile.
    """
    dbapi_connection.execute("PRAGMA busy_timeout=0")
    deadline = time.monotonic() + LOCK_WAIT
    try:
        while True:
            try:
                dbapi_connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
            time.sleep(LOCK_POLL)
    finally:
        dbapi_connection.execute("PRAGMA busy_timeout=60000")


READ_ONLY = "dispatcher_read_only"


def reading(engine: Engine) -> Engine:
    """The same engine for transactions that only read (on SQLite they need no write lock)."""
    return engine.execution_options(**{READ_ONLY: True})


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    return make_engine(get_settings().effective_database_url)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
