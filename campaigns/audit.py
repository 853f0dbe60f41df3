"""The append-only audit log: each entry holds the hash of the one before it.

How an entry's hash is computed, so that an auditor can recompute it without this code:

    hash = lowercase hex SHA-256 of the UTF-8 bytes of the JSON array
           [prev_hash, at, actor, action, subject, campaign_id, details]

- `prev_hash`: the `hash` of the previous entry (by id); 64 "0" for the first entry.
- `at`: the entry's time in UTC, written `YYYY-MM-DDTHH:MM:SS.ffffffZ` (always 6 digits of
  microseconds, always `Z`), e.g. `2020-02-03T01:02:03.000450Z`.
- `actor`, `action`, `subject`: the stored strings.
- `campaign_id`: a JSON integer, or `null`.
- `details`: the stored `details` column as one JSON *string* (the column's text itself is
  canonical JSON of the masked details: keys sorted, no insignificant whitespace, non-ASCII
  characters written as themselves).

The array is written with no whitespace at all (`,` and `:` only), strings in double quotes with
`"` and `\\` escaped by a backslash, control characters as `\\b \\f \\n \\r \\t` or `\\u00xx`
(lowercase hex), and every other character as itself, not `\\u`-escaped. This is what Python's
`json.dumps(array, ensure_ascii=False, separators=(",", ":"))` and JavaScript's `JSON.stringify`
write. Example, for the first entry:

    ["000…000","2020-02-03T01:02:03.000450Z","user:2:binh","campaign.approve","campaign:7",7,
     "{\\"note\\":\\"đã duyệt\\"}"]

The chain shows changes, removals and insertions in the middle; it cannot show that the newest
entries were cut off, so keep a copy of the latest hash elsewhere to check the tail.
"""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import func
from sqlmodel import Session, col, select

from campaigns.models import AuditEntry, User, utcnow
from campaigns.numbers import mask_in_text

GENESIS: Final = "0" * 64

# Key of the PostgreSQL advisory lock that serialises appends: "auditlog" in ASCII.
APPEND_LOCK_KEY: Final = 0x61756469746C6F67


def actor_label(user: User | None) -> str:
    """How the log names an actor: "user:<id>:<username>", or "system" for no user."""
    if user is None:
        return "system"
    return f"user:{user.id}:{user.username}"


def record(
    *,
    session: Session,
    actor: User | str,
    action: str,
    subject: str,
    campaign_id: int | None = None,
    details: Mapping[str, object] | None = None,
) -> AuditEntry:
    """Append one entry to the audit log, chained to the latest one, and flush it."""
    _lock_for_append(session)
    latest = session.exec(
        select(AuditEntry.hash).order_by(col(AuditEntry.id).desc()).limit(1)
    ).first()
    entry = AuditEntry(
        at=utcnow(),
        actor=actor if isinstance(actor, str) else actor_label(actor),
        action=action,
        subject=subject,
        campaign_id=campaign_id,
        details=_canonical_json(mask_details(details or {})),
        prev_hash=latest or GENESIS,
        hash="",
    )
    entry.hash = entry_hash(entry)
    session.add(entry)
    session.flush()
    return entry


def _lock_for_append(session: Session) -> None:
    # The last hash is read and the new entry written under one lock, so two appends never
    # chain to the same entry. On PostgreSQL: a transaction-level advisory lock, released at
    # commit or rollback, shared by every process on the database. On SQLite the engine opens
    # every transaction with BEGIN IMMEDIATE (dispatcher.db.make_engine), which already
    # serialises writers, so there is nothing to take. The unique `hash` is the last defence.
    if session.get_bind().dialect.name == "postgresql":
        session.exec(select(func.pg_advisory_xact_lock(APPEND_LOCK_KEY))).one()


def entry_hash(entry: AuditEntry) -> str:
    """The hash an entry must have, computed from its content (see the module docstring)."""
    fields = [
        entry.prev_hash,
        _utc_text(entry.at),
        entry.actor,
        entry.action,
        entry.subject,
        entry.campaign_id,
        entry.details,
    ]
    serialised = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(serialised.encode()).hexdigest()


def _utc_text(at: datetime) -> str:
    # SQLite hands back naive datetimes; they were written in UTC.
    utc = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical_json(value: Mapping[str, object]) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Verification:
    """Whether the chain is intact and, if not, the first entry where it breaks."""

    ok: bool
    entries: int
    first_bad_id: int | None
    problem: str | None


def verify(*, session: Session) -> Verification:
    """Recompute the whole chain in id order and name the first entry where it breaks."""
    statement = select(AuditEntry).order_by(col(AuditEntry.id)).execution_options(yield_per=1000)
    previous_id: int | None = None
    previous_hash = GENESIS
    count = 0
    with session.exec(statement) as entries:  # closes PostgreSQL's server-side cursor early
        for entry in entries:
            count += 1
            problem = _problem(entry, previous_id, previous_hash)
            if problem is not None:
                return Verification(ok=False, entries=count, first_bad_id=entry.id, problem=problem)
            previous_id, previous_hash = entry.id, entry.hash
    return Verification(ok=True, entries=count, first_bad_id=None, problem=None)


def _problem(entry: AuditEntry, previous_id: int | None, previous_hash: str) -> str | None:
    # What is wrong with one entry, given the entry before it; None when nothing is.
    if entry_hash(entry) != entry.hash:
        return f"entry {entry.id} was altered: its content does not match its hash"
    if entry.prev_hash == previous_hash:
        return None
    if previous_id is None:
        return (
            f"the entries before {entry.id} are missing, or {entry.id} was inserted: "
            "it is the first entry but its prev_hash is not the genesis hash"
        )
    return (
        f"the entry before {entry.id} is missing or was replaced, or {entry.id} was inserted: "
        f"its prev_hash does not match entry {previous_id}"
    )


def mask_details(details: Mapping[str, object]) -> dict[str, object]:
    """A copy of `details` with every phone number in its strings masked, at any depth."""
    return {key: _masked(value) for key, value in details.items()}


def _masked(value: object) -> object:
    if isinstance(value, str):
        return mask_in_text(value)
    if isinstance(value, Mapping):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_masked(item) for item in value]
    return value
