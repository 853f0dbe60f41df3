"""Claims and answers in the database, in bulk: queued → submitting → answered, and in doubt.

The in-doubt rule lives here. A message is `submitting` while one worker's bind holds it:
claimed just in time, never more than the bind's window, so that a worker that dies can leave
no more than its windows in doubt. Whatever a bind hands back is stored by `store_answers`:

- not written (stop, lost link or session): back to `queued`, for any worker to send once;
- written and answered: `submitted` (with the SMSC id of every part) or `failed`;
- written and never answered (link lost, no response, stop timed out, worker dead): `unknown`
  with the reason in `doubt` — it may or may not have reached the SMSC, and is never written
  again unless the account says `on_connection_loss: resend`, which marks it in doubt too.
"""

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, or_, select, update

from campaigns.models import Message, MessageStatus
from dispatcher.sending import bulk, smsc_ids
from dispatcher.sending.submissions import Answer, Outcome

_message = Message.__table__  # type: ignore[attr-defined]
M = MessageStatus

WORKER_LOST = "worker_lost"  # the worker died holding it: written or not, nobody knows
# What a skipped message becomes: a pause puts it back in the queue until resumed.
_SKIPPED_STATUS = {"paused": M.QUEUED, "cancelled": M.CANCELLED, "expired": M.EXPIRED}


def _held_by_worker(*statuses: str) -> Any:
    return (
        (_message.c.id == bindparam("mid"))
        & (_message.c.claimed_by == bindparam("worker"))
        # Not IN: an expanding parameter cannot go into executemany().
        & or_(*(_message.c.status == status for status in statuses))
    )


# A late answer from a worker declared dead still tells the truth: it wins over `unknown`.
# The two statements every message goes through run in bulk (bulk.py).
SET_SUBMITTED = bulk.Statement(
    joined="UPDATE message SET status = 'submitted', submitted_at = v.column1,"
    " attempts = v.column2, last_status = v.column3, error_code = NULL, done_at = NULL"
    " FROM (VALUES {rows}) AS v WHERE message.id = v.column4"
    " AND message.claimed_by = v.column5 AND message.status IN ('submitting', 'unknown')",
    row="(?, ?, ?, ?, ?)",
    arrays="UPDATE message SET status = 'submitted', submitted_at = v.at, attempts = v.attempts,"
    " last_status = v.status, error_code = NULL, done_at = NULL"
    " FROM unnest(%s::timestamptz[], %s::int[], %s::int[], %s::bigint[], %s::int[])"
    " AS v(at, attempts, status, id, worker) WHERE message.id = v.id"
    " AND message.claimed_by = v.worker AND message.status IN ('submitting', 'unknown')",
    key=3,
)
# Stored again after a commit whose acknowledgement was lost: nothing is added twice.
INSERT_PARTS = bulk.Statement(
    joined="INSERT INTO message_part (message_id, part_no, smsc_message_id, account, smsc_key,"
    " status) VALUES {rows} ON CONFLICT (message_id, part_no, smsc_message_id) DO NOTHING",
    row="(?, ?, ?, ?, ?, 'submitted')",
    arrays="INSERT INTO message_part (message_id, part_no, smsc_message_id, account, smsc_key,"
    " status) SELECT *, 'submitted' FROM unnest(%s::bigint[], %s::int[], %s::varchar[],"
    " %s::varchar[], %s::varchar[]) ON CONFLICT (message_id, part_no, smsc_message_id) DO NOTHING",
)


_set_failed = (
    update(_message)
    .where(_held_by_worker(M.SUBMITTING, M.UNKNOWN))
    .values(
        status=M.FAILED,
        error_code=bindparam("last_status"),
        last_status=bindparam("last_status"),
        attempts=bindparam("attempts"),
        submitted_at=bindparam("at"),
        done_at=bindparam("at"),
    )
)
_set_unsent = (
    update(_message)
    .where(_held_by_worker(M.SUBMITTING))
    .values(
        status=bindparam("new_status"),
        claimed_by=bindparam("holder"),
        attempts=bindparam("attempts"),
        last_status=bindparam("last_status"),
        done_at=bindparam("done"),
    )
)
_set_in_doubt = (
    update(_message)
    .where(_held_by_worker(M.SUBMITTING))
    .values(
        status=M.UNKNOWN,
        doubt=bindparam("reason"),
        attempts=bindparam("attempts"),
        done_at=bindparam("at"),
    )
)
_set_resent = (
    update(_message).where(_held_by_worker(M.SUBMITTING)).values(doubt=bindparam("reason"))
)


