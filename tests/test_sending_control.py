"""Cancel, pause, expiry, exercises and long messages, end to end against the simulator.

The simulator runs in this process so the tests can watch what reaches the SMSC; the API and
the worker run as their own processes, as in production.
"""

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from sqlmodel import select

from campaigns.models import Authority, Role
from campaigns.people import create_user
from dispatcher import demo as flow
from dispatcher.db import make_engine, session_scope
from dispatcher.smsc.pdu import message_text
from dispatcher.smsc.simulator import SimulatorConfig
from dispatcher.smsc.threaded import ThreadedSimulator, serve_in_thread
from dispatcher.stack import Stack, StackConfig

pytestmark = pytest.mark.timeout(180)
TEST_NUMBERS = ["+84912000001", "+84912000002", "+84912000003"]


@dataclass
class Run:
    stack: Stack
    smsc: ThreadedSimulator
    api: httpx.Client
    seeded: flow.Seeded
    operator: dict[str, str]

    def report(self, campaign_id: int) -> dict[str, object]:
        return flow.report(self.api, self.seeded.approver_token, campaign_id)

    def finish(self, campaign_id: int) -> dict[str, object]:
        return flow.watch(
            self.stack, self.api, self.seeded.approver_token, campaign_id, 120, Console(quiet=True)
        )


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def last_submit_after(smsc: ThreadedSimulator, t0: float, quiet: float) -> float:
    """Seconds from `t0` to the SMSC's last accepted submit, once it has been quiet `quiet` s."""
    wait_for(lambda: time.monotonic() - smsc.stats.last_submit >= quiet)
    return smsc.stats.last_submit - t0


@pytest.fixture
def run_factory(
    tmp_path: Path, database_url: str, redis_url: str
) -> Iterator[Callable[[int, float], Run]]:
    cleanups: list[Callable[[], None]] = []

    def start(
        subscribers: int, rate: float, job_timeout: int = 3600, requeue_after: float = 60
    ) -> Run:
        smsc = serve_in_thread(SimulatorConfig(port=0, keep_messages=10_000))
        cleanups.append(smsc.stop)
        config = StackConfig(
            var_dir=tmp_path,
            database_url=database_url,
            redis_url=redis_url,
            smsc=("127.0.0.1", smsc.port),
            queue_name=f"test-{uuid.uuid4().hex[:8]}",
            rate=rate,
            job_timeout=job_timeout,
            requeue_after=requeue_after,
        )
        stack = Stack(config).__enter__()
        cleanups.insert(0, lambda: stack.__exit__(None, None, None))
        seeded = flow.seed(database_url, subscribers)
        engine = make_engine(database_url)
        with session_scope(engine) as session:
            authority = session.exec(select(Authority)).one()
            authority.test_numbers = TEST_NUMBERS
            session.add(authority)
            _, token = create_user(
                session=session, username="op", name="Operator", role=Role.OPERATOR, authority=None
            )
        engine.dispose()
        api = httpx.Client(base_url=stack.api_url, timeout=30)
        cleanups.insert(0, api.close)
        return Run(stack, smsc, api, seeded, {"Authorization": f"Bearer {token}"})

    yield start  # type: ignore[misc]
    for cleanup in cleanups:
        cleanup()


def test_cancel_stops_submits_within_two_seconds(run_factory: Callable[[int, float], Run]) -> None:
    run = run_factory(3000, 300)
    campaign_id = flow.run_campaign(run.api, run.seeded)
    wait_for(lambda: run.smsc.stats.submits >= 300)
    t0 = time.monotonic()
    headers = {"Authorization": f"Bearer {run.seeded.submitter_token}"}
    assert run.api.post(f"/v1/campaigns/{campaign_id}/cancel", headers=headers).is_success
    assert last_submit_after(run.smsc, t0, quiet=2.5) < 2.0
    wait_for(lambda: "submitted" not in run.report(campaign_id)["by_status"])  # type: ignore[operator]
    report = run.report(campaign_id)
    counts: dict[str, int] = report["by_status"]  # type: ignore[assignment]
    assert report["status"] == "cancelled"
    assert set(counts) == {"delivered", "cancelled"}
    assert counts["delivered"] == run.smsc.stats.submits
    assert counts["cancelled"] > 1000
    assert sum(counts.values()) == 3000


def test_pause_holds_and_resume_finishes(run_factory: Callable[[int, float], Run]) -> None:
    run = run_factory(1500, 500)
    campaign_id = flow.run_campaign(run.api, run.seeded)
    wait_for(lambda: run.smsc.stats.submits >= 200)
    t0 = time.monotonic()
    paused = run.api.post(f"/v1/campaigns/{campaign_id}/pause", headers=run.operator)
    assert paused.json()["status"] == "paused"
    assert last_submit_after(run.smsc, t0, quiet=1.5) < 2.0
    held = run.smsc.stats.submits
    assert 200 <= held < 1500
    assert run.report(campaign_id)["by_status"]["queued"] == 1500 - held  # type: ignore[index]
    resumed = run.api.post(f"/v1/campaigns/{campaign_id}/resume", headers=run.operator)
    assert resumed.json()["status"] == "sending"
    report = run.finish(campaign_id)
    assert report["status"] == "completed"
    assert report["by_status"] == {"delivered": 1500}
    assert run.smsc.stats.submits == 1500  # nothing sent twice


