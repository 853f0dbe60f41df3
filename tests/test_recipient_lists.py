"""Uploaded recipient lists over the API, and how a list and areas combine into recipients."""

import csv
import io

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from campaigns import optouts, targeting
from campaigns.models import AuditEntry, Campaign, Priority, RecipientListEntry, Subscriber
from dispatcher.db import session_scope
from tests.world import World, build

# Line 1 is a header naming the column; the comment says what becomes of each row.
UPLOAD = """\
name,msisdn
An,0912 345 678
Bình,+84912345679
Cường,01623456789
Dũng,0912345678
Em,0912abc678
Giang,+66 81 234 5678

Hà,0269 3823 456
Hải,84 912 345 679
"""
ACCEPTED = {"+84912345678", "+84912345679", "+84323456789"}
REJECTED = [
    {"line": 6, "raw": "0912abc678", "reason": "invalid"},
    {"line": 7, "raw": "+66 81 234 5678", "reason": "foreign"},
    {"line": 9, "raw": "0269 3823 456", "reason": "not_mobile"},
]


@pytest.fixture
def world(engine: Engine) -> World:
    world = build(engine)
    with session_scope(engine) as session:
        # The upload's good numbers are active subscribers of Pleiku (622), inside Gia Lai (64).
        session.add_all(Subscriber(msisdn=msisdn, area_code="622") for msisdn in ACCEPTED)
    return world


def _grant_off_registry_lists(client: TestClient, world: World) -> None:
    granted = client.patch(
        "/v1/authorities/STTTT-GL", headers=world["admin"], json={"off_registry_lists": True}
    )
    assert granted.status_code == 200, granted.text


def _upload(client: TestClient, world: World, actor: str, text: str = UPLOAD) -> Response:
    return client.post(
        "/v1/recipient-lists",
        headers=world[actor],
        data={"name": "Hộ dân ven sông Ba"},
        files={"file": ("list.csv", text.encode(), "text/csv")},
    )


def _entries(engine: Engine, list_id: int) -> set[str]:
    with Session(engine) as session:
        found = session.exec(
            select(RecipientListEntry.msisdn).where(RecipientListEntry.list_id == list_id)
        )
        return set(found)


