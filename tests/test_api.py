"""The campaign API over HTTP (in-process), on the real database and Redis."""

import logging
from dataclasses import dataclass

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from campaigns import areas
from campaigns.models import Campaign, CampaignStatus, Role
from campaigns.people import create_authority, create_user
from dispatcher.db import session_scope
from tests.world import confirmed


@dataclass
class People:
    submitter: dict[str, str]
    approver: dict[str, str]
    other_submitter: dict[str, str]
    other_approver: dict[str, str]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def people(engine: Engine) -> People:
    with session_scope(engine) as session:
        areas.seed_gia_lai(session)
        own = create_authority(
            session=session, code="STTTT-GL", name="Sở TT&TT Gia Lai", areas=["64"]
        )
        other = create_authority(
            session=session, code="SYT-GL", name="Sở Y tế Gia Lai", areas=["64"]
        )
        tokens = [
            create_user(session=session, username=name, name=name, role=role, authority=authority)[
                1
            ]
            for name, role, authority in (
                ("An", Role.SUBMITTER, own),
                ("Bình", Role.APPROVER, own),
                ("Cường", Role.SUBMITTER, other),
                ("Dũng", Role.APPROVER, other),
            )
        ]
        confirmed(session, own)
        confirmed(session, other)
    return People(*(_bearer(t) for t in tokens))


CAMPAIGN = {
    "title": "Phòng chống dịch nCoV",
    "text": "Sở TT&TT Gia Lai: đeo khẩu trang, rửa tay thường xuyên.",
    "sender": "GiaLai",
    "target_areas": ["622"],
}


def _create(client: TestClient, headers: dict[str, str], **changes: object) -> int:
    answer = client.post("/v1/campaigns", headers=headers, json=CAMPAIGN | changes)
    assert answer.status_code == 201, answer.text
    campaign_id: int = answer.json()["id"]
    return campaign_id


def test_health_and_ready_need_no_token(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["status"] == "ok"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}])
def test_without_a_valid_token_the_answer_is_401(
    client: TestClient, headers: dict[str, str]
) -> None:
    answer = client.post("/v1/campaigns", headers=headers, json=CAMPAIGN)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"


def test_created_campaign_keeps_vietnamese_text(client: TestClient, people: People) -> None:
    campaign_id = _create(client, people.submitter)
    body = client.get(f"/v1/campaigns/{campaign_id}", headers=people.approver).json()
    assert body["text"] == CAMPAIGN["text"]
    assert body["status"] == "draft"


def test_approval_commits_then_queues_expansion(
    client: TestClient, people: People, engine: Engine, redis_url: str
) -> None:
    campaign_id = _create(client, people.submitter)
    assert client.post(f"/v1/campaigns/{campaign_id}/submit", headers=people.submitter).is_success
    digest = client.get(f"/v1/campaigns/{campaign_id}", headers=people.approver).json()[
        "content_hash"
    ]
    answer = client.post(
        f"/v1/campaigns/{campaign_id}/approve",
        headers=people.approver,
        json={"content_hash": digest},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "approved"
    with Session(engine) as session:
        assert session.get(Campaign, campaign_id).status == CampaignStatus.APPROVED  # type: ignore[union-attr]
    queued = redis.Redis.from_url(redis_url).zrange("dispatcher", 0, -1)
    assert queued == [f"expand:{campaign_id}:0".encode()]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"text": ""}, "text"),
        ({"sender": "TOO-LONG-BRANDNAME"}, "sender"),
        ({"target_areas": ["999"]}, "999"),
        ({"target_areas": []}, "target_areas"),
    ],
)
def test_invalid_campaign_is_refused_and_nothing_is_stored(
    client: TestClient, people: People, engine: Engine, changes: dict[str, object], field: str
) -> None:
    answer = client.post("/v1/campaigns", headers=people.submitter, json=CAMPAIGN | changes)
    assert answer.status_code == 422
    assert field in answer.json()["error"]["message"]
    with Session(engine) as session:
        assert session.exec(select(Campaign)).all() == []


@pytest.mark.parametrize(
    "path",
    ["/v1/opt-outs/%2B84912345678", "/v1/opt-outs/0912345678", "/v1/x?msisdn=84912345678"],
)
def test_numbers_in_request_paths_are_masked_in_the_access_log(path: str) -> None:
    from dispatcher.api.access_log import MaskNumbers

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", 200),
        None,
    )
    assert MaskNumbers().filter(record)
    line = record.getMessage()
    assert "912345678" not in line and "******678" in line


def test_a_commit_that_fails_is_an_error_the_caller_sees(
    client: TestClient, people: People, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import IntegrityError

    def refuse(self: Session) -> None:
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    monkeypatch.setattr(Session, "commit", refuse)
    answer = client.post("/v1/campaigns", headers=people.submitter, json=CAMPAIGN)
    monkeypatch.undo()
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "conflict"
    with Session(engine) as session:
        assert session.exec(select(Campaign)).all() == []
