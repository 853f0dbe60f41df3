"""Faults mid-campaign with real processes: what the SMSC received, against the database.

Each test runs one trial of `dispatcher chaos` (dispatcher/chaos.py: the same fault functions)
with a smaller campaign: the simulator as a child process recording every accepted submit_sm,
the API, two worker processes. Every test checks what the SMSC received (each destination at
most once unless the message is in doubt; every message neither in doubt nor refused received
exactly once), the final report, and the promise of its fault.
"""

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dispatcher import chaos
from tests.conftest import TEST_DATABASE_URL

pytestmark = pytest.mark.timeout(300)

SETTINGS = chaos.ChaosSettings(
    messages=3000, workers=2, rate=300, window=100, receipt_timeout=15, timeout=150
)
RECOVERY_SECONDS = 30  # a dead worker's unwritten messages are on their way within this
# A known engine bug: ReceiptMatcher._apply_chunk takes receipts out of `waiting` before its
# transaction commits; when the database goes away in between, they are neither stored nor
# acknowledged (so the SMSC does not deliver them again while the link stays up), and their
# messages end `unknown` at the receipt timeout although the network reported them delivered.
RECEIPTS_LOST = (
    "engine bug: delivery receipts lost when the database drops in the middle of their "
    "transaction (ReceiptMatcher pops them from `waiting` before the commit)"
)


def run(
    fault: str, tmp_path: Path, database_url: str, redis_url: str | None, **changes: Any
) -> chaos.Result:
    """One trial; fails with the end of the logs if it could not run to completion."""
    settings = replace(SETTINGS, queue_name=f"test-{uuid.uuid4().hex[:8]}", **changes)
    result = chaos.run_trial(
        chaos.BY_NAME[fault],
        var_dir=tmp_path,
        settings=settings,
        database_url=database_url,
        redis_url=redis_url,
    )
    assert result.error is None, f"{result.error}\n{_log_tails(tmp_path / 'logs')}"
    check_received(result)
    return result


def _log_tails(logs: Path) -> str:
    return "\n".join(
        f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        for log in sorted(logs.glob("*.log"))
    )


def check_received(result: chaos.Result) -> None:
    """What every fault promises: the campaign completed, nothing sent twice, nothing lost."""
    evidence, report = result.evidence, result.report
    assert evidence is not None and report is not None and result.trial is not None
    assert report["status"] == "completed"
    messages = result.trial.settings.messages
    assert sum(report["by_status"].values()) == messages == len(evidence.rows)
    assert report["by_status"] == evidence.by_status
    assert not set(report["by_status"]) & {"queued", "submitting", "submitted"}
    assert evidence.strangers == 0
    assert evidence.audit_problem is None
    # Each destination at most once, except messages the database marks in doubt.
    assert evidence.sent_twice == [], "a number not in doubt got the message twice"
    # Every message neither in doubt nor refused by the SMSC reached it exactly once.
    assert evidence.lost == [], "a message not in doubt never reached the SMSC"
    for message_id, row in evidence.rows.items():
        if row.doubt is None and row.status != "failed":
            assert evidence.times_accepted(message_id) == 1


def in_doubt_per_bind(evidence: chaos.Evidence) -> int:
    """The most in-doubt messages one worker (one bind each) left."""
    return max(evidence.in_doubt_by_worker().values(), default=0)


