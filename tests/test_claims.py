"""Claims and answers in the database, and what becomes of a dead worker's messages."""

from collections.abc import Callable
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, event, select

from campaigns.models import Message, MessagePart
from dispatcher.sending import claims, housekeeping, wirelog, workers
from dispatcher.sending.submissions import Answer, Outcome


def rows(engine: Engine) -> list[tuple[str, int | None, str | None, int]]:
    """(status, claimed_by, doubt, attempts) of every message, in id order."""
    with engine.connect() as connection:
        return [
            (r.status, r.claimed_by, r.doubt, r.attempts)
            for r in connection.execute(
                select(Message.__table__).order_by(Message.id)  # type: ignore[attr-defined,arg-type]
            )
        ]


def test_two_workers_never_claim_the_same_message(engine: Engine, campaign_id: int) -> None:
    first = claims.claim(engine, campaign_id=campaign_id, worker_id=1, limit=4)
    second = claims.claim(engine, campaign_id=campaign_id, worker_id=2, limit=4)
    third = claims.claim(engine, campaign_id=campaign_id, worker_id=1, limit=4)
    assert len(first) == 4 and len(second) == 4 and len(third) == 2
    assert not {m for m, _ in first} & {m for m, _ in second}
    assert claims.claim(engine, campaign_id=campaign_id, worker_id=2, limit=4) == []
    assert [claimed_by for _, claimed_by, _, _ in rows(engine)] == [1] * 4 + [2] * 4 + [1] * 2


def test_each_answer_ends_a_message_as_it_should(engine: Engine, campaign_id: int) -> None:
    held = [m for m, _ in claims.claim(engine, campaign_id=campaign_id, worker_id=1, limit=10)]
    claims.store_answers(
        engine,
        1,
        [
            Answer(held[0], Outcome.ACCEPTED, smsc_message_id="a1", command_status=0, attempts=1),
            Answer(held[1], Outcome.FAILED, command_status=0x0B, attempts=1),
            Answer(held[2], Outcome.FAILED, command_status=0x08, attempts=5),
            Answer(held[3], Outcome.SKIPPED, reason="cancelled"),
            Answer(held[4], Outcome.SKIPPED, reason="paused"),
            Answer(held[5], Outcome.SKIPPED, reason="expired"),
            Answer(held[6], Outcome.RETURNED, reason="stopped", attempts=2, command_status=0x08),
            Answer(held[7], Outcome.IN_DOUBT, reason="connection_lost", attempts=1),
            Answer(held[8], Outcome.RESENT, reason="connection_lost", final=False),
        ],
    )
    assert rows(engine)[:9] == [
        ("submitted", 1, None, 1),
        ("failed", 1, None, 1),
        ("failed", 1, None, 5),
        ("cancelled", None, None, 0),
        ("queued", None, None, 0),
        ("expired", None, None, 0),
        ("queued", None, None, 2),  # back in the queue, its attempts remembered
        ("unknown", 1, "connection_lost", 1),
        ("submitting", 1, "connection_lost", 0),  # written again: it may arrive twice
    ]
    with engine.connect() as connection:
        errors = connection.execute(
            select(Message.error_code).order_by(Message.id)  # type: ignore[arg-type]
        ).scalars()
        assert list(errors)[:3] == [None, 0x0B, 0x08]
        parts = connection.execute(select(MessagePart.smsc_message_id)).scalars()  # type: ignore[call-overload]
        assert list(parts) == ["a1"]


def test_answers_from_another_worker_change_nothing(engine: Engine, campaign_id: int) -> None:
    held = [m for m, _ in claims.claim(engine, campaign_id=campaign_id, worker_id=1, limit=1)]
    claims.store_answers(engine, 2, [Answer(held[0], Outcome.RETURNED, reason="stopped")])
    assert rows(engine)[0] == ("submitting", 1, None, 0)


