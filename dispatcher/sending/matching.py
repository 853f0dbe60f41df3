"""Receipts matched to message parts and stored; nothing acknowledged before it is stored.

A receipt's id is turned into its key within the account that received it (`smsc_ids`), and
looked up among that account's parts. Exactly one open part (submitted, or `unknown` after the
receipt timeout): the receipt is applied to it. Several: the receipt is ambiguous and is never
applied to a guess. None, but a part that has already ended: a repeated receipt, ignored. None
at all (its submit answer is not stored yet, or the account's id formats are still being
learnt): the receipt is stored in `pending_receipt` and matched again later, when new answers
are stored; after `unmatched_ttl` it is given up on and counted. In every case the receipt is
acknowledged only once its transaction has committed.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from campaigns.models import Message, MessagePart, MessageStatus, PendingReceipt, utcnow
from dispatcher.sending import bulk, metrics
from dispatcher.sending.receipts import Receipt
from dispatcher.sending.settle import MESSAGE_FINAL, settle_messages
from dispatcher.sending.smsc_ids import AccountIds, IdBase

log = logging.getLogger("dispatcher.receipts")
Ack = Any  # a callable answering one receipt's deliver_sm (bind.Ack)
M = MessageStatus
_message = Message.__table__  # type: ignore[attr-defined]
_part = MessagePart.__table__  # type: ignore[attr-defined]
_pending = PendingReceipt.__table__  # type: ignore[attr-defined]
_CHUNK = 500
_OPEN = (M.SUBMITTED, M.UNKNOWN)  # a part or message a final receipt may still settle
UNMATCHED, AMBIGUOUS, IDS_UNKNOWN = "unmatched", "ambiguous", "ids_unknown"


def _open(table: Any) -> Any:
    return or_(table.c.status == M.SUBMITTED, table.c.status == M.UNKNOWN)


# Every receipt goes through this statement, run in bulk (bulk.py).
PART_FINAL = bulk.Statement(
    joined="UPDATE message_part SET status = v.column1, error_code = v.column2,"
    " network_error = v.column3, receipt_state = v.column4, done_at = v.column5"
    " FROM (VALUES {rows}) AS v"
    " WHERE message_part.id = v.column6 AND message_part.status IN ('submitted', 'unknown')",
    row="(?, ?, ?, ?, ?, ?)",
    arrays="UPDATE message_part SET status = v.status, error_code = v.error_code,"
    " network_error = v.network_error, receipt_state = v.state, done_at = v.at"
    " FROM unnest(%s::varchar[], %s::int[], %s::int[], %s::varchar[], %s::timestamptz[],"
    " %s::bigint[]) AS v(status, error_code, network_error, state, at, id)"
    " WHERE message_part.id = v.id AND message_part.status IN ('submitted', 'unknown')",
    key=5,
)
_set_part_state = (
    update(_part)
    .where(and_(_part.c.id == bindparam("pid"), _open(_part)))
    .values(receipt_state=bindparam("state"), network_error=bindparam("network"))
)


@dataclass
class Found:
    """One part a receipt's key points at."""

    part_id: int
    message_id: int
    part_no: int
    status: str
    parts: int
    submitted_at: datetime | None


@dataclass
class Outcome:
    """What one round of matching did."""

    applied: int = 0
    repeated: int = 0
    held: list[tuple[Receipt, str]] = field(default_factory=list)  # (receipt, reason)
    submitted: list[datetime | None] = field(default_factory=list)  # of messages now final


