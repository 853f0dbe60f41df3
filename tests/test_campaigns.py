"""The campaign lifecycle over the HTTP API: four eyes, content hash, signatures, states."""

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from campaigns.approval import signed_message
from campaigns.models import Authority, Campaign, Message, User
from dispatcher.db import session_scope
from tests.world import World, build

TEXT = "Sở TT&TT Gia Lai: đeo khẩu trang, rửa tay thường xuyên phòng dịch nCoV"
CAMPAIGN = {
    "title": "Phòng chống dịch nCoV",
    "text": TEXT,
    "sender": "GiaLai",
    "target_areas": ["64"],
    "document_number": "05/CT-BTTTT",
    "document_date": "2020-02-02",
    "document_issuer": "Bộ TT&TT",
}


@pytest.fixture
def world(engine: Engine) -> World:
    return build(engine)


def create(client: TestClient, world: World, **changes: object) -> dict[str, object]:
    answer = client.post("/v1/campaigns", headers=world["submitter"], json=CAMPAIGN | changes)
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body


def submitted(client: TestClient, world: World, **changes: object) -> dict[str, object]:
    campaign = create(client, world, **changes)
    answer = client.post(f"/v1/campaigns/{campaign['id']}/submit", headers=world["submitter"])
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def approve(
    client: TestClient,
    world: World,
    campaign: dict[str, object],
    who: str = "approver",
    **extra: object,
) -> object:
    return client.post(
        f"/v1/campaigns/{campaign['id']}/approve",
        headers=world[who],
        json={"content_hash": campaign["content_hash"], **extra},
    )


