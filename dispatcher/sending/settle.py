"""A message's end from its parts' ends: delivered when every part is, else the worst of them."""

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, select

from campaigns.models import Message, MessagePart, MessageStatus
from dispatcher.sending import bulk

_message = Message.__table__  # type: ignore[attr-defined]
_part = MessagePart.__table__  # type: ignore[attr-defined]
_CHUNK = 500
M = MessageStatus
# When the parts of one message end differently, the message takes the first of these.
_WORST_FIRST = (M.REJECTED, M.UNDELIVERABLE, M.EXPIRED, M.FAILED, M.UNKNOWN)

# Rows: (status, error_code, done_at, id), run in bulk (bulk.py). The truth after the receipt
# timeout said `unknown` is counted as corrected late.
MESSAGE_FINAL = bulk.Statement(
    joined="UPDATE message SET status = v.column1, error_code = v.column2, done_at = v.column3,"
    " late_receipt = (message.status = 'unknown' OR message.late_receipt)"
    " FROM (VALUES {rows}) AS v"
    " WHERE message.id = v.column4 AND message.status IN ('submitted', 'unknown')",
    row="(?, ?, ?, ?)",
    arrays="UPDATE message SET status = v.status, error_code = v.error_code, done_at = v.at,"
    " late_receipt = (message.status = 'unknown' OR message.late_receipt)"
    " FROM unnest(%s::varchar[], %s::int[], %s::timestamptz[], %s::bigint[])"
    " AS v(status, error_code, at, id)"
    " WHERE message.id = v.id AND message.status IN ('submitted', 'unknown')",
    key=3,
)


def settle_messages(connection: Connection, message_ids: set[int], at: Any) -> None:
    """Give each submitted message whose parts have all ended its final status.

    A part written twice (after a lost link) has two rows, one per SMSC id: it is delivered
    when either is, and has ended when either is delivered or both have ended.
    """
    ids = list(message_ids)
    stored_at = bulk.stamp(connection, at)
    for start in range(0, len(ids), _CHUNK):
        rows = connection.execute(
            select(
                _part.c.message_id,
                _message.c.parts,
                _part.c.part_no,
                _part.c.status,
                _part.c.error_code,
            )
            .join(_message, _message.c.id == _part.c.message_id)
            .where(_part.c.message_id.in_(ids[start : start + _CHUNK]))
        ).all()
        by_part: dict[int, dict[int, list[tuple[str, int | None]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        expected: dict[int, int] = {}
        for message_id, parts, part_no, status, error in rows:
            by_part[message_id][part_no].append((status, error))
            expected[message_id] = parts
        final = []
        for message_id, parts in by_part.items():
            ends = [_part_end(rows) for rows in parts.values()]
            if len(ends) == expected[message_id] and all(end is not None for end in ends):
                final.append(
                    _final(message_id, [end for end in ends if end is not None], stored_at)
                )
        bulk.run(connection, MESSAGE_FINAL, final)


def _part_end(rows: list[tuple[str, int | None]]) -> tuple[str, int | None] | None:
    """How one part ended, over every SMSC id it got; None while it may still be delivered."""
    if any(status == MessageStatus.DELIVERED for status, _ in rows):
        return MessageStatus.DELIVERED, None
    if any(status == MessageStatus.SUBMITTED for status, _ in rows):
        return None
    return next((s, e) for bad in _WORST_FIRST for s, e in rows if s == bad)


def _final(message_id: int, ends: list[tuple[str, int | None]], at: Any) -> tuple[Any, ...]:
    worst = next(
        ((s, e) for bad in _WORST_FIRST for s, e in ends if s == bad),
        (MessageStatus.DELIVERED, None),
    )
    return (str(worst[0]), worst[1], at, message_id)