@dataclass
class ReceiptMatcher:
    """Matches and stores receipts for one worker; keeps what failed to store for the next try."""

    engine: Engine
    accounts: dict[str, AccountIds] = field(default_factory=dict)
    per_message: set[str] = field(default_factory=set)  # accounts: one receipt per message
    unmatched_ttl: float = 3600.0
    applied: int = 0
    repeated: int = 0
    waiting: int = 0  # receipts stored without a match, as last seen (all workers')
    abandoned: int = 0  # receipts given up on, as last seen
    held: int = 0  # receipts this worker stored unmatched since they were last tried again
    _unstored: list[tuple[Receipt, Ack]] = field(default_factory=list)

    def ids(self, account: str) -> AccountIds:
        """The id formats of an account (learnt if not declared)."""
        return self.accounts.setdefault(account, AccountIds())

    def saw_submit_id(self, account: str, smsc_id: str) -> None:
        """Learn from an id the SMSC wrote in a submit_sm_resp."""
        ids = self.ids(account)
        if ids.submit_declared == IdBase.AUTO:
            ids.submit_seen.see(smsc_id)

    def apply(self, new: list[tuple[Receipt, Ack]]) -> list[Ack]:
        """Store `new` receipts (and any that failed before); return their acks, now sendable.

        Raises if the database fails: the receipts are kept and stored on the next call.
        """
        self.learn([receipt for receipt, _ in new])
        self._unstored += new
        acks: list[Ack] = []
        while self._unstored:
            chunk = self._unstored[:_CHUNK]
            with self.engine.begin() as connection:
                outcome = self.store(connection, [r for r, _ in chunk])
            self.stored(outcome)
            del self._unstored[: len(chunk)]
            acks += [ack for _, ack in chunk]
        return acks

    def learn(self, receipts: list[Receipt]) -> None:
        """Learn the id formats of accounts set to `auto` from receipts just received."""
        for receipt in receipts:
            ids = self.ids(receipt.account)
            if ids.receipt_declared == IdBase.AUTO:
                ids.receipt_seen.see(receipt.smsc_message_id)

    def store(self, connection: Connection, receipts: list[Receipt]) -> Outcome:
        """Match and store receipts within the caller's transaction (see `stored`)."""
        outcome = self._match(connection, receipts)
        _hold(connection, outcome.held)
        return outcome

    def stored(self, outcome: Outcome) -> None:
        """What `store` did, once its transaction has committed."""
        self.applied += outcome.applied
        self.repeated += outcome.repeated
        self.held += len(outcome.held)
        metrics.delivered(utcnow(), outcome.submitted)

    def retry_pending(self, limit: int = 5000) -> int:
        """Match stored receipts again (new answers may have arrived); returns how many matched."""
        self.held = 0
        with self.engine.begin() as connection:
            rows = connection.execute(
                select(_pending)
                .where(_pending.c.expired.is_(False))
                .order_by(_pending.c.id)
                .limit(limit)
            ).all()
            self.abandoned = _count_expired(connection)
            if not rows:
                self.waiting = 0
                return 0
            by_id = {
                row.id: Receipt(
                    row.smsc_message_id, row.state, row.error_code, row.network_error, row.account
                )
                for row in rows
            }
            outcome = self._match(connection, list(by_id.values()))
            self.applied += outcome.applied
            self.repeated += outcome.repeated
            still = {id(receipt): reason for receipt, reason in outcome.held}
            done = [pid for pid, receipt in by_id.items() if id(receipt) not in still]
            for start in range(0, len(done), _CHUNK):
                connection.execute(
                    delete(_pending).where(_pending.c.id.in_(done[start : start + _CHUNK]))
                )
        self.waiting = len(rows) - len(done)
        metrics.delivered(utcnow(), outcome.submitted)
        return len(done)

    def _match(self, connection: Connection, receipts: list[Receipt]) -> Outcome:
        outcome = Outcome()
        keyed: dict[str, list[tuple[str, Receipt]]] = defaultdict(list)
        for receipt in receipts:
            key = self.ids(receipt.account).receipt_key(receipt.smsc_message_id)
            if key is None:
                outcome.held.append((receipt, IDS_UNKNOWN))
            else:
                keyed[receipt.account].append((key, receipt))
        at = utcnow()
        finals: list[tuple[Found, Receipt]] = []
        states: list[dict[str, Any]] = []
        for account, items in keyed.items():
            found = _parts(connection, account, list({key for key, _ in items}))
            for key, receipt in items:
                candidates = found.get(key, [])
                open_parts = [f for f in candidates if f.status in _OPEN]
                if len(open_parts) == 1:
                    if receipt.status is None:
                        states.append(
                            {
                                "pid": open_parts[0].part_id,
                                "state": receipt.state,
                                "network": receipt.network_error,
                            }
                        )
                    else:
                        finals.append((open_parts[0], receipt))
                        outcome.submitted.append(open_parts[0].submitted_at)
                    outcome.applied += 1
                elif len(open_parts) > 1:
                    outcome.held.append((receipt, AMBIGUOUS))
                elif candidates:
                    outcome.repeated += 1
                else:
                    outcome.held.append((receipt, UNMATCHED))
        if states:
            connection.execute(_set_part_state, states)
        if finals:
            self._settle(connection, finals, at)
        return outcome

    def _settle(self, connection: Connection, finals: list[tuple[Found, Receipt]], at: Any) -> None:
        stored_at = bulk.stamp(connection, at)
        parts, single, multi = [], [], set()
        whole = [(f, r) for f, r in finals if f.parts > 1 and r.account in self.per_message]
        for found, receipt in finals:
            parts.append(_part_final(found.part_id, receipt, stored_at))
            if found.parts == 1:
                single.append(
                    (str(receipt.status), receipt.error_code, stored_at, found.message_id)
                )
            else:
                multi.add(found.message_id)
        # An SMSC that reports once per message: its receipt ends every part of the message.
        for found, receipt in whole:
            parts += [
                _part_final(pid, receipt, stored_at) for pid in _sibling_parts(connection, found)
            ]
        bulk.run(connection, PART_FINAL, parts)
        bulk.run(connection, MESSAGE_FINAL, single)
        if multi:
            settle_messages(connection, multi, at)