def claim(engine: Engine, *, campaign_id: int, worker_id: int, limit: int) -> list[tuple[int, str]]:
    """Take up to `limit` queued messages of a campaign for this worker; no one else gets them."""
    pick = (
        select(_message.c.id)
        .where(_message.c.campaign_id == campaign_id, _message.c.status == M.QUEUED)
        .order_by(_message.c.id)
        .limit(limit)
    )
    taken = _message.c.id.in_(pick)
    if engine.dialect.name == "postgresql":
        # Materialized, so the LIMIT holds: an IN (subquery) may be planned as a join.
        picked = pick.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        # The status test again: a row another worker claimed meanwhile is not taken twice.
        taken = _message.c.id.in_(select(picked.c.id)) & (_message.c.status == M.QUEUED)
    # On SQLite the transaction holds the write lock (BEGIN IMMEDIATE), so what the subquery
    # picks is still queued; testing the status again would make SQLite walk every queued row
    # of the status index instead of looking the picked ids up (a claim grew with the queue).
    with engine.begin() as connection:
        rows = connection.execute(
            update(_message)
            .where(taken)
            .values(status=M.SUBMITTING, claimed_by=worker_id)
            .returning(_message.c.id, _message.c.msisdn)
        ).all()
    return sorted((int(message_id), msisdn) for message_id, msisdn in rows)


def store_answers(engine: Engine, worker_id: int, answers: list[Answer]) -> None:
    """Store what binds learnt, in one transaction: parts, outcomes, hand-backs, doubts."""
    with engine.begin() as connection:
        apply_answers(connection, worker_id, answers)


def apply_answers(connection: Connection, worker_id: int, answers: list[Answer]) -> None:
    """Store what binds learnt within the caller's transaction."""
    stamp = bulk.stamper(connection)
    parts: list[tuple[Any, ...]] = []
    submitted: list[tuple[Any, ...]] = []
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for answer in answers:
        outcome = answer.outcome
        if outcome == Outcome.ACCEPTED:  # the common case, kept lean
            smsc_id = answer.smsc_message_id or ""
            key = smsc_ids.key(smsc_id)
            parts.append((answer.message_id, answer.part_no, smsc_id, answer.account, key))
            if answer.final:
                submitted.append(
                    (
                        stamp(answer.at),
                        answer.attempts,
                        answer.command_status,
                        answer.message_id,
                        worker_id,
                    )
                )
            continue
        at = datetime.fromtimestamp(answer.at, UTC)
        base = {
            "mid": answer.message_id,
            "worker": worker_id,
            "attempts": answer.attempts,
            "last_status": answer.command_status,
        }
        if outcome == Outcome.FAILED:
            rows["failed"].append({**base, "at": at})
        elif outcome in (Outcome.SKIPPED, Outcome.RETURNED):
            status = _SKIPPED_STATUS.get(answer.reason or "", M.QUEUED)
            if outcome == Outcome.RETURNED:
                status = M.QUEUED
            queued = status == M.QUEUED
            rows["unsent"].append(
                {**base, "new_status": status, "holder": None, "done": None if queued else at}
            )
        elif outcome == Outcome.IN_DOUBT:
            rows["in_doubt"].append({**base, "reason": answer.reason, "at": at})
        elif outcome == Outcome.RESENT:
            rows["resent"].append({**base, "reason": answer.reason})
    statements = {
        "failed": _set_failed,
        "unsent": _set_unsent,
        "in_doubt": _set_in_doubt,
        "resent": _set_resent,
    }
    bulk.run(connection, INSERT_PARTS, parts)
    bulk.run(connection, SET_SUBMITTED, submitted)
    for kind, statement in statements.items():
        if rows[kind]:
            connection.execute(statement, rows[kind])
