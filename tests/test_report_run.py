"""The report of a campaign run for real (API, worker, SMPP to the simulator), checked against the
message rows it came from; the delivery log and the report from the command line."""

import csv
import math
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from campaigns.models import AuditEntry, Message
from dispatcher import demo as flow
from dispatcher.cli import app
from dispatcher.db import make_engine
from dispatcher.stack import Stack, StackConfig

pytestmark = pytest.mark.timeout(240)
OUTCOMES = ["--outcome", "DELIVRD=4", "--outcome", "UNDELIV=1", "--error", "0x0B=0.05"]


def _nearest_rank(values: list[Any], fraction: float) -> Any:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(round(fraction * len(ordered), 9))) - 1]


def _run(tmp_path: Path, database_url: str, redis_url: str) -> dict[str, Any]:
    config = StackConfig(
        var_dir=tmp_path,
        database_url=database_url,
        redis_url=redis_url,
        queue_name=f"test-{uuid.uuid4().hex[:8]}",
        simulator_args=[*OUTCOMES, "--receipt-delay", "0.05", "--seed", "11"],
    )
    with Stack(config) as stack:
        seeded = flow.seed(database_url, 1500)
        with httpx.Client(base_url=stack.api_url, timeout=30) as client:
            campaign_id = flow.run_campaign(client, seeded, target=["622", "623", "625"])
            flow.watch(stack, client, seeded.approver_token, campaign_id, 180, Console(quiet=True))
            # The final report, asked once everything has settled.
            return flow.report(client, seeded.approver_token, campaign_id)


def test_the_report_of_a_real_run_matches_its_messages(
    tmp_path: Path, database_url: str, redis_url: str, settings_env: None
) -> None:
    body = _run(tmp_path, database_url, redis_url)
    engine = make_engine(database_url)
    with Session(engine) as session:
        messages = list(
            session.exec(select(Message).where(Message.campaign_id == body["campaign_id"]))
        )
    engine.dispose()
    assert body["status"] == "completed" and len(messages) == body["recipients"] > 100
    assert body["by_status"] == dict(Counter(m.status for m in messages))
    assert {"delivered", "undeliverable", "failed"} <= set(body["by_status"])

    by_area = {row["code"]: row for row in body["by_area"]}
    assert set(by_area) == {"622", "623", "625"}
    for code, row in by_area.items():
        mine = [m for m in messages if m.area_code == code]
        assert row["recipients"] == len(mine)
        assert row["delivered"] == sum(m.status == "delivered" for m in mine)
        assert row["failed"] == sum(m.status in ("undeliverable", "failed") for m in mine)
        assert row["pending"] == 0
    assert by_area["622"]["name"] == "Thành phố Pleiku"

    delivered = [m for m in messages if m.status == "delivered"]
    submitted = [m for m in messages if m.submitted_at is not None]
    assert sum(h["submitted"] for h in body["by_hour"]) == len(submitted)
    assert sum(h["delivered"] for h in body["by_hour"]) == len(delivered)
    assert all(h["hour"].endswith(":00:00Z") for h in body["by_hour"])

    errors = {(e["kind"], e["name"]): e["messages"] for e in body["by_error"]}
    assert errors["command_status", "ESME_RINVDSTADR"] == body["by_status"]["failed"]
    assert errors["receipt", "UNDELIV"] == body["by_status"]["undeliverable"]

    delays = [
        (m.done_at - m.submitted_at).total_seconds()  # type: ignore[operator]
        for m in delivered
    ]
    for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        assert body["delivery_seconds"][name] == pytest.approx(
            _nearest_rank(delays, fraction), abs=0.002
        )
    assert 0.05 <= body["delivery_seconds"]["p50"] < 10
    k = math.ceil(0.5 * len(messages))
    half = sorted(m.done_at for m in delivered if m.done_at is not None)[k - 1]
    reached = datetime.fromisoformat(body["reached"]["p50"])
    assert abs((reached - half.astimezone(UTC)).total_seconds()) < 0.001

    _export_and_report_from_the_command_line(tmp_path, database_url, body, messages)


def _export_and_report_from_the_command_line(
    tmp_path: Path, database_url: str, body: dict[str, Any], messages: list[Message]
) -> None:
    runner = CliRunner()
    out = tmp_path / "log.csv"
    exported = runner.invoke(app, ["export", str(body["campaign_id"]), "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    with out.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == len(messages)
    assert {row["msisdn"] for row in rows} == {m.msisdn for m in messages}  # in full
    assert all(row["smsc_message_ids"] for row in rows if row["status"] == "delivered")
    printed = runner.invoke(app, ["report", str(body["campaign_id"])], env={"COLUMNS": "200"})
    assert printed.exit_code == 0, printed.output
    assert "Thành phố Pleiku" in printed.output and "ESME_RINVDSTADR" in printed.output
    engine = make_engine(database_url)
    with Session(engine) as session:
        entry = session.exec(
            select(AuditEntry)
            .where(AuditEntry.action == "campaign.export_messages")
            .order_by(col(AuditEntry.id).desc())
        ).first()
    engine.dispose()
    assert entry is not None and entry.actor.startswith("cli:")
    assert entry.campaign_id == body["campaign_id"] and '"numbers":"full"' in entry.details