def _part_final(part_id: int, receipt: Receipt, at: Any) -> tuple[Any, ...]:
    """PART_FINAL's row for a part that a final receipt ends."""
    return (
        str(receipt.status),  # the value: psycopg would write an Enum's name
        receipt.error_code,
        receipt.network_error,
        receipt.state,
        at,
        part_id,
    )


def _parts(connection: Connection, account: str, keys: list[str]) -> dict[str, list[Found]]:
    found: dict[str, list[Found]] = defaultdict(list)
    for start in range(0, len(keys), _CHUNK):
        rows = connection.execute(
            select(
                _part.c.id,
                _part.c.message_id,
                _part.c.part_no,
                _part.c.status,
                _part.c.smsc_key,
                _message.c.parts,
                _message.c.submitted_at,
            )
            .join(_message, _message.c.id == _part.c.message_id)
            .where(_part.c.account == account, _part.c.smsc_key.in_(keys[start : start + _CHUNK]))
        ).all()
        for part_id, message_id, part_no, status, key, parts, submitted_at in rows:
            found[key].append(Found(part_id, message_id, part_no, status, parts, submitted_at))
    return found


def _sibling_parts(connection: Connection, found: Found) -> list[int]:
    return list(
        connection.execute(
            select(_part.c.id).where(
                _part.c.message_id == found.message_id, _part.c.id != found.part_id, _open(_part)
            )
        ).scalars()
    )


def _hold(connection: Connection, held: list[tuple[Receipt, str]]) -> None:
    """Store receipts that match nothing yet, to be matched when their answers arrive."""
    if not held:
        return
    now = utcnow()
    connection.execute(
        insert(_pending),
        [
            {
                "account": receipt.account,
                "smsc_message_id": receipt.smsc_message_id,
                "state": receipt.state,
                "error_code": receipt.error_code,
                "network_error": receipt.network_error,
                "received_at": now,
                "reason": reason,
                "expired": False,
            }
            for receipt, reason in held
        ],
    )


def _count_expired(connection: Connection) -> int:
    return int(
        connection.execute(
            select(func.count()).select_from(_pending).where(_pending.c.expired.is_(True))
        ).scalar_one()
    )


def expire_pending(engine: Engine, ttl: float, *, purge_after: float = 7 * 86400) -> int:
    """Give up on receipts unmatched for `ttl` seconds (kept, counted); purge very old ones."""
    now = utcnow()
    with engine.begin() as connection:
        result = connection.execute(
            update(_pending)
            .where(
                _pending.c.expired.is_(False),
                _pending.c.received_at < now - timedelta(seconds=ttl),
            )
            .values(expired=True)
        )
        connection.execute(
            delete(_pending).where(_pending.c.received_at < now - timedelta(seconds=purge_after))
        )
    return int(result.rowcount)


def pending_counts(connection: Connection, since: datetime | None = None) -> dict[str, int]:
    """Receipts stored without a match: still waiting, and given up on (since a time)."""
    query = select(_pending.c.expired, func.count()).group_by(_pending.c.expired)
    if since is not None:
        query = query.where(_pending.c.received_at >= since)
    counts = {"waiting": 0, "expired": 0}
    for expired, count in connection.execute(query):
        counts["expired" if expired else "waiting"] += int(count)
    return counts
