"""Worker processes in the database: registered at start, a heartbeat while alive, found dead."""

import os
import socket
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, literal_column, select, update
from sqlalchemy.sql.elements import ColumnClause

from campaigns.models import Message, MessageStatus, Worker, utcnow
from dispatcher.sending.claims import WORKER_LOST, apply_answers
from dispatcher.sending.submissions import Answer

_worker = Worker.__table__  # type: ignore[attr-defined]
_message = Message.__table__  # type: ignore[attr-defined]
# A literal: on SQLite only that selects the partial index ix_message_submitting.
SUBMITTING: ColumnClause[Any] = literal_column("'submitting'")


def register(engine: Engine) -> int:
    """A new worker row for this process; its id marks the messages it claims."""
    with engine.begin() as connection:
        now = utcnow()
        return int(
            connection.execute(
                insert(_worker)
                .values(
                    name=f"{socket.gethostname()}:{os.getpid()}",
                    started_at=now,
                    heartbeat_at=now,
                    lost=False,
                )
                .returning(_worker.c.id)
            ).scalar_one()
        )


def beat(engine: Engine, worker_id: int) -> bool:
    """Refresh the heartbeat; False if the leader has meanwhile declared this worker dead."""
    with engine.begin() as connection:
        result = connection.execute(
            update(_worker)
            .where(_worker.c.id == worker_id, _worker.c.stopped_at.is_(None))
            .values(heartbeat_at=utcnow())
        )
    return bool(result.rowcount)


def stopped(engine: Engine, worker_id: int) -> None:
    """Mark a worker that stopped by itself."""
    with engine.begin() as connection:
        connection.execute(
            update(_worker).where(_worker.c.id == worker_id).values(stopped_at=utcnow())
        )


def needing_recovery(engine: Engine, dead_after: float) -> list[int]:
    """Workers silent for `dead_after` seconds, and stopped ones still holding messages."""
    cutoff = utcnow() - timedelta(seconds=dead_after)
    with engine.connect() as connection:
        silent = connection.execute(
            select(_worker.c.id).where(
                _worker.c.stopped_at.is_(None), _worker.c.heartbeat_at < cutoff
            )
        ).scalars()
        holding = connection.execute(
            select(_message.c.claimed_by)
            .join(_worker, _worker.c.id == _message.c.claimed_by)
            .where(
                _worker.c.stopped_at.is_not(None),
                _message.c.status == SUBMITTING,
            )
            .distinct()
        ).scalars()
        return sorted({int(w) for w in silent} | {int(w) for w in holding})


def recover(
    engine: Engine,
    worker_id: int,
    written: set[int] | None,
    heard: dict[int, list[Answer]] | None = None,
) -> tuple[int, int, int]:
    """A dead worker's messages: what it heard is stored; those maybe written end `unknown`.

    `written` is what its binds noted before writing (None if that record was lost: then all
    of them are in doubt), `heard` the answers they noted and the worker may not have stored.
    The rest go back to the queue. Returns (answered, queued again, in doubt).
    """
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            update(_worker)
            .where(_worker.c.id == worker_id, _worker.c.stopped_at.is_(None))
            .values(stopped_at=now, lost=True)
        )
        held = _still_held(connection, worker_id)
        # Only messages still held: an answer stored just before the death is not stored twice.
        answered = [a for mid, trail in (heard or {}).items() if mid in held for a in trail]
        if answered:
            apply_answers(connection, worker_id, answered)
            before = len(held)
            held = _still_held(connection, worker_id)
            answered_count = before - len(held)
        else:
            answered_count = 0
        doubtful = held if written is None else held & written
        unsent = held - doubtful
        for ids, values in (
            (doubtful, {"status": MessageStatus.UNKNOWN, "doubt": WORKER_LOST, "done_at": now}),
            (unsent, {"status": MessageStatus.QUEUED, "claimed_by": None}),
        ):
            chunk = sorted(ids)
            for start in range(0, len(chunk), 500):
                connection.execute(
                    update(_message)
                    .where(
                        _message.c.id.in_(chunk[start : start + 500]),
                        _message.c.status == SUBMITTING,
                    )
                    .values(**values)
                )
    return answered_count, len(unsent), len(doubtful)


def _still_held(connection: Connection, worker_id: int) -> set[int]:
    return set(
        connection.execute(
            select(_message.c.id).where(
                _message.c.claimed_by == worker_id,
                _message.c.status == SUBMITTING,
            )
        ).scalars()
    )
