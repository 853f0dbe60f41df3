"""Message status in the database: submit answers and delivery receipts, written in bulk."""

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, func, insert, select, update

from campaigns.models import Message, MessagePart, MessageStatus, utcnow
from dispatcher.smpp.bind import ESME_ROK, Ack, SubmitResult
from dispatcher.smpp.receipts import Receipt, candidate_ids

_message = Message.__table__  # type: ignore[attr-defined]
_part = MessagePart.__table__  # type: ignore[attr-defined]
_CHUNK = 500
# When the parts of one message end differently, the message takes the first of these.
_WORST_FIRST = (
    MessageStatus.REJECTED,
    MessageStatus.UNDELIVERABLE,
    MessageStatus.EXPIRED,
    MessageStatus.FAILED,
    MessageStatus.UNKNOWN,
)

_set_sent = (
    update(_message)
    .where(_message.c.id == bindparam("mid"))
    .values(
        status=bindparam("new_status"),
        error_code=bindparam("error"),
        submitted_at=bindparam("at"),
        done_at=bindparam("done"),
    )
)
_set_skipped = (
    update(_message)
    .where(and_(_message.c.id == bindparam("mid"), _message.c.status == MessageStatus.SUBMITTING))
    .values(status=bindparam("new_status"), done_at=bindparam("done"), submitted_at=None)
)
_set_part_final = (
    update(_part)
    .where(and_(_part.c.id == bindparam("pid"), _part.c.status == MessageStatus.SUBMITTED))
    .values(status=bindparam("new_status"), error_code=bindparam("error"), done_at=bindparam("at"))
)
_set_message_final = (
    update(_message)
    .where(and_(_message.c.id == bindparam("mid"), _message.c.status == MessageStatus.SUBMITTED))
    .values(status=bindparam("new_status"), error_code=bindparam("error"), done_at=bindparam("at"))
)


def store_submit_results(engine: Engine, results: list[SubmitResult]) -> None:
    """Record a batch's answers: the SMSC id of every part, refusals, and unsent messages."""
    now = utcnow()
    by_message: dict[int, list[SubmitResult]] = defaultdict(list)
    for result in results:
        by_message[result.message_id].append(result)
    parts: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for message_id, answers in by_message.items():
        reason = next((a.skipped for a in answers if a.skipped), None)
        if reason == "paused":  # back in the queue until the campaign resumes
            skipped.append({"mid": message_id, "new_status": MessageStatus.QUEUED, "done": None})
            continue
        if reason is not None:
            skipped.append({"mid": message_id, "new_status": reason, "done": now})
            continue
        parts += [
            {
                "message_id": message_id,
                "part_no": a.part_no,
                "smsc_message_id": a.smsc_message_id,
                "status": MessageStatus.SUBMITTED,
            }
            for a in answers
            if a.command_status == ESME_ROK
        ]
        refused = next((a.command_status for a in answers if a.command_status != ESME_ROK), None)
        sent.append(
            {
                "mid": message_id,
                "at": now,
                "error": refused,
                "new_status": MessageStatus.SUBMITTED if refused is None else MessageStatus.FAILED,
                "done": None if refused is None else now,
            }
        )
    with engine.begin() as connection:
        if parts:
            connection.execute(insert(_part), parts)
        if sent:
            connection.execute(_set_sent, sent)
        if skipped:
            connection.execute(_set_skipped, skipped)


@dataclass
class ReceiptMatcher:
    """Applies receipts to message parts; keeps those whose submit answer is not stored yet.

    Each receipt comes with its acknowledgement; `apply` hands back the acknowledgements of the
    receipts it has settled (stored, or given up on), to be sent only after the commit.
    """

    engine: Engine
    patience: float = 60.0
    waiting: dict[str, tuple[Receipt, float, list[Ack]]] = field(default_factory=dict)
    applied: int = 0
    abandoned: int = 0

    def apply(self, new: list[tuple[Receipt, Ack]]) -> list[Ack]:
        """Match and store `new` and the receipts still waiting; return the settled ones' acks."""
        now = time.monotonic()
        for receipt, ack in new:
            self.waiting.setdefault(receipt.smsc_message_id, (receipt, now, []))[2].append(ack)
        pending = list(self.waiting.items())
        settled: list[Ack] = []
        for start in range(0, len(pending), _CHUNK):
            settled += self._apply_chunk(dict(pending[start : start + _CHUNK]))
        for smsc_id, (_, seen, acks) in list(self.waiting.items()):
            if now - seen >= self.patience:
                del self.waiting[smsc_id]
                self.abandoned += 1
                settled += acks
        return settled

    def _apply_chunk(self, chunk: dict[str, tuple[Receipt, float, list[Ack]]]) -> list[Ack]:
        at = utcnow()
        settled: list[Ack] = []
        with self.engine.begin() as connection:
            # Ids as the receipts wrote them first; only those not found in their other forms.
            by_form = {smsc_id: smsc_id for smsc_id in chunk}
            found = _submitted_parts(connection, list(by_form))
            missing = set(chunk) - {by_form[row.smsc_message_id] for row in found}
            others = {form: smsc_id for smsc_id in missing for form in candidate_ids(smsc_id)[1:]}
            if others:
                found += _submitted_parts(connection, list(others))
                by_form |= others
            rows, single, multi = [], [], set()
            for part_id, message_id, stored_id, parts in found:
                smsc_id = by_form[stored_id]
                receipt, _, acks = chunk[smsc_id]
                final = {"new_status": receipt.status, "error": receipt.error_code, "at": at}
                rows.append({"pid": part_id, **final})
                if parts == 1:  # the part's end is the message's end
                    single.append({"mid": message_id, **final})
                else:
                    multi.add(message_id)
                if self.waiting.pop(smsc_id, None) is not None:
                    settled += acks
            if rows:
                connection.execute(_set_part_final, rows)
            if single:
                connection.execute(_set_message_final, single)
            if multi:
                settle_messages(connection, multi, at)
        self.applied += len(rows)
        return settled


