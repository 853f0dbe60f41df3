"""Reports on message rows with known values: exact figures, the delivery log per role, look-ups
by number, the audit of each, and the authority's PDF and HTML in Vietnamese."""

import csv
import io
import json
import unicodedata
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import Engine, insert, select, update
from sqlmodel import Session, col

from campaigns import reports
from campaigns.models import (
    Approval,
    Campaign,
    CampaignStatus,
    Message,
    MessagePart,
    MessageStatus,
    Mode,
    PendingReceipt,
)
from campaigns.people import user_by_username
from dispatcher.db import session_scope
from dispatcher.reports.delivery_log import neutralised
from tests import world as world_module
from tests.world import World

M = MessageStatus
T0 = datetime(2020, 2, 4, 1, 0, tzinfo=UTC)
NUMBER = "+84912345678"
TEXT = "Sở TT&TT Gia Lai: đeo khẩu trang, rửa tay thường xuyên"


def _campaign(engine: Engine, mode: Mode = Mode.LIVE) -> int:
    with session_scope(engine) as session:
        submitter = user_by_username(session=session, username="submitter")
        approver = user_by_username(session=session, username="approver")
        campaign = Campaign(
            title="Phòng chống dịch nCoV",
            text=TEXT,
            sender="GiaLai",
            target_areas=["64"],
            document_number="05/CT-BTTTT",
            document_date=date(2020, 2, 2),
            document_issuer="Bộ Thông tin và Truyền thông",
            mode=mode,
            authority_id=submitter.authority_id or 0,
            created_by_id=submitter.id or 0,
            status=CampaignStatus.COMPLETED,
            content_hash="h" * 64,
            submitted_at=T0 - timedelta(minutes=30),
            approved_at=T0 - timedelta(minutes=20),
            created_at=T0 - timedelta(hours=1),
        )
        session.add(campaign)
        session.flush()
        session.add(
            Approval(
                campaign_id=campaign.id or 0,
                approver_id=approver.id or 0,
                content_hash="h" * 64,
                created_at=T0 - timedelta(minutes=20),
            )
        )
        return campaign.id or 0


def _row(campaign_id: int, n: int, status: M, **fields: Any) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "batch_no": n // 4,  # a few batches, so the log pages through them
        "msisdn": f"+8491200{n:04d}",
        "area_code": "622",
        "parts": 1,
        "status": status,
        "attempts": 1,
        "last_status": 0,
        "error_code": None,
        "submitted_at": None,
        "done_at": None,
        **fields,
    }


def _fill(engine: Engine, campaign_id: int) -> None:
    """15 messages: 10 delivered (delays 1..10 s), 2 undeliverable, 1 failed, 1 unknown, 1 queued"""
    rows = []
    for i in range(10):  # submitted 01:00, 01:10, ..., 01:50 and 02:00, ... 02:30
        sent = T0 + timedelta(minutes=10 * i)
        rows.append(
            _row(
                campaign_id,
                i,
                M.DELIVERED,
                submitted_at=sent,
                done_at=sent + timedelta(seconds=10 - i),  # delays 10, 9, ..., 1
            )
        )
    late = T0 + timedelta(hours=2, minutes=5)
    rows += [
        _row(
            campaign_id,
            10,
            M.UNDELIVERABLE,
            area_code="623",
            error_code=1,
            submitted_at=T0,
            done_at=late,
        ),
        _row(
            campaign_id,
            11,
            M.UNDELIVERABLE,
            area_code="623",
            error_code=1,
            submitted_at=T0,
            done_at=late,
        ),
        _row(
            campaign_id,
            12,
            M.FAILED,
            area_code="623",
            last_status=0x0B,
            error_code=0x0B,
            submitted_at=T0,
            done_at=T0,
        ),
        _row(campaign_id, 13, M.UNKNOWN, area_code=None, submitted_at=T0, done_at=late),
        _row(campaign_id, 14, M.QUEUED, area_code="=HYPERLINK(1)", attempts=0, last_status=None),
    ]
    with session_scope(engine) as session:
        session.connection().execute(insert(Message), rows)
        ids = (
            session.connection()
            .execute(
                Message.__table__.select().where(Message.campaign_id == campaign_id)  # type: ignore[attr-defined]
            )
            .all()
        )
        parts = [
            {
                "message_id": row.id,
                "part_no": 1,
                "smsc_message_id": f"{row.id:x}",
                "status": row.status,
            }
            for row in ids
            if row.last_status == 0
        ]
        session.connection().execute(insert(MessagePart), parts)


@pytest.fixture
def world(engine: Engine) -> World:
    return world_module.build(engine)


@pytest.fixture
def campaign_id(engine: Engine, world: World) -> int:
    campaign_id = _campaign(engine)
    _fill(engine, campaign_id)
    return campaign_id