def later(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def test_created_campaign_keeps_its_vietnamese_text_and_document(
    client: TestClient, world: World
) -> None:
    campaign = create(client, world)
    assert campaign["status"] == "draft"
    assert campaign["text"] == TEXT
    assert campaign["document_issuer"] == "Bộ TT&TT"
    assert len(str(campaign["content_hash"])) == 64
    assert campaign["exercise"] is False


def test_approval_by_a_second_person_makes_it_approved(client: TestClient, world: World) -> None:
    campaign = submitted(client, world)
    answer = approve(client, world, campaign)
    assert answer.status_code == 200, answer.text  # type: ignore[attr-defined]
    assert answer.json()["status"] == "approved"  # type: ignore[attr-defined]


def test_the_submitter_cannot_approve(client: TestClient, world: World) -> None:
    campaign = submitted(client, world)
    answer = approve(client, world, campaign, who="submitter")
    assert answer.status_code == 403  # type: ignore[attr-defined]
    assert answer.json()["error"]["code"] == "forbidden"  # type: ignore[attr-defined]


def test_an_approver_cannot_approve_a_campaign_they_created(
    client: TestClient, world: World, engine: Engine
) -> None:
    campaign = submitted(client, world)
    # Make the approver the campaign's creator: the four-eyes rule must still hold.
    with session_scope(engine) as session:
        user = session.exec(select(User).where(User.username == "approver")).one()
        row = session.get(Campaign, campaign["id"])
        assert row is not None
        row.created_by_id = user.id  # type: ignore[assignment]
        session.add(row)
    answer = approve(client, world, campaign)
    assert answer.status_code == 403  # type: ignore[attr-defined]
    assert "another person" in answer.json()["error"]["message"]  # type: ignore[attr-defined]


def test_approval_with_a_stale_hash_is_refused(client: TestClient, world: World) -> None:
    campaign = submitted(client, world)
    answer = approve(client, world, campaign | {"content_hash": "0" * 64})
    assert answer.status_code == 409  # type: ignore[attr-defined]
    current = client.get(f"/v1/campaigns/{campaign['id']}", headers=world["approver"]).json()
    assert current["status"] == "submitted" and current["approvals"] == 0


def test_an_edit_after_approval_voids_it(client: TestClient, world: World) -> None:
    campaign = submitted(client, world, send_start=later(5), send_expiry=later(10))
    scheduled = approve(client, world, campaign).json()  # type: ignore[attr-defined]
    assert scheduled["status"] == "scheduled"
    edited = client.put(
        f"/v1/campaigns/{campaign['id']}",
        headers=world["submitter"],
        json=CAMPAIGN | {"text": TEXT + "!", "send_start": later(5), "send_expiry": later(10)},
    ).json()
    assert edited["status"] == "submitted"
    assert edited["approvals"] == 0
    assert edited["content_hash"] != campaign["content_hash"]
    assert approve(client, world, campaign).status_code == 409  # type: ignore[attr-defined]
    assert approve(client, world, edited).json()["status"] == "scheduled"  # type: ignore[attr-defined]


def test_an_authority_needing_two_approvals_waits_for_the_second(
    client: TestClient, world: World, engine: Engine
) -> None:
    with session_scope(engine) as session:
        authority = session.get(Authority, world.authority_ids["a"])
        authority.approvals_normal = 2  # type: ignore[union-attr]
        session.add(authority)
    campaign = submitted(client, world)
    first = approve(client, world, campaign).json()  # type: ignore[attr-defined]
    assert (first["status"], first["approvals"], first["approvals_required"]) == ("submitted", 1, 2)
    assert approve(client, world, campaign).status_code == 409  # type: ignore[attr-defined]
    second = approve(client, world, campaign, who="approver2").json()  # type: ignore[attr-defined]
    assert (second["status"], second["approvals"]) == ("approved", 2)


@pytest.fixture
def signing_key(engine: Engine, world: World) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    with session_scope(engine) as session:
        authority = session.get(Authority, world.authority_ids["a"])
        authority.public_key = base64.b64encode(raw).decode()  # type: ignore[union-attr]
        session.add(authority)
    return key


def _sign(
    key: Ed25519PrivateKey, campaign_id: object, digest: object, approver: str = "approver"
) -> str:
    message = signed_message(int(str(campaign_id)), str(digest), approver)
    return base64.b64encode(key.sign(message)).decode()


def test_a_signature_is_required_where_the_authority_has_a_key(
    client: TestClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    campaign = submitted(client, world)
    other = submitted(client, world, title="other")
    wrong_key = Ed25519PrivateKey.generate()
    refused = [
        approve(client, world, campaign),
        approve(
            client,
            world,
            campaign,
            signature=_sign(wrong_key, campaign["id"], campaign["content_hash"]),
        ),
        # A valid signature for another campaign cannot be replayed onto this one.
        approve(
            client,
            world,
            campaign,
            signature=_sign(signing_key, other["id"], campaign["content_hash"]),
        ),
        approve(client, world, campaign, signature="not base64!"),
    ]
    assert [a.status_code for a in refused] == [403, 403, 403, 403]  # type: ignore[attr-defined]
    good = _sign(signing_key, campaign["id"], campaign["content_hash"])
    answer = approve(client, world, campaign, signature=good)
    assert answer.json()["status"] == "approved"  # type: ignore[attr-defined]


def test_a_signature_names_its_approver_and_counts_for_no_one_else(
    client: TestClient, world: World, signing_key: Ed25519PrivateKey, engine: Engine
) -> None:
    with session_scope(engine) as session:
        authority = session.get(Authority, world.authority_ids["a"])
        authority.approvals_normal = 2  # type: ignore[union-attr]
        session.add(authority)
    campaign = submitted(client, world)
    first = _sign(signing_key, campaign["id"], campaign["content_hash"], "approver")
    assert approve(client, world, campaign, signature=first).status_code == 200  # type: ignore[attr-defined]
    # The first approver's signature does not fill the second slot.
    reused = approve(client, world, campaign, "approver2", signature=first)
    assert reused.status_code == 403  # type: ignore[attr-defined]
    own = _sign(signing_key, campaign["id"], campaign["content_hash"], "approver2")
    answer = approve(client, world, campaign, "approver2", signature=own)
    assert answer.json()["status"] == "approved"  # type: ignore[attr-defined]


def test_a_rejected_campaign_cannot_be_approved(client: TestClient, world: World) -> None:
    campaign = submitted(client, world)
    rejected = client.post(
        f"/v1/campaigns/{campaign['id']}/reject",
        headers=world["approver"],
        json={"reason": "Sai số hiệu văn bản"},
    ).json()
    assert (rejected["status"], rejected["reject_reason"]) == ("rejected", "Sai số hiệu văn bản")
    answer = approve(client, world, campaign)
    assert answer.status_code == 409  # type: ignore[attr-defined]
    assert "rejected" in answer.json()["error"]["message"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("changes", "mentions"),
    [
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "Đ" * 500}, "parts"),
        ({"sender": "TOO-LONG-BRANDNAME"}, "sender"),
        ({"sender": "Gia Lai!"}, "sender"),
        ({"target_areas": ["999"]}, "999"),
        ({"target_areas": []}, "target_areas"),
        ({"send_start": later(5), "send_expiry": later(4)}, "send_expiry"),
        ({"send_expiry": later(-1)}, "send_expiry"),
        ({"send_start": "2030-01-01T08:00:00"}, "timezone"),
        ({"priority": "extreme"}, "priority"),
        ({"mode": "test"}, "mode"),
    ],
)
def test_invalid_campaign_is_refused_and_nothing_is_stored(
    client: TestClient, world: World, engine: Engine, changes: dict[str, object], mentions: str
) -> None:
    answer = client.post("/v1/campaigns", headers=world["submitter"], json=CAMPAIGN | changes)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_input"
    assert mentions in answer.json()["error"]["message"]
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Campaign)).one() == 0


