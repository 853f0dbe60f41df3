"""Urgent before normal on every bind, and normal campaigns sharing the rate fairly.

Two worker processes share one SMSC account; the simulator runs in this process so the tests
can read the order in which the SMSC accepted the messages.
"""

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from sqlalchemy import func, select

from campaigns.models import Campaign, Message
from dispatcher import demo as flow
from dispatcher.db import make_engine
from dispatcher.smsc.pdu import message_text
from dispatcher.smsc.simulator import SimulatorConfig
from dispatcher.smsc.threaded import ThreadedSimulator, serve_in_thread
from dispatcher.stack import Stack, StackConfig

pytestmark = pytest.mark.timeout(240)
URGENT_TEXT = "KHẨN: Sở Y tế Gia Lai yêu cầu người dân ở nhà, không tụ tập đông người"
SECOND_TEXT = "Sở TT&TT Gia Lai: tiêm vắc-xin đầy đủ, theo dõi sức khoẻ hằng ngày"
WINDOW = 100


def wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def world(
    tmp_path: Path, database_url: str, redis_url: str
) -> Iterator[tuple[Stack, ThreadedSimulator, flow.Seeded]]:
    smsc = serve_in_thread(SimulatorConfig(port=0, keep_messages=40_000, max_rate=800))
    config = StackConfig(
        var_dir=tmp_path,
        database_url=database_url,
        redis_url=redis_url,
        smsc=("127.0.0.1", smsc.port),
        queue_name=f"test-{uuid.uuid4().hex[:8]}",
        rate=800,
        window=WINDOW,
        workers=2,
    )
    try:
        with Stack(config) as stack:
            seeded = flow.seed(database_url, 12_000)
            yield stack, smsc, seeded
    finally:
        smsc.stop()


def texts(smsc: ThreadedSimulator) -> list[str]:
    """The text of every submit the SMSC accepted, in order."""
    return [message_text(m) for m in list(smsc.simulator.accepted)]


def test_an_urgent_campaign_overtakes_a_normal_one_at_full_rate(
    world: tuple[Stack, ThreadedSimulator, flow.Seeded], database_url: str
) -> None:
    stack, smsc, seeded = world
    with httpx.Client(base_url=stack.api_url, timeout=30) as api:
        normal = flow.run_campaign(api, seeded)
        wait_for(lambda: smsc.stats.submits >= 2000)
        urgent = flow.run_campaign(api, seeded, text=URGENT_TEXT, priority="urgent", target=["622"])
        flow.watch(stack, api, seeded.approver_token, urgent, 120, Console(quiet=True))
        report = flow.watch(stack, api, seeded.approver_token, normal, 180, Console(quiet=True))
    assert report["status"] == "completed"
    engine = make_engine(database_url)
    with engine.connect() as connection:
        approved_at = connection.execute(
            select(Campaign.approved_at).where(Campaign.id == urgent)  # type: ignore[arg-type]
        ).scalar_one()
        first_urgent = connection.execute(
            select(func.min(Message.submitted_at)).where(Message.campaign_id == urgent)  # type: ignore[arg-type]
        ).scalar_one()
        urgent_count = connection.execute(
            select(func.count()).where(Message.campaign_id == urgent)  # type: ignore[arg-type]
        ).scalar_one()
    engine.dispose()
    assert (first_urgent - approved_at).total_seconds() < 1.0
    order = texts(smsc)
    is_urgent = [text == URGENT_TEXT for text in order]
    first, last = is_urgent.index(True), len(is_urgent) - 1 - is_urgent[::-1].index(True)
    assert sum(is_urgent) == urgent_count > 500
    # Between the first urgent submit and the last, only normal messages already on the wire
    # (a window per bind) or written before the second worker saw the campaign.
    normal_meanwhile = (last - first + 1) - urgent_count
    assert normal_meanwhile <= 2 * WINDOW
    assert not all(is_urgent[last + 1 :]) or last + 1 == len(order)  # the normal one resumed
    assert len(order) == 12_000 + urgent_count  # and nothing was sent twice


def test_two_normal_campaigns_share_the_rate(
    world: tuple[Stack, ThreadedSimulator, flow.Seeded],
) -> None:
    stack, smsc, seeded = world
    with httpx.Client(base_url=stack.api_url, timeout=30) as api:
        first = flow.run_campaign(api, seeded, target=["622", "623", "624", "625", "626"])
        second = flow.run_campaign(api, seeded, text=SECOND_TEXT, target=["627", "628", "629"])
        for campaign_id in (first, second):
            flow.watch(stack, api, seeded.approver_token, campaign_id, 120, Console(quiet=True))
    order = texts(smsc)
    is_second = [text == SECOND_TEXT for text in order]
    # While both have messages queued, each gets about half of the submits.
    start = is_second.index(True)
    end = min(
        len(order) - 1 - is_second[::-1].index(True), len(order) - 1 - is_second[::-1].index(False)
    )
    # Skipping what the binds already held of the first when the second was approved.
    overlap = is_second[start + 2 * 4 * WINDOW : end]
    assert len(overlap) > 1000
    middle = overlap[len(overlap) // 4 : len(overlap) * 3 // 4]
    assert 0.3 < sum(middle) / len(middle) < 0.7  # first-come-first-served would give 0 or 1
