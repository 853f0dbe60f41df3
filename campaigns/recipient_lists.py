"""Recipient lists uploaded by an authority's submitter, and who may read them.

Uploads are read by `registry.number_rows` chunk by chunk: each number is stored once, and
each rejected row is kept with its line, raw value and reason for the authority to fix.

A list stays inside the rules that bind an authority's area targets: it may hold only active
subscribers registered in the authority's areas. Other numbers are rejected with the reason
`not_registered`, `inactive` or `outside_areas` (and shown as their E.164 form). An authority
explicitly granted off-registry lists (`Authority.off_registry_lists`, an audited setting of
the operator admin) may list any valid Vietnamese mobile. The expansion applies the same rule
again when the campaign is sent (see `targeting`), for subscribers who changed since.
"""

from collections.abc import Iterable, Iterator
from typing import Final

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from campaigns import areas, audit
from campaigns.errors import NotFound, PermissionDenied
from campaigns.models import (
    Authority,
    RecipientList,
    RecipientListRejection,
    Role,
    Subscriber,
    User,
)
from campaigns.registry import (
    LIST_CHUNK_ROWS,
    NumberRow,
    RowRejection,
    chunks,
    dialect_insert,
    number_rows,
    rows_written,
)

RAW_STORED: Final = 200  # characters of a rejected value kept in the database
_ENTRY: Final = SQLModel.metadata.tables["recipient_list_entry"]
_REJECTION: Final = SQLModel.metadata.tables["recipient_list_rejection"]


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
    authority = session.get(Authority, actor.authority_id)
    assert authority is not None
    allowed = None if authority.off_registry_lists else set(areas.resolve(session, authority.areas))
    recipients = RecipientList(authority_id=actor.authority_id, name=name, created_by_id=actor.id)
    session.add(recipients)
    session.flush()
    list_id = recipients.id
    connection = session.connection()
    valid = 0
    for chunk in chunks(number_rows(lines), chunk_rows):
        rows = [row for row in chunk if isinstance(row, NumberRow)]
        rejected = [row for row in chunk if isinstance(row, RowRejection)]
        if allowed is not None:
            rows, outside = _inside_the_rules(session, rows, allowed)
            rejected += outside
        numbers = [row.msisdn for row in rows]
        valid += len(numbers)
        if numbers:
            values = [{"list_id": list_id, "msisdn": n} for n in dict.fromkeys(numbers)]
            statement = dialect_insert(connection, _ENTRY).values(values)
            recipients.accepted += rows_written(connection, statement.on_conflict_do_nothing())
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


def _inside_the_rules(
    session: Session, rows: list[NumberRow], allowed: set[str]
) -> tuple[list[NumberRow], list[RowRejection]]:
    """The rows that are active subscribers in the allowed areas, and the others with why."""
    numbers = list({row.msisdn for row in rows})
    registered = {
        msisdn: (area_code, status)
        for msisdn, area_code, status in session.exec(
            select(Subscriber.msisdn, Subscriber.area_code, Subscriber.status).where(
                col(Subscriber.msisdn).in_(numbers)
            )
        )
    }
    kept: list[NumberRow] = []
    refused: list[RowRejection] = []
    for row in rows:
        found = registered.get(row.msisdn)
        if found is None:
            reason = "not_registered"
        elif found[1] != "active":
            reason = "inactive"
        elif found[0] not in allowed:
            reason = "outside_areas"
        else:
            kept.append(row)
            continue
        refused.append(RowRejection(row.line, "msisdn", row.msisdn, reason))
    return kept, refused


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
