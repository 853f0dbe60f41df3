"""Delivery receipts: read from a deliver_sm (TLVs first, then text), matched and stored.

Nothing is acknowledged before it is stored: `ReceiptMatcher.apply` hands back the
acknowledgements of what it settled, to be sent after the commit.
"""

import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, select, update

from campaigns.models import Message, MessagePart, MessageStatus, utcnow
from dispatcher.sending import metrics

Ack = Callable[[], None]  # answers one receipt's deliver_sm
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

# SMPP 3.4 §5.2.28 message_state values.
_STATE_BY_TLV = {
    2: MessageStatus.DELIVERED,
    3: MessageStatus.EXPIRED,
    4: MessageStatus.FAILED,  # DELETED
    5: MessageStatus.UNDELIVERABLE,
    7: MessageStatus.UNKNOWN,
    8: MessageStatus.REJECTED,
}
# Receipt text `stat:` values (SMPP 3.4 Appendix B).
_STATE_BY_STAT = {
    "DELIVRD": MessageStatus.DELIVERED,
    "EXPIRED": MessageStatus.EXPIRED,
    "DELETED": MessageStatus.FAILED,
    "UNDELIV": MessageStatus.UNDELIVERABLE,
    "UNKNOWN": MessageStatus.UNKNOWN,
    "REJECTD": MessageStatus.REJECTED,
}
_FIELD = re.compile(r"(id|stat|err):\s*(\S+)", re.IGNORECASE)

RECEIPT_ESM_CLASS = 0x04


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the network reported for one submitted message."""

    smsc_message_id: str
    status: MessageStatus
    error_code: int | None


def is_receipt(esm_class: int) -> bool:
    """Whether a deliver_sm with this esm_class is a delivery receipt."""
    return esm_class & 0x3C == RECEIPT_ESM_CLASS


def parse(
    *, receipted_message_id: bytes | str | None, message_state: int | None, text: bytes | None
) -> Receipt | None:
    """A receipt from the TLVs where present, completed from the text; None if unreadable."""
    fields = {key.lower(): value for key, value in _FIELD.findall(_decode(text))}
    smsc_id = _decode(receipted_message_id) or fields.get("id", "")
    status = _STATE_BY_TLV.get(message_state or 0) or _STATE_BY_STAT.get(
        fields.get("stat", "").upper()
    )
    if not smsc_id or status is None:
        return None
    return Receipt(
        smsc_message_id=smsc_id,
        status=status,
        error_code=_error_code(fields.get("err", "")),
    )


def candidate_ids(smsc_message_id: str) -> list[str]:
    """Forms the same id may have been stored in: as written, and hex ↔ decimal."""
    candidates = [smsc_message_id]
    if smsc_message_id.isdigit():
        candidates += [format(int(smsc_message_id), "x"), format(int(smsc_message_id), "X")]
    if _is_hex(smsc_message_id):
        candidates.append(str(int(smsc_message_id, 16)))
    return list(dict.fromkeys(candidates))


def _decode(value: bytes | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1").rstrip("\x00").strip()
    return value.rstrip("\x00").strip()


def _error_code(value: str) -> int | None:
    if value.isdigit():
        return int(value)
    return int(value, 16) if _is_hex(value) else None


def _is_hex(value: str) -> bool:
    return bool(value) and all(c in "0123456789abcdefABCDEF" for c in value)


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
            rows, single, multi, matched, sent = [], [], set(), set(), []
            for part_id, message_id, stored_id, parts, submitted_at in found:
                smsc_id = by_form[stored_id]
                receipt, _, acks = chunk[smsc_id]
                final = {"new_status": receipt.status, "error": receipt.error_code, "at": at}
                rows.append({"pid": part_id, **final})
                if parts == 1:  # the part's end is the message's end
                    single.append({"mid": message_id, **final})
                else:
                    multi.add(message_id)
                matched.add(smsc_id)
                sent.append(submitted_at)
            if rows:
                connection.execute(_set_part_final, rows)
            if single:
                connection.execute(_set_message_final, single)
            if multi:
                settle_messages(connection, multi, at)
        metrics.delivered(at, sent)
        # Only once committed: a receipt whose transaction failed stays waiting for the next try.
        for smsc_id in matched:
            if (entry := self.waiting.pop(smsc_id, None)) is not None:
                settled += entry[2]
        self.applied += len(rows)
        return settled


def _submitted_parts(connection: Connection, smsc_ids: list[str]) -> list[Any]:
    return list(
        connection.execute(
            select(
                _part.c.id,
                _part.c.message_id,
                _part.c.smsc_message_id,
                _message.c.parts,
                _message.c.submitted_at,
            )
            .join(_message, _message.c.id == _part.c.message_id)
            .where(
                _part.c.smsc_message_id.in_(smsc_ids),
                _part.c.status == MessageStatus.SUBMITTED,
            )
        ).all()
    )


def settle_messages(connection: Connection, message_ids: set[int], at: Any) -> None:
    """Give each submitted message whose parts have all ended its final status.

    A part written twice (after a lost link) has two rows, one per SMSC id: it is delivered
    when either is, and has ended when either is delivered or both have ended.
    """
    ids = list(message_ids)
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
                final.append(_final(message_id, [end for end in ends if end is not None], at))
        if final:
            connection.execute(_set_message_final, final)


def _part_end(rows: list[tuple[str, int | None]]) -> tuple[str, int | None] | None:
    """How one part ended, over every SMSC id it got; None while it may still be delivered."""
    if any(status == MessageStatus.DELIVERED for status, _ in rows):
        return MessageStatus.DELIVERED, None
    if any(status == MessageStatus.SUBMITTED for status, _ in rows):
        return None
    return next((s, e) for bad in _WORST_FIRST for s, e in rows if s == bad)


def _final(message_id: int, ends: list[tuple[str, int | None]], at: Any) -> dict[str, Any]:
    worst = next(
        ((s, e) for bad in _WORST_FIRST for s, e in ends if s == bad),
        (MessageStatus.DELIVERED, None),
    )
    return {"mid": message_id, "new_status": worst[0], "error": worst[1], "at": at}