def test_figures_are_exact_on_known_rows(engine: Engine, campaign_id: int) -> None:
    with Session(engine) as session:
        figures = reports.compute(session=session, campaign_id=campaign_id)
    assert figures.messages == 15
    assert figures.by_status == {
        "delivered": 10,
        "failed": 1,
        "queued": 1,
        "undeliverable": 2,
        "unknown": 1,
    }
    # Nearest rank: p50 of 1..10 s is the 5th, p90 the 9th, p99 the 10th.
    assert (figures.delivery_seconds.p50, figures.delivery_seconds.p90) == (5.0, 9.0)
    assert figures.delivery_seconds.p99 == 10.0
    # 50 % of 15 recipients is the 8th delivery: submitted at 01:10·7, after a 3 s delay.
    assert figures.reached.p50 == T0 + timedelta(minutes=70, seconds=3)
    assert figures.reached.p90 is None  # 14 deliveries needed, 10 happened
    assert [(h.hour, h.submitted, h.delivered) for h in figures.by_hour] == [
        (T0, 10, 6),
        (T0 + timedelta(hours=1), 4, 4),
    ]
    areas = {(a.code, a.name): a for a in figures.by_area}
    pleiku = areas["622", "Thành phố Pleiku"]
    assert (pleiku.recipients, pleiku.delivered, pleiku.failed, pleiku.pending) == (10, 10, 0, 0)
    an_khe = areas["623", "Thị xã An Khê"]
    assert (an_khe.recipients, an_khe.delivered, an_khe.failed) == (3, 0, 3)
    assert areas[None, None].unknown == 1
    assert sum(a.recipients for a in figures.by_area) == 15
    assert [(e.kind, e.code, e.status, e.messages) for e in figures.by_error] == [
        ("command_status", 0x0B, "failed", 1),
        ("receipt", 1, "undeliverable", 2),
    ]


