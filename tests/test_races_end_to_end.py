"""Edits and cancels racing the expansion, end to end: what the SMSC receives.

The API and a worker run as their own processes, the simulator in this process, keeping every
message it accepts. Edits and cancels are sent at several delays after the approval was
answered, so that some land before the expansion, some while it runs and some after it; in
every case the SMSC gets only approved text, and no number gets a campaign twice.
"""

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from dispatcher import demo as flow
from dispatcher.smsc.pdu import message_text
from dispatcher.smsc.simulator import SimulatorConfig
from dispatcher.smsc.threaded import ThreadedSimulator, serve_in_thread
from dispatcher.stack import Stack, StackConfig

pytestmark = pytest.mark.timeout(300)
SUBSCRIBERS = 4000
DELAYS = (0.0, 0.03, 0.08, 0.15, 0.6)
FINAL = {"completed", "cancelled"}


def wait_for(check: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


class Racer:
    """One stack, one simulator, and the authority's submitter and approver."""

    def __init__(self, api: httpx.Client, seeded: flow.Seeded, smsc: ThreadedSimulator) -> None:
        self.api = api
        self.smsc = smsc
        self.submitter = {"Authorization": f"Bearer {seeded.submitter_token}"}
        self.approver = {"Authorization": f"Bearer {seeded.approver_token}"}
        self.seeded = seeded

    def campaign(self, campaign_id: int) -> dict[str, object]:
        body: dict[str, object] = self.api.get(
            f"/v1/campaigns/{campaign_id}", headers=self.approver
        ).json()
        return body

    def settled(self, campaign_id: int) -> dict[str, object]:
        """The report once the campaign is final and nothing of it is pending."""

        def done() -> bool:
            report = flow.report(self.api, self.seeded.approver_token, campaign_id)
            pending = {"queued", "submitting", "submitted"} & set(report["by_status"])
            return report["status"] in FINAL and not pending

        wait_for(done)
        return flow.report(self.api, self.seeded.approver_token, campaign_id)

    def received(self, prefix: str) -> tuple[Counter[str], set[str]]:
        """Messages per number and the texts the SMSC accepted for texts starting `prefix`."""
        per_number: Counter[str] = Counter()
        texts: set[str] = set()
        for message in list(self.smsc.simulator.accepted):
            text = message_text(message)
            if text.startswith(prefix):
                per_number[message.destination_addr] += 1
                texts.add(text)
        return per_number, texts


@pytest.fixture
def racer(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[Racer]:
    smsc = serve_in_thread(SimulatorConfig(port=0, keep_messages=100_000))
    config = StackConfig(
        var_dir=tmp_path,
        database_url=database_url,
        redis_url=redis_url,
        smsc=("127.0.0.1", smsc.port),
        queue_name=f"test-{uuid.uuid4().hex[:8]}",
        rate=0,
    )
    with Stack(config) as stack:
        seeded = flow.seed(database_url, SUBSCRIBERS)
        with httpx.Client(base_url=stack.api_url, timeout=60) as api:
            yield Racer(api, seeded, smsc)
    smsc.stop()


def test_an_edit_racing_the_expansion_never_reaches_the_smsc(racer: Racer) -> None:
    for round_no, delay in enumerate(DELAYS):
        approved, edited = f"Đợt {round_no}: đeo khẩu trang", f"Đợt {round_no}: đã sửa"
        campaign_id = flow.run_campaign(racer.api, racer.seeded, text=approved)
        time.sleep(delay)
        body = {**racer.campaign(campaign_id), "text": edited}
        fields = ("title", "text", "sender", "target_areas", "document_number", "document_date")
        answer = racer.api.put(
            f"/v1/campaigns/{campaign_id}",
            headers=racer.submitter,
            json={field: body[field] for field in (*fields, "document_issuer", "send_expiry")},
        )
        assert answer.status_code in (200, 409), answer.text
        if answer.status_code == 200:  # in time: the edit needs an approval of its own
            assert answer.json()["status"] == "submitted"
            sent = edited
            approval = {"content_hash": answer.json()["content_hash"]}
            again = racer.api.post(
                f"/v1/campaigns/{campaign_id}/approve", headers=racer.approver, json=approval
            )
            assert again.status_code == 200, again.text
        else:  # too late: it is sending the approved text
            sent = approved
        report = racer.settled(campaign_id)
        assert report["status"] == "completed"
        assert report["by_status"] == {"delivered": SUBSCRIBERS}
        per_number, texts = racer.received(f"Đợt {round_no}:")
        assert texts == {sent}, (delay, answer.status_code)
        assert len(per_number) == SUBSCRIBERS and set(per_number.values()) == {1}


def test_a_cancel_racing_the_expansion_stops_it(racer: Racer) -> None:
    for round_no, delay in enumerate(DELAYS):
        text = f"Hủy {round_no}: đeo khẩu trang"
        campaign_id = flow.run_campaign(racer.api, racer.seeded, text=text)
        time.sleep(delay)
        answer = racer.api.post(f"/v1/campaigns/{campaign_id}/cancel", headers=racer.submitter)
        assert answer.status_code == 200, answer.text
        report = racer.settled(campaign_id)
        assert report["status"] == "cancelled"
        by_status: dict[str, int] = report["by_status"]  # type: ignore[assignment]
        assert set(by_status) <= {"delivered", "cancelled"}
        per_number, _ = racer.received(f"Hủy {round_no}:")
        assert sum(per_number.values()) == by_status.get("delivered", 0)
        assert set(per_number.values()) <= {1}
