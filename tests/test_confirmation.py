"""Four eyes on the operator side: an authority acts once a second operator admin confirmed it."""

import json

import httpx
import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from campaigns import people
from campaigns.models import AuditEntry, Authority, Campaign, CampaignStatus, Role
from dispatcher import migrate
from dispatcher.cli import app
from dispatcher.db import session_scope
from tests.test_campaigns import CAMPAIGN
from tests.world import World, build

FAKE = {"code": "FAKE-GL", "name": "Sở giả Gia Lai", "areas": ["64"]}


@pytest.fixture
def world(engine: Engine) -> World:
    """The small world, and a second operator admin, "admin2", made apart from "admin"."""
    world = build(engine)
    with session_scope(engine) as session:
        _, token = people.create_user(
            session=session, username="admin2", name="Quản trị 2", role=Role.ADMIN, authority=None
        )
    world.headers["admin2"] = {"Authorization": f"Bearer {token}"}
    return world


def _bearer(answer: httpx.Response) -> dict[str, str]:
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def _new_person(
    client: TestClient, headers: dict[str, str], username: str, role: str
) -> dict[str, str]:
    body = {"username": username, "name": username, "role": role, "authority": FAKE["code"]}
    answer = client.post("/v1/users", headers=headers, json=body)
    assert answer.status_code == 201, answer.text
    return _bearer(answer)


def _audit(engine: Engine, action: str) -> list[AuditEntry]:
    """The entries of `action` about the FAKE-GL authority or its campaigns."""
    with Session(engine) as session:
        query = select(AuditEntry).where(
            AuditEntry.action == action,
            col(AuditEntry.subject).not_in(["authority:STTTT-GL", "authority:SYT-PK"]),
        )
        return list(session.exec(query.order_by(col(AuditEntry.id))))


def _hostile_authority(client: TestClient, admin: dict[str, str]) -> dict[str, dict[str, str]]:
    """One admin registers an authority, makes themselves its admin and its two people."""
    registered = client.post("/v1/authorities", headers=admin, json=FAKE)
    assert registered.status_code == 201, registered.text
    assert (registered.json()["confirmed_at"], registered.json()["confirmed_by"]) == (None, None)
    steward = _new_person(client, admin, "mallory-admin", "authority_admin")
    return {
        "submitter": _new_person(client, steward, "mallory-sub", "submitter"),
        "approver": _new_person(client, steward, "mallory-app", "approver"),
    }


def test_one_operator_admin_alone_cannot_get_a_campaign_of_their_own_authority_submitted(
    client: TestClient, world: World, engine: Engine
) -> None:
    fake = _hostile_authority(client, world["admin"])
    refused = []
    for mode in ("live", "exercise"):
        created = client.post(
            "/v1/campaigns", headers=fake["submitter"], json=CAMPAIGN | {"mode": mode}
        )
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        refused.append(
            client.post(f"/v1/campaigns/{campaign_id}/submit", headers=fake["submitter"])
        )
    assert [answer.status_code for answer in refused] == [409, 409]
    error = refused[0].json()["error"]
    assert error["code"] == "authority_not_confirmed"
    assert "FAKE-GL is not confirmed yet: a second operator admin must confirm" in error["message"]
    # Nor may the same admin confirm it, and the campaign stays a draft.
    own = client.post("/v1/authorities/FAKE-GL/confirm", headers=world["admin"])
    assert own.status_code == 403, own.text
    assert "not the one who registered it" in own.json()["error"]["message"]
    answer = client.get(f"/v1/campaigns/{campaign_id}", headers=fake["submitter"])
    assert answer.json()["status"] == "draft"
    assert _audit(engine, "campaign.submit") == []
    assert _audit(engine, "authority.confirm") == []


def test_a_second_admins_confirmation_lets_the_authority_submit_and_approve(
    client: TestClient, world: World, engine: Engine
) -> None:
    fake = _hostile_authority(client, world["admin"])
    campaign = client.post("/v1/campaigns", headers=fake["submitter"], json=CAMPAIGN).json()
    confirmed = client.post("/v1/authorities/FAKE-GL/confirm", headers=world["admin2"])
    assert confirmed.status_code == 200, confirmed.text
    with Session(engine) as session:
        first, second = (
            people.user_by_username(session=session, username=n) for n in ("admin", "admin2")
        )
    shown = client.get("/v1/authorities/FAKE-GL", headers=world["admin"]).json()
    assert shown["confirmed_by"] == f"user:{second.id}:admin2"
    assert shown["confirmed_at"] is not None
    assert shown["created_by"] == shown["bootstrapped_by"] == f"user:{first.id}:admin"
    again = client.post("/v1/authorities/FAKE-GL/confirm", headers=world["admin"])
    assert again.status_code == 403  # the registering admin, still
    twice = client.post("/v1/authorities/FAKE-GL/confirm", headers=world["admin2"])
    assert (twice.status_code, twice.json()["error"]["code"]) == (409, "invalid_state")
    path = f"/v1/campaigns/{campaign['id']}"
    assert client.post(f"{path}/submit", headers=fake["submitter"]).status_code == 200
    approved = client.post(
        f"{path}/approve",
        headers=fake["approver"],
        json={"content_hash": campaign["content_hash"]},
    )
    assert (approved.status_code, approved.json()["status"]) == (200, "approved"), approved.text
    (entry,) = _audit(engine, "authority.confirm")
    assert (entry.actor, entry.subject) == (f"user:{second.id}:admin2", "authority:FAKE-GL")
    assert json.loads(entry.details) == {
        "created_by": f"user:{first.id}:admin",
        "bootstrapped_by": f"user:{first.id}:admin",
        "authority_admins": ["mallory-admin"],
    }