def test_an_authority_cannot_target_outside_its_areas(client: TestClient, world: World) -> None:
    answer = client.post(
        "/v1/campaigns", headers=world["other_submitter"], json=CAMPAIGN | {"target_areas": ["64"]}
    )
    assert answer.status_code == 403
    inside = client.post(
        "/v1/campaigns", headers=world["other_submitter"], json=CAMPAIGN | {"target_areas": ["622"]}
    )
    assert inside.status_code == 201


def test_exercise_is_marked_and_previewed_with_its_marker(client: TestClient, world: World) -> None:
    campaign = create(client, world, mode="exercise")
    assert campaign["exercise"] is True
    preview = client.get(
        f"/v1/campaigns/{campaign['id']}/preview", headers=world["approver"]
    ).json()
    assert preview["exercise"] is True
    assert preview["sent"]["text"].startswith("[DIỄN TẬP] ")
    assert preview["recipients"] == 3  # the authority's test numbers, not the province


def test_preview_shows_encoding_segments_and_the_unaccented_alternative(
    client: TestClient, world: World
) -> None:
    campaign = create(client, world)
    preview = client.get(
        f"/v1/campaigns/{campaign['id']}/preview", headers=world["approver"]
    ).json()
    assert preview["sent"] == {"text": TEXT, "encoding": "ucs2", "characters": 70, "segments": 1}
    alternative = preview["unaccented_alternative"]
    assert alternative["encoding"] == "gsm7" and alternative["segments"] == 1
    assert alternative["text"].startswith("So TT&TT Gia Lai: deo khau trang")
    assert "ở" in preview["non_gsm7_characters"]


def test_people_of_an_authority_list_only_their_campaigns(client: TestClient, world: World) -> None:
    own = create(client, world)
    client.post(
        "/v1/campaigns", headers=world["other_submitter"], json=CAMPAIGN | {"target_areas": ["622"]}
    )
    seen = [c["id"] for c in client.get("/v1/campaigns", headers=world["approver"]).json()]
    assert seen == [own["id"]]
    assert len(client.get("/v1/campaigns", headers=world["operator"]).json()) == 2


def test_cancel_ends_every_queued_message(client: TestClient, world: World, engine: Engine) -> None:
    campaign = submitted(client, world)
    approve(client, world, campaign)
    with session_scope(engine) as session:
        session.add_all(
            Message(campaign_id=int(str(campaign["id"])), batch_no=0, msisdn=f"+8491200{i:04d}")
            for i in range(5)
        )
    answer = client.post(f"/v1/campaigns/{campaign['id']}/cancel", headers=world["operator"])
    assert answer.json()["status"] == "cancelled"
    report = client.get(f"/v1/campaigns/{campaign['id']}/report", headers=world["submitter"]).json()
    assert report["by_status"] == {"cancelled": 5}
    again = client.post(f"/v1/campaigns/{campaign['id']}/cancel", headers=world["operator"])
    assert again.status_code == 409