def test_an_upload_stores_unique_numbers_and_reports_rejected_lines(
    client: TestClient, world: World, engine: Engine
) -> None:
    answer = _upload(client, world, "submitter")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["accepted"], body["rejected"], body["duplicates"]) == (3, 3, 2)
    assert body["name"] == "Hộ dân ven sông Ba"
    assert body["authority_id"] == world.authority_ids["a"]
    assert _entries(engine, body["id"]) == ACCEPTED
    rejections = client.get(body["rejections_url"], headers=world["approver"])
    assert rejections.json() == REJECTED
    as_csv = client.get(
        body["rejections_url"], params={"format": "csv"}, headers=world["submitter"]
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    # A cell that a spreadsheet would take for a formula ("+66 …") is written as text.
    assert list(csv.DictReader(io.StringIO(as_csv.text))) == [
        {key: ("'" if str(value)[0] in "=+-@" else "") + str(value) for key, value in row.items()}
        for row in REJECTED
    ]
    assert "'+66 81 234 5678" in as_csv.text
    page = client.get(
        body["rejections_url"], params={"after_line": 6, "limit": 1}, headers=world["submitter"]
    )
    assert page.json() == REJECTED[1:2]
    with Session(engine) as session:
        entries = session.exec(select(AuditEntry)).all()
    entry = entries[-1]
    assert (entry.action, entry.subject) == (
        "recipient_list.create",
        f"recipient_list:{body['id']}",
    )


def test_a_headerless_list_takes_the_first_column(
    client: TestClient, world: World, engine: Engine
) -> None:
    answer = _upload(client, world, "submitter", "0912345678,An\n\n0912345679\n")
    assert answer.status_code == 201, answer.text
    assert (answer.json()["accepted"], answer.json()["rejected"]) == (2, 0)
    assert _entries(engine, answer.json()["id"]) == {"+84912345678", "+84912345679"}


@pytest.mark.parametrize(
    ("reader", "status"),
    [
        ("submitter2", 200),
        ("approver", 200),
        ("operator", 200),
        ("auditor", 200),
        ("admin", 200),
        ("other_submitter", 404),
        ("other_approver", 404),
    ],
)
def test_a_list_is_seen_by_its_authority_operators_and_auditors(
    client: TestClient, world: World, reader: str, status: int
) -> None:
    body = _upload(client, world, "submitter").json()
    answers = [
        client.get(f"/v1/recipient-lists/{body['id']}", headers=world[reader]),
        client.get(body["rejections_url"], headers=world[reader]),
    ]
    assert [a.status_code for a in answers] == [status, status]
    if status == 404:
        assert "0912" not in answers[1].text


def test_auditors_see_rejected_values_masked(client: TestClient, world: World) -> None:
    body = _upload(client, world, "submitter").json()
    shown = client.get(body["rejections_url"], headers=world["auditor"]).json()
    assert [row["raw"] for row in shown] == ["*******678", "+66*********678", "**********456"]


@pytest.mark.parametrize("actor", ["approver", "operator", "auditor", "admin"])
def test_only_submitters_upload(
    client: TestClient, world: World, engine: Engine, actor: str
) -> None:
    answer = _upload(client, world, actor)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"
    with Session(engine) as session:
        assert session.exec(select(RecipientListEntry)).all() == []


def test_an_upload_without_a_name_is_refused(client: TestClient, world: World) -> None:
    answer = client.post(
        "/v1/recipient-lists",
        headers=world["submitter"],
        files={"file": ("list.csv", b"0912345678\n", "text/csv")},
    )
    assert answer.status_code == 422


def _campaign(list_id: int | None, areas: list[str], priority: Priority) -> Campaign:
    return Campaign(
        title="t",
        text="x",
        sender="GiaLai",
        target_areas=areas,
        recipient_list_id=list_id,
        priority=priority,
        authority_id=1,
        created_by_id=1,
    )


def test_a_number_in_both_the_list_and_the_areas_is_counted_once(
    client: TestClient, world: World, engine: Engine
) -> None:
    list_id = _upload(client, world, "submitter").json()["id"]
    with session_scope(engine) as session:
        # The list's three numbers are subscribers in Pleiku (622), and one more number.
        session.add(Subscriber(msisdn="+84987654321", area_code="622"))
        session.flush()
        count = targeting.count_recipients

        def reached(list_id: int | None, areas: list[str], priority: Priority) -> int:
            return count(session=session, campaign=_campaign(list_id, areas, priority))

        assert reached(None, ["622"], Priority.NORMAL) == 4
        assert reached(list_id, [], Priority.NORMAL) == 3
        assert reached(list_id, ["622"], Priority.NORMAL) == 4
        # An opted-out number of the list is left out of a normal campaign, kept in an urgent one.
        optouts.import_opt_outs(session=session, lines=["0912345679\n"], source="t", actor="t")
        assert reached(list_id, ["622"], Priority.NORMAL) == 3
        assert reached(list_id, ["622"], Priority.URGENT) == 4


def test_a_large_upload_is_stored_in_chunks(
    client: TestClient, world: World, engine: Engine
) -> None:
    _grant_off_registry_lists(client, world)  # numbers beyond the registry
    rows = [f"0912{i:06d}\n" for i in range(12_000)] + ["0912000000\n", "x\n"]
    answer = _upload(client, world, "submitter", "".join(rows))
    assert answer.status_code == 201, answer.text
    assert (answer.json()["accepted"], answer.json()["rejected"]) == (12_000, 1)
    assert answer.json()["duplicates"] == 1
    with Session(engine) as session:
        ids = session.exec(select(col(RecipientListEntry.list_id)).distinct()).all()
    assert ids == [answer.json()["id"]]


# --- lists inside the rules -------------------------------------------------------------------

RULES_UPLOAD = """\
msisdn
0912345678
0912000111
0912000222
0912000333
"""


def test_a_list_holds_only_active_subscribers_in_the_authoritys_areas(
    client: TestClient, world: World, engine: Engine
) -> None:
    with session_scope(engine) as session:
        session.add(Subscriber(msisdn="+84912000222", area_code="622", status="inactive"))
        session.add(Subscriber(msisdn="+84912000333", area_code="5201"))  # Bình Định, not 64
    answer = _upload(client, world, "submitter", RULES_UPLOAD)
    assert answer.status_code == 201, answer.text
    assert (answer.json()["accepted"], answer.json()["rejected"]) == (1, 3)
    assert _entries(engine, answer.json()["id"]) == {"+84912345678"}
    rejections = client.get(answer.json()["rejections_url"], headers=world["submitter"]).json()
    assert rejections == [
        {"line": 3, "raw": "+84912000111", "reason": "not_registered"},
        {"line": 4, "raw": "+84912000222", "reason": "inactive"},
        {"line": 5, "raw": "+84912000333", "reason": "outside_areas"},
    ]
    # Pleiku's own authority may list its subscriber; not Gia Lai's others.
    other = _upload(client, world, "other_submitter", RULES_UPLOAD)
    assert (other.json()["accepted"], other.json()["rejected"]) == (1, 3)


def test_an_authority_granted_off_registry_lists_may_list_any_mobile(
    client: TestClient, world: World, engine: Engine
) -> None:
    # Only the operator admin grants it; the authority cannot grant it to itself.
    refused = client.patch(
        "/v1/authorities/STTTT-GL", headers=world["authadmin"], json={"off_registry_lists": True}
    )
    assert refused.status_code == 403
    _grant_off_registry_lists(client, world)
    answer = _upload(client, world, "submitter", RULES_UPLOAD)
    assert (answer.json()["accepted"], answer.json()["rejected"]) == (4, 0)
    with Session(engine) as session:
        grant = session.exec(
            select(AuditEntry).where(AuditEntry.action == "authority.update")
        ).one()
    assert grant.actor.endswith(":admin")
    assert '"off_registry_lists":{"from":false,"to":true}' in grant.details


def test_a_listed_subscriber_who_left_since_the_upload_is_not_sent_to(
    client: TestClient, world: World, engine: Engine
) -> None:
    list_id = _upload(client, world, "submitter").json()["id"]
    with session_scope(engine) as session:
        campaign = _campaign(list_id, [], Priority.NORMAL)
        campaign.authority_id = world.authority_ids["a"]
        assert targeting.count_recipients(session=session, campaign=campaign) == 3
        left = session.exec(select(Subscriber).where(Subscriber.msisdn == "+84912345678")).one()
        left.status = "inactive"
        session.add(left)
        session.flush()
        assert targeting.count_recipients(session=session, campaign=campaign) == 2
