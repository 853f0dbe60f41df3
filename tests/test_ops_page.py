"""The operator page without a browser: sign-in, roles, CSRF, confirmation, the static snapshot.

What JavaScript adds (live updates, the stale banner) is tested in a real Chromium in
test_ops_browser.py; everything here is what a browser without JavaScript gets.
"""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from campaigns import execution
from campaigns.models import AuditEntry, Campaign, CampaignStatus
from campaigns.synthetic import insert_subscribers
from dispatcher.api.app import create_app
from dispatcher.cli import app as cli
from dispatcher.db import make_engine, session_scope
from dispatcher.settings import get_settings
from dispatcher.watching import signin
from tests import world

TITLE = "Cảnh báo lũ quét — huyện Chư Păh"


@pytest.fixture
def people(engine: Engine) -> world.World:
    people = world.build(engine)
    with session_scope(engine) as session:
        insert_subscribers(session=session, count=300)
    return people


def token_of(people: world.World, name: str) -> str:
    return people[name]["Authorization"].removeprefix("Bearer ")


def sending_campaign(client: TestClient, people: world.World, engine: Engine, **more: str) -> int:
    """A campaign created, submitted and approved through the API, then expanded."""
    body = {"title": TITLE, "text": "Sở TT&TT: sơ tán ngay.", "sender": "GiaLai"}
    body |= {"target_areas": ["64"], **more}
    created = client.post("/v1/campaigns", headers=people["submitter"], json=body)
    campaign_id: int = created.json()["id"]
    client.post(f"/v1/campaigns/{campaign_id}/submit", headers=people["submitter"])
    digest = client.get(f"/v1/campaigns/{campaign_id}", headers=people["approver"]).json()
    answer = client.post(
        f"/v1/campaigns/{campaign_id}/approve",
        headers=people["approver"],
        json={"content_hash": digest["content_hash"]},
    )
    assert answer.status_code == 200, answer.text
    with session_scope(engine) as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        settings = get_settings()
        execution.start_sending(
            session=session,
            campaign=campaign,
            generation=campaign.generation,
            batch_size=100,
            policy=settings.policy,
        )
    return campaign_id


def sign_in(client: TestClient, token: str) -> None:
    answer = client.post("/ops/sign-in", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


def test_only_operators_and_admins_sign_in_and_the_cookie_is_strict(
    client: TestClient, people: world.World
) -> None:
    assert 'id="token"' in client.get("/ops").text  # the sign-in form
    for name in ("submitter", "approver", "auditor"):
        answer = client.post("/ops/sign-in", data={"token": token_of(people, name)})
        assert answer.status_code == 403
        assert "operators and admins" in answer.text
    assert client.post("/ops/sign-in", data={"token": "nonsense"}).status_code == 403
    assert client.get("/ops/live").status_code == 401
    answer = client.post(
        "/ops/sign-in", data={"token": token_of(people, "operator")}, follow_redirects=False
    )
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"].lower()
    for flag in ("httponly", "samesite=strict", "max-age=28800", "path=/ops"):
        assert flag in cookie
    page = client.get("/ops")
    assert "Figures as of" in page.text and 'id="token"' not in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"


def test_a_forged_or_revoked_cookie_signs_nobody_in(
    engine: Engine, people: world.World, client: TestClient
) -> None:
    with Session(engine) as session:
        cookie = signin.sign_in(session=session, token=token_of(people, "operator"), hours=1)
    sessions = signin.Sessions(engine)
    assert sessions.check(cookie) is not None
    token_id, expires, mac = cookie.split(".")
    assert signin.Sessions(engine).check(f"{token_id}.{int(expires) + 3600}.{mac}") is None
    assert signin.Sessions(engine).check(f"{token_id}.{expires}.{'0' * 64}") is None
    result = CliRunner().invoke(cli, ["users", "revoke", "operator"])
    assert result.exit_code == 0, result.output
    assert signin.Sessions(engine).check(cookie) is None


def test_without_javascript_the_page_is_a_snapshot_and_pause_asks_first(
    client: TestClient, people: world.World, engine: Engine, redis_url: str
) -> None:
    live = sending_campaign(client, people, engine)
    drill = sending_campaign(client, people, engine, mode="exercise", priority="urgent")
    sign_in(client, token_of(people, "operator"))
    page = client.get("/ops").text
    row = page[page.index(f'id="campaign-{live}"') :]
    assert TITLE in row and "STTTT-GL" in row and 'data-status="sending"' in page
    assert "EXERCISE" in page[page.index(f'id="campaign-{drill}"') :]
    assert re.search(r'id="lane-normal">[1-9]', page)  # queued messages wait in the lane
    assert re.search(r'id="lane-urgent">[1-3]<', page)  # the exercise goes to 3 test numbers

    # Without the form token nothing happens; with it, a confirmation page first.
    action = f"/ops/campaigns/{live}/pause"
    assert client.post(action, data={"confirmed": "yes"}).status_code == 403
    token = csrf(page)
    asked = client.post(action, data={"csrf": token})
    assert asked.status_code == 200 and "Yes, pause it" in asked.text and TITLE in asked.text
    foreign = client.post(
        action,
        data={"csrf": token, "confirmed": "yes"},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    with Session(engine) as session:
        assert session.get(Campaign, live).status == CampaignStatus.SENDING  # type: ignore[union-attr]

    done = client.post(action, data={"csrf": token, "confirmed": "yes"})
    assert done.status_code == 200 and f"Campaign {live} paused." in done.text
    with Session(engine) as session:
        assert session.get(Campaign, live).status == CampaignStatus.PAUSED  # type: ignore[union-attr]
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "campaign.pause")).one()
        assert entry.actor.endswith(":operator") and entry.campaign_id == live
    halted = redis.Redis.from_url(redis_url).hgetall(f"{get_settings().queue_name}:halted")
    assert halted == {str(live).encode(): b"paused"}

    # The same rules as the API: a paused campaign cannot be paused again.
    again = client.post(action, data={"csrf": token, "confirmed": "yes"})
    assert again.status_code == 409 and "is paused" in again.text


