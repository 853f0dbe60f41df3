"""The whole path on real parts: API → approval → expansion → arq batches → SMPP → receipts."""

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from dispatcher import demo as flow
from dispatcher.stack import Stack, StackConfig

pytestmark = pytest.mark.timeout(240)


def run(
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    subscribers: int,
    simulator_args: list[str] | None = None,
    **campaign: Any,
) -> dict[str, Any]:
    """One campaign through the API, the worker and the simulator; its final report."""
    config = StackConfig(
        var_dir=tmp_path,
        database_url=database_url,
        redis_url=redis_url,
        queue_name=f"test-{uuid.uuid4().hex[:8]}",
        simulator_args=simulator_args or [],
    )
    with Stack(config) as stack:
        seeded = flow.seed(database_url, subscribers)
        with httpx.Client(base_url=stack.api_url, timeout=30) as client:
            campaign_id = flow.run_campaign(client, seeded, **campaign)
            return flow.watch(
                stack, client, seeded.approver_token, campaign_id, 180, Console(quiet=True)
            )


def test_a_5000_recipient_campaign_is_delivered_and_reported(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    body = run(tmp_path, database_url, redis_url, 5000)
    # Every message was submitted over SMPP and acknowledged by a receipt.
    assert body["status"] == "completed"
    assert body["recipients"] == 5000
    assert body["by_status"] == {"delivered": 5000}
    assert (body["encoding"], body["total_sms"]) == ("ucs2", 5000)
    assert flow.count_pending(database_url, body["campaign_id"]) == 0


def test_outcomes_reported_by_the_network_reach_the_report(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    outcomes = ["--outcome", "DELIVRD=3", "--outcome", "UNDELIV=1", "--seed", "7"]
    body = run(tmp_path, database_url, redis_url, 2000, outcomes, target=["622"])
    counts = body["by_status"]
    assert body["status"] == "completed"
    assert set(counts) == {"delivered", "undeliverable"}
    assert sum(counts.values()) == body["recipients"]
    assert 0.6 < counts["delivered"] / body["recipients"] < 0.9
    assert 100 < body["recipients"] < 2000  # Pleiku only
