"""The subscriber registry, opt-outs and uploaded recipient lists, read from CSV by streaming.

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

Number files (opt-outs, recipient lists): one number per row, in the first column or in the
column a header row names `msisdn`; opt-out files may name a `source` column too.
Rejected rows are never dropped silently: each is handed back with its line, raw value and
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
from sqlmodel import Session, SQLModel, col, select

from campaigns import audit
from campaigns.errors import InvalidInput, NotFound, PermissionDenied
from campaigns.models import Area, OptOut, RecipientList, RecipientListRejection, Role, User, utcnow
from campaigns.numbers import NumberRejected, mask, normalise_msisdn, try_normalise

CHUNK_ROWS: Final = 20_000
LIST_CHUNK_ROWS: Final = 5_000  # a multi-row INSERT of this many stays under every bind limit
REQUIRED_COLUMNS: Final = ("msisdn", "area_code")
OPTIONAL_COLUMNS: Final = ("status",)
DEFAULT_STATUS: Final = "active"
UNKNOWN_AREA: Final = "unknown_area"
INVALID_STATUS: Final = "invalid_status"
RAW_STORED: Final = 200  # characters of a rejected value kept in the database
_STATUS: Final = re.compile(r"[a-z][a-z_-]{0,15}")
_OPERATORS: Final = (Role.OPERATOR, Role.ADMIN)

_SUBSCRIBER: Final = SQLModel.metadata.tables["subscriber"]
_OPT_OUT: Final = SQLModel.metadata.tables["opt_out"]
_ENTRY: Final = SQLModel.metadata.tables["recipient_list_entry"]
_REJECTION: Final = SQLModel.metadata.tables["recipient_list_rejection"]
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


@dataclass
class NumbersSummary:
    """What an opt-out import did."""

    read: int = 0
    added: int = 0
    unchanged: int = 0  # already opted out, or repeated in the file
    rejected: Counter[str] = field(default_factory=Counter)


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
    changed = _written(connection, _upsert_latest(connection))
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
    statement = _dialect_insert(connection, _SUBSCRIBER).from_select(
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


def _written(connection: sa.Connection, statement: sa.Executable) -> int:
    # The rows an INSERT wrote; SQLAlchemy keeps an INSERT's row count only when asked to.
    result = connection.execute(statement.execution_options(preserve_rowcount=True))
    return int(result.rowcount)


def _dialect_insert(
    connection: sa.Connection, table: sa.Table
) -> postgresql.Insert | sqlite.Insert:
    # INSERT … ON CONFLICT is written per dialect.
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    if connection.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for {connection.dialect.name}")


# --- Number files: opt-outs and recipient lists -------------------------------------------------


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


def _require_operator(actor: User) -> None:
    if actor.role not in _OPERATORS:
        raise PermissionDenied("only an operator or an admin manages opt-outs")


def _normalised(raw: str) -> str:
    try:
        return normalise_msisdn(raw)
    except NumberRejected as error:  # its message masks the number
        raise InvalidInput(f"msisdn: {error}") from error


def get_opt_out(*, session: Session, msisdn: str, actor: User) -> OptOut:
    """The opt-out of a number written in any form."""
    _require_operator(actor)
    number = _normalised(msisdn)
    opt_out = session.get(OptOut, number)
    if opt_out is None:
        raise NotFound(f"{mask(number)} has not opted out")
    return opt_out


def add_opt_out(*, session: Session, msisdn: str, source: str, actor: User) -> tuple[OptOut, bool]:
    """Leave a number out of non-urgent campaigns; return the opt-out and whether it is new."""
    _require_operator(actor)
    number = _normalised(msisdn)
    connection = session.connection()
    statement = _dialect_insert(connection, _OPT_OUT).values(
        msisdn=number, source=source, created_at=utcnow()
    )
    added = _written(connection, statement.on_conflict_do_nothing()) == 1
    if added:
        _audit_opt_out(session, actor, "opt_out.add", number, source)
    opt_out = session.get(OptOut, number, populate_existing=True)
    assert opt_out is not None
    return opt_out, added


def remove_opt_out(*, session: Session, msisdn: str, actor: User) -> None:
    """Let a number receive non-urgent campaigns again."""
    opt_out = get_opt_out(session=session, msisdn=msisdn, actor=actor)
    session.delete(opt_out)
    session.flush()
    _audit_opt_out(session, actor, "opt_out.remove", opt_out.msisdn, opt_out.source)


def _audit_opt_out(session: Session, actor: User, action: str, msisdn: str, source: str) -> None:
    subject = f"opt_out:{mask(msisdn)}"
    audit.record(
        session=session, actor=actor, action=action, subject=subject, details={"source": source}
    )


def import_opt_outs(
    *,
    session: Session,
    lines: Iterable[str],
    source: str,
    actor: User | str,
    on_rejection: OnRejection | None = None,
    chunk_rows: int = LIST_CHUNK_ROWS,
) -> NumbersSummary:
    """Add the numbers of a CSV to the opt-outs; those already there keep their first record."""
    summary = NumbersSummary()
    connection = session.connection()
    for chunk in chunks(number_rows(lines, source), chunk_rows):
        summary.read += len(chunk)
        numbers: dict[str, str] = {}
        for row in chunk:
            if isinstance(row, NumberRow):
                numbers.setdefault(row.msisdn, row.source)
            else:
                summary.rejected[row.reason] += 1
                if on_rejection is not None:
                    on_rejection(row)
        if numbers:
            now = utcnow()
            values = [{"msisdn": n, "source": s, "created_at": now} for n, s in numbers.items()]
            statement = _dialect_insert(connection, _OPT_OUT).values(values)
            summary.added += _written(connection, statement.on_conflict_do_nothing())
    summary.unchanged = summary.read - sum(summary.rejected.values()) - summary.added
    details = {"read": summary.read, "added": summary.added, "source": source}
    audit.record(
        session=session, actor=actor, action="opt_out.import", subject="opt_out", details=details
    )
    return summary


def create_recipient_list(
    *,
    session: Session,
    name: str,
    lines: Iterable[str],
    actor: User,
    chunk_rows: int = LIST_CHUNK_ROWS,
) -> tuple[RecipientList, int]:
    """Store an uploaded list for the actor's authority; return it and how many rows repeated."""
    if actor.role != Role.SUBMITTER or actor.authority_id is None:
        raise PermissionDenied("only a submitter of an authority uploads recipient lists")
    assert actor.id is not None
    recipients = RecipientList(authority_id=actor.authority_id, name=name, created_by_id=actor.id)
    session.add(recipients)
    session.flush()
    list_id = recipients.id
    connection = session.connection()
    valid = 0
    for chunk in chunks(number_rows(lines), chunk_rows):
        numbers = [row.msisdn for row in chunk if isinstance(row, NumberRow)]
        rejected = [row for row in chunk if isinstance(row, RowRejection)]
        valid += len(numbers)
        if numbers:
            values = [{"list_id": list_id, "msisdn": n} for n in dict.fromkeys(numbers)]
            statement = _dialect_insert(connection, _ENTRY).values(values)
            recipients.accepted += _written(connection, statement.on_conflict_do_nothing())
        if rejected:
            connection.execute(sa.insert(_REJECTION), [_rejection(list_id, r) for r in rejected])
            recipients.rejected += len(rejected)
    session.add(recipients)
    session.flush()
    duplicates = valid - recipients.accepted
    details = {"name": name, "accepted": recipients.accepted, "rejected": recipients.rejected}
    audit.record(
        session=session,
        actor=actor,
        action="recipient_list.create",
        subject=f"recipient_list:{list_id}",
        details=details | {"duplicates": duplicates},
    )
    return recipients, duplicates


def _rejection(list_id: int | None, row: RowRejection) -> dict[str, object]:
    return {"list_id": list_id, "line": row.line, "raw": row.raw[:RAW_STORED], "reason": row.reason}


def get_recipient_list(*, session: Session, list_id: int, actor: User) -> RecipientList:
    """The list, if `actor` may see it: its authority's people, operators, auditors, admins."""
    recipients = session.get(RecipientList, list_id)
    if recipients is None or (
        actor.authority_id is not None and recipients.authority_id != actor.authority_id
    ):
        raise NotFound(f"recipient list {list_id} not found")
    return recipients


def list_rejections(
    *, session: Session, recipients: RecipientList, after_line: int = 0, limit: int | None = None
) -> Iterator[RecipientListRejection]:
    """The list's rejected rows in line order, after `after_line`, streamed from the database."""
    statement = (
        select(RecipientListRejection)
        .where(
            RecipientListRejection.list_id == recipients.id,
            col(RecipientListRejection.line) > after_line,
        )
        .order_by(col(RecipientListRejection.line))
        .limit(limit)
        .execution_options(yield_per=1000)
    )
    yield from session.exec(statement)
