"""No single person approves alone: a hostile operator admin, expiring tokens, failed logins."""

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from campaigns.models import ApiToken, AuditEntry, User, utcnow
from dispatcher.api.app import create_app
from tests.test_campaigns import CAMPAIGN
from tests.world import World, build


@pytest.fixture
def world(engine: Engine) -> World:
    return build(engine)


def _audit(engine: Engine) -> list[AuditEntry]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.id))))


def _token_row(engine: Engine, username: str) -> ApiToken:
    with Session(engine) as session:
        return session.exec(
            select(ApiToken)
            .join(User, col(User.id) == ApiToken.user_id)
            .where(User.username == username)
        ).one()


def _set_token(engine: Engine, username: str, **values: object) -> None:
    with Session(engine) as session:
        token = session.exec(
            select(ApiToken)
            .join(User, col(User.id) == ApiToken.user_id)
            .where(User.username == username)
        ).one()
        for field, value in values.items():
            setattr(token, field, value)
        session.add(token)
        session.commit()


def test_an_operator_admin_alone_cannot_get_a_campaign_approved(
    client: TestClient, world: World, engine: Engine
) -> None:
    admin = world["admin"]
    before = len(_audit(engine))
    tries = [
        # A token for the authority's submitter or approver, to act as them.
        client.post("/v1/users/submitter/tokens", headers=admin),
        client.post("/v1/users/approver/tokens", headers=admin, json={"ttl_days": 1}),
        # A new approver, submitter or authority_admin of the authority.
        *(
            client.post(
                "/v1/users",
                headers=admin,
                json={"username": f"x-{role}", "name": "X", "role": role, "authority": "STTTT-GL"},
            )
            for role in ("approver", "submitter", "authority_admin")
        ),
        # Its signing key, to sign approvals with a key of the admin's own.
        client.patch(
            "/v1/authorities/STTTT-GL",
            headers=admin,
            json={"public_key": "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="},
        ),
    ]
    assert [answer.status_code for answer in tries] == [403] * 6
    assert all(answer.json()["error"]["code"] == "forbidden" for answer in tries)
    # Nor may the admin act as an authority's person itself.
    assert client.post("/v1/campaigns", headers=admin, json=CAMPAIGN).status_code == 403
    assert len(_audit(engine)) == before  # nothing happened, so nothing to record


def test_an_authority_admin_manages_only_its_own_authority(
    client: TestClient, world: World
) -> None:
    steward = world["authadmin"]
    refused = [
        client.post("/v1/users/other_approver/tokens", headers=steward),
        client.delete("/v1/users/other_approver/tokens", headers=steward),
        client.post("/v1/users/operator/tokens", headers=steward),
        client.post(
            "/v1/users",
            headers=steward,
            json={"username": "y", "name": "Y", "role": "approver", "authority": "SYT-PK"},
        ),
        client.post(
            "/v1/users", headers=steward, json={"username": "y", "name": "Y", "role": "auditor"}
        ),
        client.patch("/v1/authorities/STTTT-GL", headers=steward, json={"areas": ["52"]}),
    ]
    assert [answer.status_code for answer in refused] == [403] * 6
    assert client.get("/v1/authorities/SYT-PK", headers=steward).status_code == 404
    assert client.get("/v1/users?authority=SYT-PK", headers=steward).status_code == 404
    own = client.get("/v1/users", headers=steward).json()
    assert {u["authority"] for u in own} == {"STTTT-GL"}
    # And it does not take part in campaigns: it manages people, it does not approve.
    assert client.post("/v1/campaigns", headers=steward, json=CAMPAIGN).status_code == 403


def test_an_expired_token_is_refused(client: TestClient, world: World, engine: Engine) -> None:
    assert client.get("/v1/campaigns", headers=world["submitter"]).status_code == 200
    _set_token(engine, "submitter", expires_at=utcnow() - timedelta(seconds=1))
    refused = client.get("/v1/campaigns", headers=world["submitter"])
    assert refused.status_code == 401
    assert "expired" in refused.json()["error"]["message"]
    # A token issued before tokens had an expiry lives 90 days from its creation.
    _set_token(engine, "approver", expires_at=None, created_at=utcnow() - timedelta(days=91))
    assert client.get("/v1/campaigns", headers=world["approver"]).status_code == 401
    _set_token(engine, "approver", created_at=utcnow() - timedelta(days=89))
    assert client.get("/v1/campaigns", headers=world["approver"]).status_code == 200


def test_a_new_token_lives_its_ttl(client: TestClient, world: World) -> None:
    issued = client.post(
        "/v1/users/submitter/tokens", headers=world["authadmin"], json={"ttl_days": 7}
    )
    assert issued.status_code == 201, issued.text
    expires = datetime.fromisoformat(issued.json()["expires_at"])
    assert abs(expires - (utcnow() + timedelta(days=7))) < timedelta(minutes=1)
    too_long = client.post(
        "/v1/users/submitter/tokens", headers=world["authadmin"], json={"ttl_days": 10_000}
    )
    assert too_long.status_code == 422


def test_the_last_use_is_noted_at_most_once_a_minute(
    client: TestClient, world: World, engine: Engine
) -> None:
    assert _token_row(engine, "auditor").last_used_at is None
    client.get("/v1/campaigns", headers=world["auditor"])
    first = _token_row(engine, "auditor").last_used_at
    assert first is not None and utcnow() - first < timedelta(seconds=30)
    client.get("/v1/campaigns", headers=world["auditor"])
    assert _token_row(engine, "auditor").last_used_at == first  # no write within the minute
    _set_token(engine, "auditor", last_used_at=utcnow() - timedelta(minutes=2))
    client.get("/v1/campaigns", headers=world["auditor"])
    later = _token_row(engine, "auditor").last_used_at
    assert later is not None and later > first


@pytest.fixture
def strict_client(
    monkeypatch: pytest.MonkeyPatch, settings_env: None, engine: Engine
) -> Iterator[TestClient]:
    from dispatcher.settings import get_settings

    monkeypatch.setenv("DISPATCHER_AUTH_FAILURES_PER_MINUTE", "3")
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        yield client


def test_failed_logins_are_limited_per_address_and_audited_in_aggregate(
    strict_client: TestClient, engine: Engine
) -> None:
    world = build(engine)
    before = len(_audit(engine))
    forged = {"Authorization": "Bearer forged-token"}
    answers = [strict_client.get("/v1/campaigns", headers=forged) for _ in range(3)]
    assert [a.status_code for a in answers] == [401, 401, 401]
    blocked = strict_client.get("/v1/campaigns", headers=forged)
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "too_many_failures"
    assert 0 < int(blocked.headers["Retry-After"]) <= 60
    # While blocked, even a good token from that address waits: the token is not looked up.
    assert strict_client.get("/v1/campaigns", headers=world["submitter"]).status_code == 429
    entries = _audit(engine)[before:]
    assert [(e.action, e.subject) for e in entries] == [
        ("auth.failed", "address:testclient"),
        ("auth.blocked", "address:testclient"),
    ]
    assert json.loads(entries[1].details)["failures"] == 3
    assert "forged-token" not in "".join(e.details for e in entries)
