"""Opt-outs: numbers left out of non-urgent campaigns, one at a time or from a CSV file.

Opt-out files are read by `registry.number_rows` (a `msisdn` and an optional `source` column).
Nothing here logs a number; audit subjects show it masked.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from sqlmodel import Session, SQLModel

from campaigns import audit
from campaigns.errors import InvalidInput, NotFound, PermissionDenied
from campaigns.models import OptOut, Role, User, utcnow
from campaigns.numbers import NumberRejected, mask, normalise_msisdn
from campaigns.registry import (
    LIST_CHUNK_ROWS,
    NumberRow,
    OnRejection,
    chunks,
    dialect_insert,
    number_rows,
    rows_written,
)

_OPERATORS: Final = (Role.OPERATOR, Role.ADMIN)
_OPT_OUT: Final = SQLModel.metadata.tables["opt_out"]


@dataclass
class NumbersSummary:
    """What an opt-out import did."""

    read: int = 0
    added: int = 0
    unchanged: int = 0  # already opted out, or repeated in the file
    rejected: Counter[str] = field(default_factory=Counter)


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
    statement = dialect_insert(connection, _OPT_OUT).values(
        msisdn=number, source=source, created_at=utcnow()
    )
    added = rows_written(connection, statement.on_conflict_do_nothing()) == 1
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
            statement = dialect_insert(connection, _OPT_OUT).values(values)
            summary.added += rows_written(connection, statement.on_conflict_do_nothing())
    summary.unchanged = summary.read - sum(summary.rejected.values()) - summary.added
    details = {"read": summary.read, "added": summary.added, "source": source}
    audit.record(
        session=session, actor=actor, action="opt_out.import", subject="opt_out", details=details
    )
    return summary