def _submitted_parts(connection: Connection, smsc_ids: list[str]) -> list[Any]:
    return list(
        connection.execute(
            select(_part.c.id, _part.c.message_id, _part.c.smsc_message_id, _message.c.parts)
            .join(_message, _message.c.id == _part.c.message_id)
            .where(
                _part.c.smsc_message_id.in_(smsc_ids),
                _part.c.status == MessageStatus.SUBMITTED,
            )
        ).all()
    )


def settle_messages(connection: Connection, message_ids: set[int], at: Any) -> None:
    """Give each submitted message whose parts have all ended its final status."""
    ids = list(message_ids)
    for start in range(0, len(ids), _CHUNK):
        rows = connection.execute(
            select(_part.c.message_id, _message.c.parts, _part.c.status, _part.c.error_code)
            .join(_message, _message.c.id == _part.c.message_id)
            .where(_part.c.message_id.in_(ids[start : start + _CHUNK]))
        ).all()
        outcomes: dict[int, list[tuple[str, int | None]]] = defaultdict(list)
        expected: dict[int, int] = {}
        for message_id, parts, status, error in rows:
            outcomes[message_id].append((status, error))
            expected[message_id] = parts
        final = [
            _final(message_id, ends, at)
            for message_id, ends in outcomes.items()
            if len(ends) == expected[message_id]
            and all(status != MessageStatus.SUBMITTED for status, _ in ends)
        ]
        if final:
            connection.execute(_set_message_final, final)


def _final(message_id: int, ends: list[tuple[str, int | None]], at: Any) -> dict[str, Any]:
    worst = next(
        ((s, e) for bad in _WORST_FIRST for s, e in ends if s == bad),
        (MessageStatus.DELIVERED, None),
    )
    return {"mid": message_id, "new_status": worst[0], "error": worst[1], "at": at}


def claim(engine: Engine, campaign_id: int, batch_no: int, limit: int) -> list[tuple[int, str]]:
    """Take up to `limit` queued messages of a batch for one send job; no other job gets them."""
    batch = (
        select(_message.c.id)
        .where(
            _message.c.campaign_id == campaign_id,
            _message.c.batch_no == batch_no,
            _message.c.status == MessageStatus.QUEUED,
        )
        .order_by(_message.c.id)
        .limit(limit)
    )
    with engine.begin() as connection:
        rows = connection.execute(
            update(_message)
            # The status test again: a row another job claimed meanwhile is not taken twice.
            .where(_message.c.id.in_(batch), _message.c.status == MessageStatus.QUEUED)
            .values(status=MessageStatus.SUBMITTING, submitted_at=utcnow())
            .returning(_message.c.id, _message.c.msisdn)
        ).all()
    return sorted((int(message_id), msisdn) for message_id, msisdn in rows)


def stalled_batches(engine: Engine, campaign_id: int, quiet: float) -> list[int]:
    """Batches with queued messages when nothing of the campaign was claimed for `quiet` s.

    Their jobs may have been lost (a Redis that lost its data); queuing jobs again is harmless,
    as claims keep two jobs from sending the same message.
    """
    cutoff = utcnow() - timedelta(seconds=quiet)
    with engine.connect() as connection:
        last = connection.execute(
            select(func.max(_message.c.submitted_at)).where(_message.c.campaign_id == campaign_id)
        ).scalar_one()
        if last is not None and last >= cutoff:
            return []
        batches = connection.execute(
            select(_message.c.batch_no)
            .where(
                _message.c.campaign_id == campaign_id,
                _message.c.status == MessageStatus.QUEUED,
            )
            .distinct()
            .order_by(_message.c.batch_no)
        ).scalars()
        return [int(batch_no) for batch_no in batches]


def abandon_stale_claims(engine: Engine, campaign_id: int, older_than: float) -> int:
    """Claims of a worker that died: they may or may not have been sent, so they end `unknown`.

    Sending them again could send them twice; this never does. `older_than` must exceed the
    longest a live send job may run.
    """
    cutoff = utcnow() - timedelta(seconds=older_than)
    with engine.begin() as connection:
        result = connection.execute(
            update(_message)
            .where(
                _message.c.campaign_id == campaign_id,
                _message.c.status == MessageStatus.SUBMITTING,
                _message.c.submitted_at < cutoff,
            )
            .values(status=MessageStatus.UNKNOWN, done_at=utcnow())
        )
    return int(result.rowcount)


def expire_unanswered(engine: Engine, campaign_id: int, timeout: float) -> int:
    """Mark a campaign's messages still without a receipt `timeout` seconds on `unknown`."""
    cutoff = utcnow() - timedelta(seconds=timeout)
    late = select(_message.c.id).where(
        _message.c.campaign_id == campaign_id,
        _message.c.status == MessageStatus.SUBMITTED,
        _message.c.submitted_at < cutoff,
    )
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            update(_part)
            .where(_part.c.message_id.in_(late), _part.c.status == MessageStatus.SUBMITTED)
            .values(status=MessageStatus.UNKNOWN, done_at=now)
        )
        result = connection.execute(
            update(_message)
            .where(
                _message.c.campaign_id == campaign_id,
                _message.c.status == MessageStatus.SUBMITTED,
                _message.c.submitted_at < cutoff,
            )
            .values(status=MessageStatus.UNKNOWN, done_at=now)
        )
    return int(result.rowcount)