def test_nothing_is_submitted_after_expiry(run_factory: Callable[[int, float], Run]) -> None:
    run = run_factory(3000, 300)
    expiry = datetime.now(UTC) + timedelta(seconds=4)
    campaign_id = flow.run_campaign(run.api, run.seeded, send_expiry=expiry.isoformat())
    deadline = time.monotonic() + (expiry - datetime.now(UTC)).total_seconds()
    wait_for(lambda: run.report(campaign_id)["status"] == "expired", timeout=30)
    # Only what was already on the wire at the expiry may reach the SMSC a moment later.
    assert last_submit_after(run.smsc, deadline, quiet=1.0) <= 0.5
    wait_for(lambda: "submitted" not in run.report(campaign_id)["by_status"])  # type: ignore[operator]
    counts: dict[str, int] = run.report(campaign_id)["by_status"]  # type: ignore[assignment]
    assert set(counts) == {"delivered", "expired"}
    assert counts["delivered"] == run.smsc.stats.submits
    # The SMSC was told the same expiry, as the SMPP validity period.
    assert run.smsc.simulator.accepted[0].validity_period == expiry.strftime("%y%m%d%H%M%S000+")


def test_an_exercise_reaches_only_the_test_numbers_and_says_so(
    run_factory: Callable[[int, float], Run],
) -> None:
    run = run_factory(500, 0)
    campaign_id = flow.run_campaign(run.api, run.seeded, mode="exercise")
    report = run.finish(campaign_id)
    assert report["exercise"] is True
    assert report["by_status"] == {"delivered": 3}
    texts = _texts_by_number(run.smsc)
    assert sorted(texts) == TEST_NUMBERS
    # The marker makes this text two SMS; each handset reassembles the marked text.
    assert set(texts.values()) == {"[DIỄN TẬP] " + flow.DEMO_TEXT}


def _texts_by_number(smsc: ThreadedSimulator) -> dict[str, str]:
    parts: dict[str, list[str]] = {}
    for message in smsc.simulator.accepted:
        parts.setdefault("+" + message.destination_addr, []).append(message_text(message))
    return {number: "".join(texts) for number, texts in parts.items()}


def test_a_long_message_goes_in_concatenated_parts(
    run_factory: Callable[[int, float], Run],
) -> None:
    run = run_factory(200, 0)
    text = flow.DEMO_TEXT + " Gọi 1900 9095 khi có dấu hiệu sốt, ho, khó thở."
    campaign_id = flow.run_campaign(run.api, run.seeded, text=text)
    report = run.finish(campaign_id)
    assert (report["parts_per_message"], report["total_sms"]) == (2, 400)
    assert report["by_status"] == {"delivered": 200}
    accepted = list(run.smsc.simulator.accepted)
    assert len(accepted) == 400
    assert all(m.esm_class & 0x40 and m.data_coding == 0x08 for m in accepted)
    assert set(_texts_by_number(run.smsc).values()) == {text}


def test_a_worker_killed_mid_campaign_sends_nothing_twice(
    run_factory: Callable[..., Run],
) -> None:
    run = run_factory(2000, 400, job_timeout=6)
    campaign_id = flow.run_campaign(run.api, run.seeded)
    wait_for(lambda: run.smsc.stats.submits >= 500)
    run.stack.processes["worker"].kill()
    run.stack.processes["worker"].wait()
    run.stack.spawn("worker", ["worker"])  # a new worker takes over the queue
    report = run.finish(campaign_id)
    counts: dict[str, int] = report["by_status"]  # type: ignore[assignment]
    destinations = [m.destination_addr for m in run.smsc.simulator.accepted]
    assert report["status"] == "completed"
    assert len(destinations) == len(set(destinations)), "a number got the message twice"
    assert sum(counts.values()) == 2000
    # What the dead worker had claimed but not reported is in doubt: it ends `unknown`, never
    # sent again. That is at most one claim per job the worker was running.
    assert set(counts) <= {"delivered", "unknown"}
    assert counts.get("unknown", 0) <= 4 * 100
    assert counts["delivered"] + counts.get("unknown", 0) == 2000


def test_a_redis_that_lost_its_data_mid_campaign_loses_no_message(
    run_factory: Callable[..., Run], redis_url: str
) -> None:
    import redis as redis_client

    run = run_factory(2000, 400, requeue_after=3)
    campaign_id = flow.run_campaign(run.api, run.seeded)
    wait_for(lambda: run.smsc.stats.submits >= 500)
    client = redis_client.Redis.from_url(redis_url)
    client.flushdb()  # every queued job is gone, as after a restart without persistence
    client.close()
    report = run.finish(campaign_id)
    destinations = [m.destination_addr for m in run.smsc.simulator.accepted]
    assert report["status"] == "completed"
    assert report["by_status"] == {"delivered": 2000}
    assert len(destinations) == len(set(destinations)) == 2000
