"""The permission matrix: every endpoint × every role × own or other authority."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from campaigns.models import Campaign, CampaignStatus
from dispatcher.db import session_scope
from tests.test_campaigns import CAMPAIGN
from tests.world import World, build

ACTORS = (
    "submitter",
    "approver",
    "other_submitter",
    "other_approver",
    "operator",
    "auditor",
    "admin",
)
READERS = {"submitter", "approver", "operator", "auditor", "admin"}
# endpoint: (method, path suffix, the state the campaign is put in, body, who may)
ENDPOINTS: dict[str, tuple[str, str, CampaignStatus, object, set[str]]] = {
    "get": ("GET", "", CampaignStatus.DRAFT, None, READERS),
    "report": ("GET", "/report", CampaignStatus.DRAFT, None, READERS),
    "preview": ("GET", "/preview", CampaignStatus.DRAFT, None, READERS),
    "edit": ("PUT", "", CampaignStatus.DRAFT, CAMPAIGN, {"submitter"}),
    "submit": ("POST", "/submit", CampaignStatus.DRAFT, None, {"submitter"}),
    "approve": ("POST", "/approve", CampaignStatus.SUBMITTED, "hash", {"approver"}),
    "reject": ("POST", "/reject", CampaignStatus.SUBMITTED, {"reason": "no"}, {"approver"}),
    "cancel": (
        "POST",
        "/cancel",
        CampaignStatus.SUBMITTED,
        None,
        {"submitter", "approver", "operator"},
    ),
    "pause": ("POST", "/pause", CampaignStatus.SENDING, None, {"operator"}),
    "resume": ("POST", "/resume", CampaignStatus.PAUSED, None, {"operator"}),
}


@pytest.fixture
def world(engine: Engine) -> World:
    return build(engine)


def _campaign_in(
    client: TestClient, world: World, engine: Engine, status: CampaignStatus
) -> dict[str, object]:
    body: dict[str, object] = client.post(
        "/v1/campaigns", headers=world["submitter"], json=CAMPAIGN
    ).json()
    with session_scope(engine) as session:
        campaign = session.get(Campaign, body["id"])
        assert campaign is not None
        campaign.status = status
        session.add(campaign)
    return body


def expected_status(endpoint: str, actor: str) -> int:
    """The documented answer: 404 across authorities, 403 for a role, else success."""
    if actor.startswith("other_"):
        return 404
    return 200 if actor in ENDPOINTS[endpoint][4] else 403


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_campaign_endpoints(
    client: TestClient, world: World, engine: Engine, endpoint: str, actor: str
) -> None:
    method, suffix, status, body, _ = ENDPOINTS[endpoint]
    campaign = _campaign_in(client, world, engine, status)
    if body == "hash":
        body = {"content_hash": campaign["content_hash"]}
    path = f"/v1/campaigns/{campaign['id']}{suffix}"
    answer = client.request(method, path, headers=world[actor], json=body)
    assert answer.status_code == expected_status(endpoint, actor), answer.text
    if answer.status_code >= 400:
        assert set(answer.json()["error"]) == {"code", "message"}
        unchanged = client.get(f"/v1/campaigns/{campaign['id']}", headers=world["operator"])
        assert unchanged.json()["status"] == status  # a refused request changes nothing
    without_token = client.request(method, path, json=body)
    assert without_token.status_code == 401


@pytest.mark.parametrize(
    ("actor", "expected"),
    [
        ("submitter", 201),
        ("other_submitter", 201),
        ("approver", 403),
        ("other_approver", 403),
        ("operator", 403),
        ("auditor", 403),
        ("admin", 403),
    ],
)
def test_create(client: TestClient, world: World, actor: str, expected: int) -> None:
    target = ["622"] if actor.startswith("other_") else ["64"]
    answer = client.post(
        "/v1/campaigns", headers=world[actor], json=CAMPAIGN | {"target_areas": target}
    )
    assert answer.status_code == expected, answer.text


@pytest.mark.parametrize("actor", ACTORS)
def test_list_and_areas_are_open_to_every_role(
    client: TestClient, world: World, actor: str
) -> None:
    assert client.get("/v1/campaigns", headers=world[actor]).status_code == 200
    assert client.get("/v1/areas", headers=world[actor]).status_code == 200


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("path", ["/v1/audit", "/v1/audit/verify"])
def test_audit_is_for_auditors_and_admins(
    client: TestClient, world: World, actor: str, path: str
) -> None:
    expected = 200 if actor in ("auditor", "admin") else 403
    assert client.get(path, headers=world[actor]).status_code == expected
    assert client.get(path).status_code == 401
