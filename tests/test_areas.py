"""Administrative areas as dated records: the seed data, what a target reaches, the API."""

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlmodel import Session, col, select

from campaigns import areas
from campaigns.models import Area, Role
from campaigns.people import create_user
from dispatcher.api.app import create_app
from dispatcher.db import session_scope

BEFORE = date(2025, 6, 30)  # the last day of the 2020 units
AFTER = date(2026, 1, 1)
NEW = areas.GIA_LAI_2025
DISTRICTS = {
    "622": "Thành phố Pleiku",
    "623": "Thị xã An Khê",
    "624": "Thị xã Ayun Pa",
    "625": "Huyện KBang",
    "626": "Huyện Đăk Đoa",
    "627": "Huyện Chư Păh",
    "628": "Huyện Ia Grai",
    "629": "Huyện Mang Yang",
    "630": "Huyện Kông Chro",
    "631": "Huyện Đức Cơ",
    "632": "Huyện Chư Prông",
    "633": "Huyện Chư Sê",
    "634": "Huyện Đăk Pơ",
    "635": "Huyện Ia Pa",
    "637": "Huyện Krông Pa",
    "638": "Huyện Phú Thiện",
    "639": "Huyện Chư Pưh",
}


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_scope(engine) as session:
        areas.seed(session)
        yield session


def test_seed_adds_the_missing_rows_once(engine: Engine) -> None:
    with session_scope(engine) as session:
        # 19 units until 30 June 2025 and the new province; 19 successions into it.
        assert areas.seed(session) == 20 + 19
    with session_scope(engine) as session:
        assert areas.seed_gia_lai(session) == 0
        assert len(session.exec(select(Area)).all()) == 20


def test_the_17_district_level_units_of_gia_lai(session: Session) -> None:
    districts = session.exec(select(Area).where(Area.parent_code == areas.GIA_LAI)).all()
    assert {d.code: d.name for d in districts} == DISTRICTS
    assert {(d.valid_from, d.valid_to) for d in districts} == {(areas.RECORDS_FROM, BEFORE)}
    assert {code for code, _, _, _ in areas.GIA_LAI_DISTRICTS} == set(DISTRICTS)


def test_the_merged_province_is_valid_from_1_july_2025(session: Session) -> None:
    records = session.exec(
        select(Area).where(Area.code == NEW).order_by(col(Area.valid_from))
    ).all()
    assert [(r.name, r.valid_to) for r in records][-1] == ("Tỉnh Gia Lai", None)
    assert records[-1].valid_from == date(2025, 7, 1)


def test_a_district_reaches_only_itself(session: Session) -> None:
    assert areas.resolve(session, ["622"]) == ["622"]
    assert areas.resolve(session, ["633"], on=BEFORE) == ["633"]
    assert areas.resolve(session, ["633"], on=AFTER) == ["633"]


def test_the_old_province_reaches_its_districts(session: Session) -> None:
    for day in (BEFORE, AFTER):
        assert areas.resolve(session, [areas.GIA_LAI], day) == sorted([areas.GIA_LAI, *DISTRICTS])


def test_the_new_province_reaches_every_unit_merged_into_it(session: Session) -> None:
    everything = sorted({areas.GIA_LAI, areas.BINH_DINH, NEW, *DISTRICTS})
    assert areas.resolve(session, [NEW], on=AFTER) == everything
    assert areas.resolve(session, [NEW, "622", NEW]) == everything


def test_before_the_merger_binh_dinh_does_not_reach_gia_lai(session: Session) -> None:
    assert areas.resolve(session, [areas.BINH_DINH], on=BEFORE) == [areas.BINH_DINH]


def test_resolve_is_one_query(session: Session) -> None:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    connection = session.connection()
    event.listen(connection, "before_cursor_execute", count)
    try:
        assert len(areas.resolve(session, [NEW], on=AFTER)) == 2 + len(DISTRICTS)
    finally:
        event.remove(connection, "before_cursor_execute", count)
    assert len(statements) == 1


def test_unknown_codes(session: Session) -> None:
    assert areas.unknown_codes(session, ["622", "999", NEW, "999", "x"]) == ["999", "x"]
    assert areas.unknown_codes(session, []) == []


def test_within_allows_units_inside_the_allowed_areas(session: Session) -> None:
    assert areas.within(session, ["622", areas.GIA_LAI], [areas.GIA_LAI]) == []
    assert areas.within(session, [areas.GIA_LAI, "622"], ["622"]) == [areas.GIA_LAI]
    assert areas.within(session, ["623"], ["622"]) == ["623"]
    assert areas.within(session, [areas.GIA_LAI, "639"], [NEW], on=AFTER) == []
    assert areas.within(session, [NEW, "999"], [areas.GIA_LAI], on=AFTER) == [NEW, "999"]


@pytest.fixture
def client(settings_env: None, engine: Engine) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with session_scope(engine) as session:
        areas.seed(session)
        _, token = create_user(
            session=session, username="op", name="Vận hành", role=Role.OPERATOR, authority=None
        )
    with TestClient(create_app()) as client:
        yield client, {"Authorization": f"Bearer {token}"}


def test_the_api_lists_areas_with_their_successors(
    client: tuple[TestClient, dict[str, str]],
) -> None:
    http, headers = client
    answer = http.get("/v1/areas", headers=headers)
    assert answer.status_code == 200, answer.text
    listed = answer.json()
    assert len(listed) == 20
    old = next(a for a in listed if a["code"] == areas.GIA_LAI)
    assert old == {
        "code": areas.GIA_LAI,
        "name": "Tỉnh Gia Lai",
        "level": "province",
        "parent_code": None,
        "valid_from": areas.RECORDS_FROM.isoformat(),
        "valid_to": "2025-06-30",
        "successors": [NEW],
    }

    now = http.get("/v1/areas", headers=headers, params={"on": "2026-01-01"}).json()
    assert [(a["code"], a["valid_to"], a["successors"]) for a in now] == [(NEW, None, [])]

    below = http.get("/v1/areas", headers=headers, params={"parent": areas.GIA_LAI}).json()
    assert {a["code"]: a["name"] for a in below} == DISTRICTS
    assert {tuple(a["successors"]) for a in below} == {(NEW,)}


def test_the_api_needs_a_token(client: tuple[TestClient, dict[str, str]]) -> None:
    http, _ = client
    assert http.get("/v1/areas").status_code == 401
