"""Several SMSC accounts: traffic spreads by their contracted rates; one that is down gets none."""

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest

from dispatcher import demo as flow
from dispatcher.smsc.simulator import SimulatorConfig
from dispatcher.smsc.threaded import serve_in_thread
from dispatcher.stack import Stack, StackConfig, free_port

pytestmark = pytest.mark.timeout(180)


def test_traffic_follows_the_rates_and_avoids_an_account_that_is_down(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    fast = serve_in_thread(SimulatorConfig(port=0, max_rate=300))
    slow = serve_in_thread(SimulatorConfig(port=0, max_rate=100))
    ids = {"submit_ids": "dec", "receipt_ids": "dec"}
    accounts = [
        {"name": "fast", "port": fast.port, "rate": 300, "max_sessions": 2, **ids},
        {"name": "slow", "port": slow.port, "rate": 100, "max_sessions": 2, **ids},
        {"name": "down", "port": free_port(), "rate": 300, "max_sessions": 2, **ids},
    ]
    config = StackConfig(
        var_dir=tmp_path,
        database_url=database_url,
        redis_url=redis_url,
        smsc=("127.0.0.1", fast.port),
        queue_name=f"test-{uuid.uuid4().hex[:8]}",
        workers=2,
        environment={"DISPATCHER_BINDS": json.dumps(accounts)},
    )
    try:
        with Stack(config) as stack:
            seeded = flow.seed(database_url, 2400)
            with httpx.Client(base_url=stack.api_url, timeout=30) as api:
                campaign_id = flow.run_campaign(api, seeded)
                # To completion: both simulators hand out the same message ids, and receipts
                # are matched within the account that received them, never across.
                deadline = time.monotonic() + 180
                while flow.report(api, seeded.approver_token, campaign_id)["status"] != "completed":
                    assert time.monotonic() < deadline, "the campaign did not complete"
                    time.sleep(0.2)
                body = flow.report(api, seeded.approver_token, campaign_id)
        assert body["by_status"] == {"delivered": 2400}
        assert fast.stats.submits + slow.stats.submits == 2400
        assert fast.stats.throttled == slow.stats.throttled == 0
        # 300 against 100 submits/s: about three quarters go to the faster account.
        assert 0.65 < fast.stats.submits / 2400 < 0.85
    finally:
        fast.stop()
        slow.stop()