def test_the_report_endpoint_keeps_its_fields_and_names_the_errors(
    client: TestClient, world: World, campaign_id: int
) -> None:
    answer = client.get(f"/v1/campaigns/{campaign_id}/report", headers=world["approver"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["by_status"]["delivered"] == 10 and body["exercise"] is False
    assert {"recipients", "parts_per_message", "total_sms", "encoding"} <= set(body)
    assert body["by_hour"][0] == {"hour": "2020-02-04T01:00:00Z", "submitted": 10, "delivered": 6}
    assert [(e["name"], e["messages"]) for e in body["by_error"]] == [
        ("ESME_RINVDSTADR", 1),
        ("UNDELIV", 2),
    ]
    assert body["delivery_seconds"] == {"p50": 5.0, "p90": 9.0, "p99": 10.0}
    assert body["reached"]["p50"] == "2020-02-04T02:10:03Z"
    other = client.get(f"/v1/campaigns/{campaign_id}/report", headers=world["other_submitter"])
    assert other.status_code == 404


def test_the_report_counts_late_receipts_and_receipts_that_matched_nothing(
    client: TestClient, world: World, engine: Engine, campaign_id: int
) -> None:
    with engine.begin() as connection:
        first_two = select(Message.id).where(Message.campaign_id == campaign_id).limit(2)  # type: ignore[arg-type]
        connection.execute(
            update(Message).where(col(Message.id).in_(first_two)).values(late_receipt=True)
        )
        now = datetime.now(UTC)
        connection.execute(
            insert(PendingReceipt),
            [
                {
                    "account": "smsc1",
                    "smsc_message_id": str(n),
                    "state": "DELIVRD",
                    "received_at": now,
                    "reason": "unmatched",
                    "expired": n == 3,
                }
                for n in range(4)
            ],
        )
    body = client.get(f"/v1/campaigns/{campaign_id}/report", headers=world["approver"]).json()
    assert body["late_receipts"] == 2
    assert body["unmatched_receipts"] == {"waiting": 3, "given_up": 1}


def _csv(client: TestClient, campaign_id: int, headers: dict[str, str]) -> list[dict[str, str]]:
    answer = client.get(f"/v1/campaigns/{campaign_id}/messages.csv", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(answer.text)))


@pytest.mark.parametrize(
    ("who", "full"),
    [
        ("submitter", False),
        ("approver", False),
        ("admin", False),
        ("operator", True),
        ("auditor", True),
    ],
)
def test_the_delivery_log_shows_numbers_only_to_auditors_and_operators(
    client: TestClient, world: World, campaign_id: int, who: str, full: bool
) -> None:
    rows = _csv(client, campaign_id, world[who])
    assert len(rows) == 15
    first = rows[0]
    if full:
        assert first["msisdn"] == "+84912000000"
    else:
        assert first["msisdn"] == "'+84******000"  # masked, and kept from being a formula
    assert all("912000" not in row["msisdn"] for row in rows) is not full
    by_status = {row["status"]: row for row in rows}
    failed = by_status["failed"]
    assert (failed["command_status"], failed["command_status_name"]) == ("0x0B", "ESME_RINVDSTADR")
    assert failed["receipt_error"] == ""
    undeliverable = by_status["undeliverable"]
    assert undeliverable["receipt_error"] == "1" and undeliverable["area_code"] == "623"
    delivered = rows[0]
    assert delivered["submitted_at"] == "2020-02-04T01:00:00.000Z"
    assert delivered["done_at"] == "2020-02-04T01:00:10.000Z"
    assert delivered["smsc_message_ids"] == f"1:{int(delivered['message_id']):x}"
    assert by_status["queued"]["area_code"] == "'=HYPERLINK(1)"


def test_each_export_is_audited_with_who_and_how(
    client: TestClient, world: World, campaign_id: int
) -> None:
    _csv(client, campaign_id, world["submitter"])
    _csv(client, campaign_id, world["auditor"])
    entries = client.get(
        "/v1/audit", params={"action": "campaign.export_messages"}, headers=world["auditor"]
    ).json()
    assert [(e["actor"].split(":")[2], e["details"]["numbers"]) for e in entries] == [
        ("submitter", "masked"),
        ("auditor", "full"),
    ]
    assert all(e["campaign_id"] == campaign_id for e in entries)
    refused = client.get(
        f"/v1/campaigns/{campaign_id}/messages.csv", headers=world["other_submitter"]
    )
    assert refused.status_code == 404


def test_cells_a_spreadsheet_would_run_are_neutralised() -> None:
    assert neutralised("=1+1") == "'=1+1"
    assert neutralised("@SUM(A1)") == "'@SUM(A1)"
    assert neutralised("-2") == "'-2"
    assert neutralised("+84912345678") == "+84912345678"  # a number, not a formula
    assert neutralised("622") == "622"


def test_a_number_is_looked_up_across_campaigns_by_auditors_and_operators_only(
    client: TestClient, engine: Engine, world: World, campaign_id: int
) -> None:
    second = _campaign(engine)
    _fill(engine, second)
    for who in ("submitter", "approver", "admin"):
        refused = client.get("/v1/messages", params={"msisdn": "0912000003"}, headers=world[who])
        assert refused.status_code == 403, who
    for who in ("auditor", "operator"):
        found = client.get("/v1/messages", params={"msisdn": "0912 000 003"}, headers=world[who])
        assert found.status_code == 200, found.text
        body = found.json()
        assert [m["campaign_id"] for m in body] == [second, campaign_id]
        assert {m["msisdn"] for m in body} == {"+84912000003"}
        assert body[0]["status"] == "delivered" and body[0]["smsc_message_ids"]
    invalid = client.get("/v1/messages", params={"msisdn": "12"}, headers=world["auditor"])
    assert invalid.status_code == 422
    entries = client.get(
        "/v1/audit", params={"action": "message.lookup"}, headers=world["auditor"]
    ).json()
    assert [e["actor"].split(":")[2] for e in entries] == ["auditor", "operator"]
    assert entries[0]["details"] == {"found": 2, "msisdn": "+84******003"}
    assert "912000003" not in json.dumps(entries)


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def test_the_authority_report_is_in_vietnamese_without_numbers(
    client: TestClient, world: World, campaign_id: int
) -> None:
    answer = client.get(f"/v1/campaigns/{campaign_id}/report.pdf", headers=world["approver"])
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    text = _nfc(
        " ".join(page.extract_text() for page in PdfReader(io.BytesIO(answer.content)).pages)
    )
    flat = " ".join(text.split())
    for expected in (
        "BÁO CÁO KẾT QUẢ NHẮN TIN THÔNG TIN CÔNG CỘNG",
        "Sở TT&TT Gia Lai",
        "Số 05/CT-BTTTT ngày 02/02/2020 của Bộ Thông tin và Truyền thông",
        "Đã nhận tin",
        "Thành phố Pleiku",
        "Thị xã An Khê",
        "đeo khẩu trang, rửa tay thường xuyên",
        "UCS-2 (tiếng Việt có dấu)",
        "09:10:03 ngày 04/02/2020",  # 50 % reached, Vietnam time
    ):
        assert expected in flat, expected
    assert "DIỄN TẬP" not in flat
    assert "912000" not in flat and "+84" not in flat
    page = client.get(f"/v1/campaigns/{campaign_id}/report.html", headers=world["submitter"])
    assert page.status_code == 200
    assert "Thành phố Pleiku" in page.text and "Đã nhận tin" in page.text
    assert "http" not in page.text.replace('lang="vi"', "")  # nothing fetched from elsewhere
    assert "912000" not in page.text


def test_an_exercise_is_labelled_as_such_in_the_authority_report(
    client: TestClient, engine: Engine, world: World
) -> None:
    campaign_id = _campaign(engine, Mode.EXERCISE)
    answer = client.get(f"/v1/campaigns/{campaign_id}/report.pdf", headers=world["auditor"])
    text = _nfc(
        " ".join(page.extract_text() for page in PdfReader(io.BytesIO(answer.content)).pages)
    )
    assert "DIỄN TẬP" in text and "exercise" in text
    page = client.get(f"/v1/campaigns/{campaign_id}/report.html", headers=world["auditor"])
    assert "DIỄN TẬP" in page.text
