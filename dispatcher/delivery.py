"""Message status in the database: submit results and delivery receipts, written in bulk."""

import time
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine, and_, bindparam, select, update
from sqlmodel import col

from campaigns.models import Message, MessageStatus, utcnow
from dispatcher.smpp.bind import ESME_ROK, SubmitResult
from dispatcher.smpp.receipts import Receipt, candidate_ids

_message = Message.__table__  # type: ignore[attr-defined]
_CHUNK = 500

_set_submitted = (
    update(_message)
    .where(_message.c.id == bindparam("mid"))
    .values(
        status=bindparam("new_status"),
        smsc_message_id=bindparam("smsc_id"),
        error_code=bindparam("error"),
        submitted_at=bindparam("at"),
        done_at=bindparam("done"),
    )
)
_set_final = (
    update(_message)
    .where(and_(_message.c.id == bindparam("mid"), _message.c.status == MessageStatus.SUBMITTED))
    .values(status=bindparam("new_status"), error_code=bindparam("error"), done_at=bindparam("at"))
)


def store_submit_results(engine: Engine, results: list[SubmitResult]) -> None:
    """Record the SMSC's answers for a batch: its message ids, or the refusal code."""
    now = utcnow()
    rows = [
        {
            "mid": r.message_id,
            "new_status": MessageStatus.SUBMITTED
            if r.command_status == ESME_ROK
            else MessageStatus.FAILED,
            "smsc_id": r.smsc_message_id,
            "error": None if r.command_status == ESME_ROK else r.command_status,
            "at": now,
            "done": None if r.command_status == ESME_ROK else now,
        }
        for r in results
    ]
    if rows:
        with engine.begin() as connection:
            connection.execute(_set_submitted, rows)


@dataclass
class ReceiptMatcher:
    """Applies receipts to messages; keeps those whose submit answer is not stored yet."""

    engine: Engine
    patience: float = 300.0
    waiting: dict[str, tuple[Receipt, float]] = field(default_factory=dict)
    applied: int = 0
    abandoned: int = 0

    def apply(self, new: list[Receipt]) -> int:
        """Match and store `new` and the receipts still waiting; return how many were applied."""
        now = time.monotonic()
        for receipt in new:
            self.waiting.setdefault(receipt.smsc_message_id, (receipt, now))
        pending = list(self.waiting.items())
        applied = 0
        for start in range(0, len(pending), _CHUNK):
            applied += self._apply_chunk(dict(pending[start : start + _CHUNK]))
        for smsc_id, (_, seen) in list(self.waiting.items()):
            if now - seen >= self.patience:
                del self.waiting[smsc_id]
                self.abandoned += 1
        self.applied += applied
        return applied

    def _apply_chunk(self, chunk: dict[str, tuple[Receipt, float]]) -> int:
        by_form = {form: smsc_id for smsc_id in chunk for form in candidate_ids(smsc_id)}
        at = utcnow()
        with self.engine.begin() as connection:
            found = connection.execute(
                select(_message.c.id, _message.c.smsc_message_id).where(
                    col(_message.c.smsc_message_id).in_(list(by_form)),
                    _message.c.status == MessageStatus.SUBMITTED,
                )
            ).all()
            rows = []
            for message_id, stored_id in found:
                smsc_id = by_form[stored_id]
                receipt = chunk[smsc_id][0]
                rows.append(
                    {
                        "mid": message_id,
                        "new_status": receipt.status,
                        "error": receipt.error_code,
                        "at": at,
                    }
                )
                self.waiting.pop(smsc_id, None)
            if rows:
                connection.execute(_set_final, rows)
        return len(rows)


def expire_unanswered(engine: Engine, campaign_id: int, timeout: float) -> int:
    """Mark a campaign's messages still without a receipt `timeout` seconds on `unknown`."""
    cutoff = utcnow() - timedelta(seconds=timeout)
    with engine.begin() as connection:
        result = connection.execute(
            update(_message)
            .where(
                _message.c.campaign_id == campaign_id,
                _message.c.status == MessageStatus.SUBMITTED,
                _message.c.submitted_at < cutoff,
            )
            .values(status=MessageStatus.UNKNOWN, done_at=utcnow())
        )
    return int(result.rowcount)