def test_neither_the_registering_nor_the_bootstrapping_admin_confirms_nor_before_its_admin(
    client: TestClient, world: World, engine: Engine
) -> None:
    assert client.post("/v1/authorities", headers=world["admin"], json=FAKE).status_code == 201
    early = client.post("/v1/authorities/FAKE-GL/confirm", headers=world["admin2"])
    assert early.status_code == 409
    assert "has no authority_admin yet" in early.json()["error"]["message"]
    _new_person(client, world["admin2"], "chau", "authority_admin")
    refused = [
        client.post("/v1/authorities/FAKE-GL/confirm", headers=world[name])
        for name in ("admin", "admin2", "operator", "authadmin")
    ]
    assert [answer.status_code for answer in refused] == [403] * 4
    assert _audit(engine, "authority.confirm") == []
    # A third operator admin, who did neither, may.
    with session_scope(engine) as session:
        authority = people.authority_by_code(session=session, code="FAKE-GL")
        people.confirm_authority(session=session, authority=authority, actor="cli:third")
    assert [entry.actor for entry in _audit(engine, "authority.confirm")] == ["cli:third"]


def test_a_campaign_submitted_before_the_rule_is_not_approved_until_confirmed(
    client: TestClient, world: World, engine: Engine
) -> None:
    fake = _hostile_authority(client, world["admin"])
    campaign = client.post("/v1/campaigns", headers=fake["submitter"], json=CAMPAIGN).json()
    with session_scope(engine) as session:  # as if submitted before this revision
        row = session.get(Campaign, campaign["id"])
        assert row is not None
        row.status = CampaignStatus.SUBMITTED
        session.add(row)
    approve = client.post(
        f"/v1/campaigns/{campaign['id']}/approve",
        headers=fake["approver"],
        json={"content_hash": campaign["content_hash"]},
    )
    assert (approve.status_code, approve.json()["error"]["code"]) == (
        409,
        "authority_not_confirmed",
    )


def test_the_command_line_confirms_as_its_login(
    settings_env: None, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0  # loads the areas
    monkeypatch.setattr("getpass.getuser", lambda: "lan")
    created = runner.invoke(app, ["authorities", "create", "STTTT-GL", "Sở TT&TT", "--area", "64"])
    assert created.exit_code == 0, created.output
    with session_scope(engine) as session:
        authority = people.authority_by_code(session=session, code="STTTT-GL")
        people.create_user(
            session=session,
            username="chau",
            name="Châu",
            role=Role.AUTHORITY_ADMIN,
            authority=authority,
            actor="cli:lan",
        )
    same = runner.invoke(app, ["authorities", "confirm", "STTTT-GL"])
    assert same.exit_code == 1
    assert "a second operator admin confirms it" in same.output
    monkeypatch.setattr("getpass.getuser", lambda: "minh")
    other = runner.invoke(app, ["authorities", "confirm", "STTTT-GL"])
    assert other.exit_code == 0, other.output
    listed = runner.invoke(app, ["authorities", "list"])
    assert "confirmed_by=cli:minh" in listed.output


def test_the_migration_reads_who_registered_and_bootstrapped_from_the_audit_log(
    database_url: str, engine: Engine
) -> None:
    with session_scope(engine) as session:
        authority = people.create_authority(session=session, code="A", name="A", actor="cli:lan")
        people.create_user(
            session=session,
            username="chau",
            name="Châu",
            role=Role.AUTHORITY_ADMIN,
            authority=authority,
            actor="cli:minh",
        )
    command.downgrade(migrate.alembic_config(database_url), "-1")  # to before this revision
    migrate.upgrade(database_url)
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT created_by, bootstrapped_by, confirmed_at FROM authority")
        ).one()
    assert tuple(row) == ("cli:lan", "cli:minh", None)
    with Session(engine) as session:
        assert session.exec(select(Authority)).one().confirmed_by is None
