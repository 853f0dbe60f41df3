"""Receipts from SMSCs that write ids their own way, repeat them, send them late or per message.

Each test runs a campaign through the API, a worker and the simulator (a child process) set to
one quirk, and checks what became of every message in the database.
"""

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from sqlalchemy import func, select

from campaigns.models import Message, PendingReceipt
from dispatcher import demo as flow
from dispatcher.db import make_engine
from dispatcher.smsc.config import read_stats
from dispatcher.stack import Stack, StackConfig

pytestmark = pytest.mark.timeout(300)
SUBSCRIBERS = 400  # about 120 in Pleiku: enough for `auto` to learn an SMSC's id formats
LONG_TEXT = (
    "Sở TT&TT Gia Lai thông báo: người dân đeo khẩu trang nơi công cộng, rửa tay thường xuyên "
    "bằng xà phòng, khai báo y tế khi có triệu chứng sốt, ho, khó thở và gọi đường dây nóng."
)


def run(
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    simulator_args: list[str],
    *,
    smsc_ids: str = "dec",
    account: dict[str, object] | None = None,
    receipt_timeout: float = 3600.0,
    **campaign: Any,
) -> tuple[dict[str, Any], dict[str, int]]:
    """One campaign to Pleiku; its final report and the messages by status once settled."""
    stats = tmp_path / "smsc-stats.json"
    config = StackConfig(
        var_dir=tmp_path,
        database_url=database_url,
        redis_url=redis_url,
        queue_name=f"test-{uuid.uuid4().hex[:8]}",
        simulator_args=["--stats-file", str(stats), *simulator_args],
        smsc_ids=smsc_ids,
        account=account or {},
        receipt_timeout=receipt_timeout,
    )
    with Stack(config) as stack:
        seeded = flow.seed(database_url, SUBSCRIBERS)
        with httpx.Client(base_url=stack.api_url, timeout=30) as client:
            campaign_id = flow.run_campaign(client, seeded, target=["622"], **campaign)
            body = flow.watch(
                stack, client, seeded.approver_token, campaign_id, 180, Console(quiet=True)
            )
            # Late receipts may still be on their way once the campaign has completed.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                sent = read_stats(stats).receipts_sent if stats.exists() else 0
                if sent >= body["recipients"] + read_stats(stats).receipts_repeated:
                    break
                time.sleep(0.2)
            counts = _settled(database_url, campaign_id, body["recipients"])
    return body, counts


def _settled(database_url: str, campaign_id: int, recipients: int) -> dict[str, int]:
    """Messages by status, once nothing changes any more (every receipt stored)."""
    engine = make_engine(database_url)
    try:
        deadline, last, steady = time.monotonic() + 30, None, 0
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                rows = connection.execute(
                    select(Message.status, func.count())  # type: ignore[call-overload]
                    .where(Message.campaign_id == campaign_id)
                    .group_by(Message.status)
                ).all()
            counts: dict[str, int] = dict(rows)
            steady = steady + 1 if counts == last else 0
            if counts.get("delivered") == recipients or steady >= 10:
                return counts
            last = counts
            time.sleep(0.1)
        return counts
    finally:
        engine.dispose()


def _count(database_url: str, query: Any) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("submit", "receipt", "declared"),
    [
        ("hex", "hex", "hex"),
        ("HEX0", "HEX0", "hex"),  # upper-case and zero-padded
        ("dec", "dec0", "dec"),  # zero-padded in the receipt only
        ("dec", "hex", "auto"),  # decimal in the answer, hex in the receipt: learnt
        ("HEX", "dec", "auto"),  # and the other way round, upper-case: learnt
    ],
)
def test_every_message_is_matched_however_the_smsc_writes_its_ids(
    tmp_path: Path, database_url: str, redis_url: str, submit: str, receipt: str, declared: str
) -> None:
    args = ["--submit-ids", submit, "--receipt-ids", receipt, "--no-receipt-tlvs"]
    body, counts = run(tmp_path, database_url, redis_url, args, smsc_ids=declared)
    assert body["status"] == "completed"
    assert counts == {"delivered": body["recipients"]}
    assert _count(database_url, select(func.count()).select_from(PendingReceipt)) == 0


def test_repeated_receipts_change_nothing(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    args = ["--repeat-receipts", "1", "--outcome", "DELIVRD=3", "--outcome", "UNDELIV=1"]
    body, counts = run(tmp_path, database_url, redis_url, args + ["--seed", "3"])
    assert set(counts) == {"delivered", "undeliverable"}
    assert sum(counts.values()) == body["recipients"]
    assert _count(database_url, select(func.count()).select_from(PendingReceipt)) == 0


def test_late_receipts_correct_unknown_and_are_counted(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    # Late beyond the receipt timeout and the 10 s between the leader's sweeps for it.
    args = ["--late-receipts", "0.3", "--late-delay", "25", "--seed", "5"]
    body, counts = run(tmp_path, database_url, redis_url, args, receipt_timeout=2)
    # The campaign completed with the late ones `unknown`; their receipts then told the truth.
    assert body["status"] == "completed" and body["by_status"].get("unknown", 0) > 0
    assert counts == {"delivered": body["recipients"]}
    late = _count(
        database_url,
        select(func.count()).select_from(Message).where(Message.late_receipt.is_(True)),  # type: ignore[attr-defined]
    )
    assert late == body["by_status"]["unknown"]


def test_an_smsc_reporting_once_per_long_message(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    args = ["--receipt-per-message", "last"]
    body, counts = run(
        tmp_path,
        database_url,
        redis_url,
        args,
        account={"receipts_per": "message"},
        text=LONG_TEXT,
    )
    assert body["total_sms"] == 3 * body["recipients"]
    assert counts == {"delivered": body["recipients"]}
