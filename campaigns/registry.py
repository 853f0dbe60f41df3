"""The subscriber registry read from CSV by streaming, and the CSV reading it shares.

Registry files (`dispatcher subscribers import`): a header row, then one subscriber per row.
- `msisdn` (required): a Vietnamese mobile number in any written form; old 11-digit numbers
  are converted to their 10-digit successors.
- `area_code` (required): the GSO code the subscriber is registered under, an area on record.
- `status` (optional, default `active`): one lowercase word (active, inactive, suspended…);
  campaigns reach `active` subscribers only.
Any other column is ignored and named in the summary. Header names are matched in any case.

The import is an upsert on msisdn: re-importing a file changes nothing, a number written on
several rows takes the last valid one, and subscribers the file does not mention are left as
they are (send them as `inactive` to stop reaching them). Rows are staged chunk by chunk in a
temporary table (COPY on PostgreSQL) and merged in one statement at the end, inside the
caller's transaction: memory stays flat whatever the file's size, and the registry changes all
at once or not at all.

Number files (read here for `optouts` and `recipient_lists`): one number per row, in the first
column or in the column a header row names `msisdn`; opt-out files may name a `source` column
too. Rejected rows are never dropped silently: each is handed back with its line, raw value and
reason. Nothing here logs a number.
"""

import csv
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol, TypeVar, cast

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel, select

from campaigns import audit
from campaigns.errors import InvalidInput
from campaigns.models import Area, User
from campaigns.numbers import try_normalise

CHUNK_ROWS: Final = 20_000
LIST_CHUNK_ROWS: Final = 5_000  # a multi-row INSERT of this many stays under every bind limit
REQUIRED_COLUMNS: Final = ("msisdn", "area_code")
OPTIONAL_COLUMNS: Final = ("status",)
DEFAULT_STATUS: Final = "active"
UNKNOWN_AREA: Final = "unknown_area"
INVALID_STATUS: Final = "invalid_status"
_STATUS: Final = re.compile(r"[a-z][a-z_-]{0,15}")