def test_an_admin_watches_but_does_not_pause(
    client: TestClient, people: world.World, engine: Engine
) -> None:
    campaign_id = sending_campaign(client, people, engine)
    sign_in(client, token_of(people, "admin"))
    page = client.get("/ops").text
    assert f'id="campaign-{campaign_id}"' in page and ">Pause<" not in page
    answer = client.post(
        f"/ops/campaigns/{campaign_id}/pause", data={"csrf": csrf(page), "confirmed": "yes"}
    )
    assert answer.status_code == 403 and "operator" in answer.text


@pytest.fixture
def redis_gone(
    monkeypatch: pytest.MonkeyPatch, settings_env: None, people: world.World
) -> Iterator[TestClient]:
    """The API with a Redis nobody answers on."""
    monkeypatch.setenv("DISPATCHER_REDIS_URL", "redis://127.0.0.1:9/0")
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        yield client


def test_the_page_goes_visibly_stale_when_redis_is_lost(
    redis_gone: TestClient, people: world.World
) -> None:
    sign_in(redis_gone, token_of(people, "operator"))
    live = redis_gone.get("/ops/live").text
    assert "Redis is not answering" in live
    assert 'data-stale="1"' in live and "STALE" in live
    assert "No figures from the workers yet." in live
    assert 'id="lane-normal"' in live  # the database's figures are still shown


def test_the_page_goes_visibly_stale_when_the_database_is_lost(
    client: TestClient, people: world.World, engine: Engine, tmp_path: Path
) -> None:
    campaign_id = sending_campaign(client, people, engine)
    sign_in(client, token_of(people, "operator"))
    assert 'data-stale="0"' in client.get("/ops/live").text
    feed = client.app.state.snapshot_feed  # type: ignore[attr-defined]
    feed.watcher.engine = make_engine(f"sqlite:///{tmp_path}/gone/no/such.db")
    feed.watcher.last.taken_at -= 60  # the next request takes a new snapshot
    live = client.get("/ops/live").text
    assert "Database is not answering" in live and 'data-stale="1"' in live
    assert f'id="campaign-{campaign_id}"' in live  # the last figures stay, marked stale


def test_status_once_prints_the_same_figures(
    client: TestClient, people: world.World, engine: Engine
) -> None:
    campaign_id = sending_campaign(client, people, engine)
    result = CliRunner().invoke(
        cli, ["status", "--once", "--interval", "0.2"], env={"COLUMNS": "220"}
    )
    assert result.exit_code == 0, result.output
    assert TITLE in result.output and "STTTT-GL" in result.output
    assert "smsc1#0" in result.output and "not held" in result.output
    assert f"{campaign_id}" in result.output and "sending" in result.output