def test_a_killed_worker_s_unwritten_messages_go_once_through_another(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    result = run("worker-kill", tmp_path, database_url, redis_url)
    assert result.trial is not None and result.evidence is not None
    dead, evidence = result.trial.dead, result.evidence
    assert dead is not None and dead.noted is not None
    never_written = dead.never_written
    assert never_written, "the kill should find messages claimed and not yet written"
    # Within 30 s of the kill the campaign moved again: every message the dead worker had
    # claimed and never written was accepted by the SMSC, once, from another worker.
    seconds = result.trial.reached["its unwritten messages sent"]
    assert seconds <= RECOVERY_SECONDS
    for message_id in never_written:
        row = evidence.rows[message_id]
        assert row.doubt is None and row.status == "delivered"
        assert row.claimed_by != dead.worker_id
        assert evidence.times_accepted(message_id) == 1
    # Only what its bind may have written is in doubt: no more than its window.
    doubtful = set(evidence.in_doubt)
    assert doubtful <= set(dead.held) & dead.noted
    assert len(doubtful) <= SETTINGS.window
    assert set(evidence.doubts) <= {"worker_lost"}
    # The dead worker's receipts came again to the other worker: the rest was delivered.
    assert all(r.status == "delivered" for r in evidence.rows.values() if r.doubt is None)


def test_a_worker_killed_at_full_speed_leaves_at_most_its_window_in_doubt(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    result = run("worker-kill", tmp_path, database_url, redis_url, messages=10_000, rate=0)
    assert result.trial is not None and result.evidence is not None
    dead, in_doubt = result.trial.dead, result.evidence.in_doubt
    assert dead is not None and dead.noted is not None
    assert len(in_doubt) <= SETTINGS.window, (
        f"{len(in_doubt)} in doubt: the dead worker held {len(dead.held)} messages, "
        f"{len(set(dead.held) & dead.noted)} of them in its write-ahead log"
    )


def test_a_worker_stopped_with_sigterm_leaves_nothing_in_doubt(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    result = run("worker-term", tmp_path, database_url, redis_url)
    assert result.trial is not None and result.evidence is not None
    assert result.trial.stopped_exit_code == 0
    assert result.evidence.in_doubt == []
    assert "unknown" not in result.evidence.by_status
    assert result.evidence.by_status == {"delivered": SETTINGS.messages}


def test_a_dropped_smsc_connection_leaves_at_most_a_window_in_doubt(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    result = run("smsc-drop", tmp_path, database_url, redis_url)
    evidence = result.evidence
    assert evidence is not None
    assert in_doubt_per_bind(evidence) <= SETTINGS.window
    assert set(evidence.doubts) <= {"connection_lost"}
    # Everything else was delivered: the SMSC kept the receipts of the dropped sessions.
    assert all(r.status == "delivered" for r in evidence.rows.values() if r.doubt is None)


def test_a_restarted_smsc_leaves_at_most_a_window_in_doubt(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    result = run("smsc-restart", tmp_path, database_url, redis_url)
    assert result.trial is not None and result.evidence is not None
    evidence, before = result.evidence, result.trial.accepted_before
    assert before is not None
    assert in_doubt_per_bind(evidence) <= SETTINGS.window
    assert set(evidence.doubts) <= {"connection_lost"}
    for row in evidence.rows.values():
        if row.doubt is None and row.status != "delivered":
            # Accepted by the SMSC that was killed, whose receipt died with it: `unknown` once
            # the receipt timeout passed, and never sent again.
            assert row.status == "unknown"
            assert before[row.msisdn.lstrip("+")] == 1


def test_workers_outlive_a_redis_restarted_empty(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    # Always the stack's own embedded Redis (run_trial sees to it): never the shared one.
    result = run("redis-restart", tmp_path, database_url, redis_url)
    assert result.trial is not None and result.evidence is not None
    assert len(result.trial.watched_pids) == SETTINGS.workers  # checked alive at the end
    # Sending paused while Redis was away: nothing is written that cannot be noted first, so
    # the SMSC got at most what was already on the wire.
    away = result.trial.accepted_while_away
    assert away is not None and away <= SETTINGS.window * SETTINGS.workers
    assert result.evidence.in_doubt == []
    assert result.evidence.by_status == {"delivered": SETTINGS.messages}


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs DISPATCHER_TEST_DATABASE_URL")
def test_workers_outlive_a_postgresql_restart_and_the_api_answers_503(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    result = run("postgres-restart", tmp_path, database_url, redis_url)
    assert result.trial is not None and result.evidence is not None
    assert len(result.trial.watched_pids) == SETTINGS.workers  # checked alive at the end
    statuses = result.trial.api_statuses
    assert statuses[chaos.AFTER] > 0
    # While the database was away the API said so with a 503, never a 500.
    assert set(statuses) - {"200", chaos.AFTER} <= {"503"}, statuses
    assert result.evidence.in_doubt == []
    if result.evidence.no_receipt:
        # Only this known bug, once everything above held (see RECEIPTS_LOST).
        pytest.xfail(f"{len(result.evidence.no_receipt)} receipts: {RECEIPTS_LOST}")
    assert result.evidence.by_status == {"delivered": SETTINGS.messages}