_SUBSCRIBER: Final = SQLModel.metadata.tables["subscriber"]
# Rows of the import under way, on this connection only.
_STAGING: Final = sa.Table(
    "subscriber_import",
    sa.MetaData(),
    sa.Column("line", sa.BigInteger, nullable=False),
    sa.Column("msisdn", sa.String(16), nullable=False),
    sa.Column("area_code", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    prefixes=["TEMPORARY"],
)

T = TypeVar("T")


class RowRejection(NamedTuple):
    """A row not taken: its line in the file, the column, the raw value and why."""

    line: int
    column: str
    raw: str
    reason: str


class SubscriberRow(NamedTuple):
    line: int
    msisdn: str
    area_code: str
    status: str


class NumberRow(NamedTuple):
    line: int
    msisdn: str
    source: str


OnRejection = Callable[[RowRejection], None]


class _Reader(Protocol):
    # What csv.reader returns: rows, and the number of the last line read.
    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...
    def __next__(self) -> list[str]: ...


@dataclass
class Staged:
    """A registry file read into the staging table, not yet merged."""

    read: int = 0
    staged: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    ignored_columns: list[str] = field(default_factory=list)


@dataclass
class ImportSummary(Staged):
    """What an import did. `duplicates`: rows superseded by a later row of the same number."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of up to `size` consecutive items, taken lazily."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


# --- The subscriber registry --------------------------------------------------------------------


def stage_subscribers(
    *,
    session: Session,
    lines: Iterable[str],
    on_rejection: OnRejection | None = None,
    on_chunk: Callable[[Staged], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Staged:
    """Read a registry CSV into the staging table, `chunk_rows` rows at a time."""
    known = set(session.exec(select(Area.code).distinct()).all())
    connection = session.connection()
    _STAGING.drop(connection, checkfirst=True)
    _STAGING.create(connection)
    staged = Staged()
    reader = csv.reader(lines)
    for chunk in chunks(_subscriber_rows(reader, known, staged), chunk_rows):
        rows = [row for row in chunk if isinstance(row, SubscriberRow)]
        for row in chunk:
            if isinstance(row, RowRejection):
                staged.rejected[row.reason] += 1
                if on_rejection is not None:
                    on_rejection(row)
        _stage(connection, rows)
        staged.read += len(chunk)
        staged.staged += len(rows)
        if on_chunk is not None:
            on_chunk(staged)
    return staged


def merge_subscribers(*, session: Session, staged: Staged, actor: User | str) -> ImportSummary:
    """Upsert the staged rows into the registry, the last row of a number winning."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # Writers wait (readers do not), so the counts below are this import's alone.
        connection.execute(sa.text("LOCK TABLE subscriber IN SHARE ROW EXCLUSIVE MODE"))
    count_subscribers = sa.select(sa.func.count()).select_from(_SUBSCRIBER)
    before = connection.execute(count_subscribers).scalar_one()
    distinct = connection.execute(
        sa.select(sa.func.count(sa.distinct(_STAGING.c.msisdn)))
    ).scalar_one()
    changed = rows_written(connection, _upsert_latest(connection))
    inserted = connection.execute(count_subscribers).scalar_one() - before
    _STAGING.drop(connection)
    summary = ImportSummary(
        **vars(staged),
        inserted=inserted,
        updated=changed - inserted,
        unchanged=distinct - changed,
        duplicates=staged.staged - distinct,
    )
    counts = {k: getattr(summary, k) for k in ("read", "inserted", "updated", "unchanged")}
    audit.record(
        session=session,
        actor=actor,
        action="subscribers.import",
        subject="subscriber",
        details=counts | {"rejected": sum(summary.rejected.values())},
    )
    return summary


def import_subscribers(
    *,
    session: Session,
    lines: Iterable[str],
    actor: User | str,
    on_rejection: OnRejection | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportSummary:
    """Stage a registry CSV and merge it (see the module docstring); the caller commits."""
    staged = stage_subscribers(
        session=session, lines=lines, on_rejection=on_rejection, chunk_rows=chunk_rows
    )
    return merge_subscribers(session=session, staged=staged, actor=actor)


def _subscriber_rows(
    reader: _Reader, known_areas: set[str], staged: Staged
) -> Iterator[SubscriberRow | RowRejection]:
    names = [name.strip().lower() for name in next(reader, [])]
    if missing := [name for name in REQUIRED_COLUMNS if name not in names]:
        raise InvalidInput(f"the header row has no {' or '.join(missing)} column")
    staged.ignored_columns = [
        name for name in names if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    ]
    at_msisdn, at_area = names.index("msisdn"), names.index("area_code")
    at_status = names.index("status") if "status" in names else None
    width = len(names)
    for row in _rows(reader):
        row += [""] * (width - len(row))
        line = reader.line_num
        msisdn, why = try_normalise(row[at_msisdn])
        area, status = row[at_area].strip(), DEFAULT_STATUS
        if at_status is not None:
            status = row[at_status].strip().lower() or DEFAULT_STATUS
        if why is not None:
            yield RowRejection(line, "msisdn", row[at_msisdn], why.value)
        elif area not in known_areas:
            yield RowRejection(line, "area_code", row[at_area], UNKNOWN_AREA)
        elif not _STATUS.fullmatch(status):
            yield RowRejection(line, "status", row[cast(int, at_status)], INVALID_STATUS)
        else:
            yield SubscriberRow(line, cast(str, msisdn), area, status)


def _rows(reader: _Reader) -> Iterator[list[str]]:
    # The rows of a CSV reader, blank lines left out; a malformed file is the caller's error.
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                yield row
    except csv.Error as error:
        raise InvalidInput(f"line {reader.line_num}: not valid CSV ({error})") from error


def _stage(connection: sa.Connection, rows: list[SubscriberRow]) -> None:
    if not rows:
        return
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        driver = cast(psycopg.Connection[Any], connection.connection.driver_connection)
        columns = ", ".join(c.name for c in _STAGING.columns)
        with driver.cursor() as cursor:
            with cursor.copy(f"COPY {_STAGING.name} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    else:
        connection.execute(sa.insert(_STAGING), [row._asdict() for row in rows])


def _upsert_latest(connection: sa.Connection) -> sa.Executable:
    # INSERT … SELECT the last staged row of each number … ON CONFLICT DO UPDATE, only where
    # something differs, so the row count is the inserted plus the updated subscribers.
    ranked = sa.select(
        _STAGING.c.msisdn,
        _STAGING.c.area_code,
        _STAGING.c.status,
        sa.func.row_number()
        .over(partition_by=_STAGING.c.msisdn, order_by=_STAGING.c.line.desc())
        .label("rank"),
    ).subquery()
    latest = sa.select(ranked.c.msisdn, ranked.c.area_code, ranked.c.status).where(
        ranked.c.rank == 1
    )
    statement = dialect_insert(connection, _SUBSCRIBER).from_select(
        ["msisdn", "area_code", "status"], latest
    )
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[_SUBSCRIBER.c.msisdn],
        set_={"area_code": excluded.area_code, "status": excluded.status},
        where=sa.or_(
            _SUBSCRIBER.c.area_code.is_distinct_from(excluded.area_code),
            _SUBSCRIBER.c.status.is_distinct_from(excluded.status),
        ),
    )


# --- Shared with opt-outs and recipient lists: number files, upserts ----------------------------


def number_rows(lines: Iterable[str], source: str = "") -> Iterator[NumberRow | RowRejection]:
    """The numbers of a one-number-per-row CSV, normalised, or why each row was not taken."""
    reader = csv.reader(lines)
    at_number, at_source = 0, None
    for index, row in enumerate(_rows(reader)):
        names = [cell.strip().lower() for cell in row]
        if index == 0 and "msisdn" in names:  # a header row
            at_number = names.index("msisdn")
            at_source = names.index("source") if "source" in names else None
            continue
        raw = row[at_number] if at_number < len(row) else ""
        msisdn, why = try_normalise(raw)
        if msisdn is None:
            yield RowRejection(reader.line_num, "msisdn", raw, str(why))
            continue
        given = row[at_source].strip() if at_source is not None and at_source < len(row) else ""
        yield NumberRow(reader.line_num, msisdn, given or source)


def rows_written(connection: sa.Connection, statement: sa.Executable) -> int:
    """The rows an INSERT wrote (SQLAlchemy keeps an INSERT's row count only when asked to)."""
    result = connection.execute(statement.execution_options(preserve_rowcount=True))
    return int(result.rowcount)


def dialect_insert(connection: sa.Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT of the connection's dialect, so that ON CONFLICT can be written."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    if connection.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for {connection.dialect.name}")
