"""The hash-chained audit log: appends, verification, tampering, masking, API and command."""

import hashlib
import json
import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Barrier

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from campaigns import audit
from campaigns.models import AuditEntry, Role
from campaigns.people import create_authority, create_user
from dispatcher.db import make_engine, session_scope

# --- helpers -------------------------------------------------------------------------------


def _append(engine: Engine, count: int, campaign_id: int | None = None) -> list[int]:
    ids = []
    for n in range(count):
        with session_scope(engine) as session:
            entry = audit.record(
                session=session,
                actor="system",
                action="campaign.test",
                subject=f"campaign:{campaign_id}",
                campaign_id=campaign_id,
                details={"n": n, "note": "thử nghiệm"},
            )
            assert entry.id is not None
            ids.append(entry.id)
    return ids


def _verify(engine: Engine) -> audit.Verification:
    with Session(engine) as session:
        return audit.verify(session=session)


def _entries(engine: Engine) -> list[AuditEntry]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.id))))


@contextmanager
def _tampering(engine: Engine) -> Iterator[Connection]:
    """A transaction that goes around the append-only triggers, as a DBA could."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        yield connection


def _independent_hash(row: AuditEntry) -> str:
    """The hash as the module docstring tells an auditor to compute it, without its code."""
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
    fields = [
        row.prev_hash,
        at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        row.actor,
        row.action,
        row.subject,
        row.campaign_id,
        row.details,
    ]
    payload = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _insert(connection: Connection, **values: object) -> None:
    connection.execute(
        text(
            "INSERT INTO audit_entry (id, at, actor, action, subject, campaign_id, details, "
            "prev_hash, hash) VALUES (:id, :at, :actor, :action, :subject, :campaign_id, "
            ":details, :prev_hash, :hash)"
        ),
        values,
    )


def _forged(entry_id: int, prev_hash: str) -> dict[str, object]:
    """A self-consistent forged entry that claims to follow the entry hashed `prev_hash`."""
    forged = AuditEntry(
        id=entry_id,
        at=datetime(2020, 2, 3, 1, 2, 3, 450, tzinfo=UTC),
        actor="user:1:mallory",
        action="campaign.approve",
        subject="campaign:9",
        campaign_id=9,
        details="{}",
        prev_hash=prev_hash,
        hash="",
    )
    forged.hash = audit.entry_hash(forged)
    return forged.model_dump()


# --- the chain -----------------------------------------------------------------------------


def test_an_empty_log_verifies(engine: Engine) -> None:
    assert _verify(engine) == audit.Verification(
        ok=True, entries=0, first_bad_id=None, problem=None
    )


def test_a_chain_of_entries_verifies_and_links_each_to_the_one_before(engine: Engine) -> None:
    _append(engine, 5)
    rows = _entries(engine)
    assert [row.prev_hash for row in rows] == [audit.GENESIS] + [row.hash for row in rows[:-1]]
    assert [row.hash for row in rows] == [_independent_hash(row) for row in rows]
    assert json.loads(rows[0].details) == {"n": 0, "note": "thử nghiệm"}
    assert rows[0].details == '{"n":0,"note":"thử nghiệm"}'
    assert _verify(engine) == audit.Verification(
        ok=True, entries=5, first_bad_id=None, problem=None
    )


def test_entries_are_written_in_utc_and_name_their_actor(engine: Engine) -> None:
    with session_scope(engine) as session:
        authority = create_authority(session=session, code="STTTT-GL", name="Sở TT&TT")
        user, _ = create_user(
            session=session, username="an", name="An", role=Role.SUBMITTER, authority=authority
        )
        before = datetime.now(UTC)
        entry = audit.record(session=session, actor=user, action="campaign.create", subject="x")
        assert entry.actor == f"user:{user.id}:an"
        assert entry.at.tzinfo is not None and before <= entry.at <= datetime.now(UTC)
    assert audit.actor_label(None) == "system"


@pytest.mark.parametrize(
    ("column", "value"), [("details", '{"n":2,"note":"khác"}'), ("actor", "user:9:mallory")]
)
def test_altering_an_entry_fails_verification_at_that_entry(
    engine: Engine, column: str, value: str
) -> None:
    ids = _append(engine, 5)
    with _tampering(engine) as connection:
        connection.execute(
            text(f"UPDATE audit_entry SET {column} = :value WHERE id = :id"),
            {"value": value, "id": ids[2]},
        )
    result = _verify(engine)
    assert (result.ok, result.first_bad_id, result.entries) == (False, ids[2], 3)
    assert result.problem == f"entry {ids[2]} was altered: its content does not match its hash"


def test_an_altered_entry_given_a_new_hash_breaks_the_link_to_the_next(engine: Engine) -> None:
    ids = _append(engine, 5)
    row = _entries(engine)[2]
    row.actor = "user:9:mallory"
    with _tampering(engine) as connection:
        connection.execute(
            text("UPDATE audit_entry SET actor = :actor, hash = :hash WHERE id = :id"),
            {"actor": row.actor, "hash": audit.entry_hash(row), "id": ids[2]},
        )
    result = _verify(engine)
    assert (result.ok, result.first_bad_id) == (False, ids[3])
    assert result.problem is not None
    assert result.problem.startswith(f"the entry before {ids[3]} is missing or was replaced")
    assert result.problem.endswith(f"its prev_hash does not match entry {ids[2]}")


def test_deleting_a_middle_entry_fails_verification_at_the_entry_after_it(
    engine: Engine,
) -> None:
    ids = _append(engine, 5)
    with _tampering(engine) as connection:
        connection.execute(text("DELETE FROM audit_entry WHERE id = :id"), {"id": ids[2]})
    result = _verify(engine)
    assert (result.ok, result.first_bad_id, result.entries) == (False, ids[3], 3)
    assert result.problem is not None
    assert f"before {ids[3]} is missing" in result.problem
    assert result.problem.endswith(f"does not match entry {ids[1]}")


def test_deleting_the_first_entry_fails_verification_at_the_second(engine: Engine) -> None:
    ids = _append(engine, 3)
    with _tampering(engine) as connection:
        connection.execute(text("DELETE FROM audit_entry WHERE id = :id"), {"id": ids[0]})
    result = _verify(engine)
    assert (result.ok, result.first_bad_id) == (False, ids[1])
    assert result.problem is not None and "not the genesis hash" in result.problem


def test_a_forged_entry_appended_after_an_earlier_one_fails_at_the_forgery(
    engine: Engine,
) -> None:
    ids = _append(engine, 5)
    rows = _entries(engine)
    # Plausible: it chains to a real entry, and its own hash is right.
    with _tampering(engine) as connection:
        _insert(connection, **_forged(ids[-1] + 1, prev_hash=rows[2].hash))
    result = _verify(engine)
    assert (result.ok, result.first_bad_id, result.entries) == (False, ids[-1] + 1, 6)
    assert result.problem is not None
    assert result.problem.endswith(f"its prev_hash does not match entry {ids[-1]}")


def test_an_entry_replaced_by_a_forgery_fails_at_the_entry_after_it(engine: Engine) -> None:
    ids = _append(engine, 5)
    rows = _entries(engine)
    with _tampering(engine) as connection:
        connection.execute(text("DELETE FROM audit_entry WHERE id = :id"), {"id": ids[2]})
        _insert(connection, **_forged(ids[2], prev_hash=rows[1].hash))
    result = _verify(engine)
    assert (result.ok, result.first_bad_id) == (False, ids[3])
    assert result.problem is not None
    assert result.problem.endswith(f"its prev_hash does not match entry {ids[2]}")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entry SET actor = 'user:9:mallory'",
        "DELETE FROM audit_entry",
        "TRUNCATE audit_entry",
    ],
)
def test_postgresql_refuses_to_change_or_remove_entries(engine: Engine, statement: str) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the append-only triggers exist on PostgreSQL only")
    _append(engine, 2)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text(statement))
    assert _verify(engine).entries == 2


# --- concurrent appends --------------------------------------------------------------------

PROCESSES = 4
APPENDS = 50


def _append_from_process(url: str, worker: int, start: Barrier) -> None:
    engine = make_engine(url)
    start.wait(timeout=60)
    for n in range(APPENDS):
        with session_scope(engine) as session:
            audit.record(
                session=session,
                actor=f"worker:{worker}",
                action="concurrency.test",
                subject=f"append:{n}",
                details={"worker": worker, "n": n},
            )
    engine.dispose()


def test_appends_from_several_processes_leave_one_unforked_chain(
    engine: Engine, database_url: str
) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    processes = [
        context.Process(target=_append_from_process, args=(database_url, worker, start))
        for worker in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=240)
    assert [process.exitcode for process in processes] == [0] * PROCESSES

    rows = _entries(engine)
    assert len(rows) == PROCESSES * APPENDS
    assert len({row.prev_hash for row in rows}) == len(rows)  # no two entries share a parent
    assert _verify(engine) == audit.Verification(
        ok=True, entries=PROCESSES * APPENDS, first_bad_id=None, problem=None
    )


# --- masking -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+84912345678", "+84******678"),
        ("gọi 0912 345 678 ngay", "gọi +84******678 ngay"),
        ("số cũ 0162.345.6789", "số cũ +84******789"),
        ("84912345678", "+84******678"),
        ("foreign +1 202 555 0143", "foreign +1*******143"),
        ("0912345678, 0987654321", "+84******678, +84******321"),
        ("0912345678 0987654321", "+84******678 +84******321"),
    ],
)
def test_phone_numbers_in_strings_are_masked(raw: str, masked: str) -> None:
    assert audit.mask_details({"text": raw}) == {"text": masked}


@pytest.mark.parametrize(
    "kept",
    [
        "05/CT-BTTTT of 02/02/2020",
        "2020-02-02T10:00:00+07:00",
        "a" * 40 + "0912345678",  # inside a hash-like word
        "batch 1234567",
        "028 3829 1234",  # a Ho Chi Minh City fixed line, not a mobile
    ],
)
def test_what_is_not_a_phone_number_is_kept(kept: str) -> None:
    assert audit.mask_details({"text": kept}) == {"text": kept}


def test_phone_numbers_are_masked_at_any_depth_before_they_are_stored(engine: Engine) -> None:
    details = {
        "msisdn": "+84912345678",
        "test_numbers": ["0987654321", {"old": "01623456789"}],
        "count": 912345678,
        "exercise": True,
    }
    with session_scope(engine) as session:
        entry = audit.record(
            session=session,
            actor="system",
            action="authority.update",
            subject="authority:1",
            details=details,
        )
    stored = _entries(engine)[0].details
    assert stored == entry.details
    assert json.loads(stored) == {
        "count": 912345678,
        "exercise": True,
        "msisdn": "+84******678",
        "test_numbers": ["+84******321", {"old": "+84******789"}],
    }
    assert _verify(engine).ok


# --- the API -------------------------------------------------------------------------------


@dataclass
class Callers:
    auditor: dict[str, str]
    admin: dict[str, str]
    submitter: dict[str, str]


@pytest.fixture
def callers(engine: Engine) -> Callers:
    with session_scope(engine) as session:
        authority = create_authority(session=session, code="STTTT-GL", name="Sở TT&TT Gia Lai")
        tokens = [
            create_user(
                session=session, username=username, name=username, role=role, authority=where
            )[1]
            for username, role, where in (
                ("kiem", Role.AUDITOR, None),
                ("quan", Role.ADMIN, None),
                ("an", Role.SUBMITTER, authority),
            )
        ]
    return Callers(*({"Authorization": f"Bearer {token}"} for token in tokens))


def test_an_auditor_reads_entries_of_one_campaign_with_their_details(
    client: TestClient, callers: Callers, engine: Engine
) -> None:
    first = _append(engine, 2, campaign_id=1)
    _append(engine, 2, campaign_id=2)
    answer = client.get("/v1/audit", params={"campaign_id": 1}, headers=callers.auditor)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [entry["id"] for entry in body] == first
    assert body[0]["details"] == {"n": 0, "note": "thử nghiệm"}
    assert body[0]["prev_hash"] == audit.GENESIS
    assert body[1]["prev_hash"] == body[0]["hash"]
    assert datetime.fromisoformat(body[0]["at"]).utcoffset() == timedelta(0)


def test_the_log_is_filtered_by_actor_action_and_time_and_paged(
    client: TestClient, callers: Callers, engine: Engine
) -> None:
    ids = _append(engine, 5)
    with session_scope(engine) as session:
        other = audit.record(session=session, actor="user:1:x", action="other", subject="s")
    moment = other.at.isoformat()

    def found(**params: object) -> list[int]:
        answer = client.get("/v1/audit", params=params, headers=callers.admin)
        assert answer.status_code == 200, answer.text
        return [entry["id"] for entry in answer.json()]

    assert found(actor="user:1:x") == [other.id]
    assert found(action="campaign.test") == ids
    assert found(limit=2, after_id=ids[0]) == ids[1:3]
    assert found(since=moment) == [other.id]
    assert found(until=moment) == ids
    assert client.get("/v1/audit?limit=1001", headers=callers.admin).status_code == 422


def test_an_auditor_verifies_the_chain(
    client: TestClient, callers: Callers, engine: Engine
) -> None:
    ids = _append(engine, 3)
    answer = client.get("/v1/audit/verify", headers=callers.auditor)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"ok": True, "entries": 3, "first_bad_id": None, "problem": None}
    with _tampering(engine) as connection:
        connection.execute(text("DELETE FROM audit_entry WHERE id = :id"), {"id": ids[1]})
    broken = client.get("/v1/audit/verify", headers=callers.auditor).json()
    assert (broken["ok"], broken["first_bad_id"]) == (False, ids[2])


@pytest.mark.parametrize("path", ["/v1/audit", "/v1/audit/verify"])
def test_a_submitter_may_not_read_the_log(client: TestClient, callers: Callers, path: str) -> None:
    answer = client.get(path, headers=callers.submitter)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("path", ["/v1/audit", "/v1/audit/verify"])
def test_without_a_token_the_log_is_closed(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401


# --- the command ---------------------------------------------------------------------------


def test_the_verify_command_exits_0_when_intact_and_1_after_tampering(
    settings_env: None, engine: Engine
) -> None:
    from dispatcher.cli import app

    ids = _append(engine, 4)
    runner = CliRunner()
    intact = runner.invoke(app, ["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert "audit log intact: 4 entries" in intact.output

    with _tampering(engine) as connection:
        connection.execute(
            text("UPDATE audit_entry SET details = '{}' WHERE id = :id"), {"id": ids[1]}
        )
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert f"entry {ids[1]} was altered" in broken.output