def test_a_dead_workers_unwritten_messages_go_back_and_written_ones_are_in_doubt(
    engine: Engine, campaign_id: int, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    worker_id = workers.register(engine)
    wirelog.start(client, "q", worker_id)
    held = [
        m for m, _ in claims.claim(engine, campaign_id=campaign_id, worker_id=worker_id, limit=6)
    ]
    log = wirelog.WireLog(client, "q", worker_id, "smsc1#0")
    log.record(held[:3])  # about to be written: may have reached the SMSC
    log.forget(held[:1])  # its answer was stored
    claims.store_answers(
        engine, worker_id, [Answer(held[0], Outcome.ACCEPTED, smsc_message_id="x", attempts=1)]
    )
    assert workers.needing_recovery(engine, dead_after=3600) == []
    assert workers.needing_recovery(engine, dead_after=0) == [worker_id]
    written = wirelog.written(client, "q", worker_id)
    assert written == set(held[1:3])
    assert workers.recover(engine, worker_id, written) == (0, 3, 2)
    states = rows(engine)
    assert states[0][0] == "submitted"
    assert states[1:3] == [("unknown", worker_id, claims.WORKER_LOST, 0)] * 2
    assert states[3:6] == [("queued", None, None, 0)] * 3  # never written: sent once, elsewhere
    assert not workers.beat(engine, worker_id)  # the worker, if it was only cut off, must stop
    client.close()


def test_answers_heard_but_not_stored_by_a_dead_worker_are_stored_for_it(
    engine: Engine, campaign_id: int, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    worker_id = workers.register(engine)
    wirelog.start(client, "q", worker_id)
    held = [
        m for m, _ in claims.claim(engine, campaign_id=campaign_id, worker_id=worker_id, limit=5)
    ]
    log = wirelog.WireLog(client, "q", worker_id, "smsc1#0")
    log.record(held)
    accepted = Answer(held[0], Outcome.ACCEPTED, smsc_message_id="a0", attempts=1)
    first_part = Answer(held[1], Outcome.ACCEPTED, part_no=0, smsc_message_id="b0", final=False)
    refused = Answer(held[2], Outcome.FAILED, command_status=0x0B, attempts=1)
    stored = Answer(held[3], Outcome.ACCEPTED, smsc_message_id="d0", attempts=1)
    # Heard, noted; only the last one was stored before the worker died (not yet forgotten).
    log.heard({held[0]: [accepted], held[1]: [first_part], held[2]: [refused], held[3]: [stored]})
    claims.store_answers(engine, worker_id, [stored])
    written = wirelog.written(client, "q", worker_id)
    heard = wirelog.heard(client, "q", worker_id)
    assert heard[held[1]] == [first_part]
    # Answered: the accepted and the refused one. In doubt: the half-answered long message and
    # the one never answered. Nothing queued: all five were written.
    assert workers.recover(engine, worker_id, written, heard) == (2, 0, 2)
    states = rows(engine)
    assert [s for s, *_ in states[:5]] == ["submitted", "unknown", "failed", "submitted", "unknown"]
    with engine.connect() as connection:
        parts = connection.execute(
            select(MessagePart.message_id, MessagePart.smsc_message_id).order_by(  # type: ignore[call-overload]
                MessagePart.message_id
            )
        ).all()
    # Each SMSC id kept once, so receipts still match; the stored answer not stored twice.
    assert [tuple(p) for p in parts] == [(held[0], "a0"), (held[1], "b0"), (held[3], "d0")]
    client.close()


def test_with_the_write_ahead_log_lost_every_held_message_is_in_doubt(
    engine: Engine, campaign_id: int, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    worker_id = workers.register(engine)
    wirelog.start(client, "q", worker_id)
    claims.claim(engine, campaign_id=campaign_id, worker_id=worker_id, limit=4)
    client.flushdb()  # Redis restarted empty
    written = wirelog.written(client, "q", worker_id)
    assert written is None
    assert workers.recover(engine, worker_id, written) == (0, 0, 4)
    assert [status for status, *_ in rows(engine)[:4]] == ["unknown"] * 4
    client.close()


def test_a_late_answer_from_a_worker_declared_dead_tells_the_truth(
    engine: Engine, campaign_id: int
) -> None:
    worker_id = workers.register(engine)
    held = [
        m for m, _ in claims.claim(engine, campaign_id=campaign_id, worker_id=worker_id, limit=1)
    ]
    workers.recover(engine, worker_id, written=None)
    assert rows(engine)[0][0] == "unknown"
    claims.store_answers(
        engine, worker_id, [Answer(held[0], Outcome.ACCEPTED, smsc_message_id="y", attempts=1)]
    )
    assert rows(engine)[0][0] == "submitted"


def test_one_answer_per_message_wins_in_a_batch_the_first(engine: Engine, campaign_id: int) -> None:
    """Bulk statements apply rows in one statement per chunk: where two rows name the same
    message, the first one wins, as row-by-row execution did."""
    held = [m for m, _ in claims.claim(engine, campaign_id=campaign_id, worker_id=1, limit=2)]
    first = Answer(held[0], Outcome.ACCEPTED, smsc_message_id="a1", command_status=0, attempts=1)
    again = Answer(held[0], Outcome.ACCEPTED, smsc_message_id="a1", command_status=0, attempts=3)
    claims.store_answers(engine, 1, [first, again])
    assert rows(engine)[0] == ("submitted", 1, None, 1)
    with engine.connect() as connection:
        parts = connection.execute(select(MessagePart.smsc_message_id)).scalars().all()
    assert parts == ["a1"]


def plans(engine: Engine, run: Callable[[], object], table_statement: str) -> list[str]:
    """SQLite's query plan for each statement `run` sends that starts with `table_statement`."""
    seen: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.startswith(table_statement):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", note)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert seen, f"no statement starting with {table_statement!r}"
    with engine.connect() as connection:
        return [
            " / ".join(row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {s}", p))
            for s, p in seen
        ]


def test_sqlite_finds_claims_and_messages_in_flight_by_index(
    engine: Engine, campaign_id: int
) -> None:
    """A claim looks its picked ids up by primary key (walking the status index made each claim
    as slow as the queue was long), and the receipt timeout and a dead worker's recovery use
    the partial indexes that hold only messages in flight."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's query plans")
    claim = plans(
        engine,
        lambda: claims.claim(engine, campaign_id=campaign_id, worker_id=1, limit=4),
        "UPDATE message",
    )
    assert "USING INTEGER PRIMARY KEY" in claim[0] and "ix_message_status" not in claim[0]
    timeout = plans(engine, lambda: housekeeping.expire_unanswered(engine, 60), "UPDATE message ")
    assert "ix_message_submitted_at" in timeout[-1]
    held = plans(engine, lambda: workers.recover(engine, 1, set(), {}), "SELECT message.id")
    assert any("ix_message_submitting" in plan for plan in held)
