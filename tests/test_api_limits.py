"""Limits before work: sizes, strict and bounded input, characters, pages, CSV cells.

Each refusal is checked as a caller sees it (status, error shape, what it names) and, where
something could have been written, that nothing was.
"""

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from campaigns.models import Campaign, RecipientList
from dispatcher.api.app import create_app
from dispatcher.settings import get_settings
from tests.world import World, build

CAMPAIGN = {
    "title": "Phòng chống dịch nCoV",
    "text": "Sở TT&TT Gia Lai: đeo khẩu trang, rửa tay thường xuyên.",
    "sender": "GiaLai",
    "target_areas": ["64"],
}


@pytest.fixture
def world(engine: Engine) -> World:
    return build(engine)


@pytest.fixture
def small_limits(settings_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The API with a 4 KiB request limit, a 16 KiB upload limit and 5 rows per upload."""
    monkeypatch.setenv("DISPATCHER_MAX_REQUEST_BYTES", "4096")
    monkeypatch.setenv("DISPATCHER_MAX_UPLOAD_BYTES", "16384")
    monkeypatch.setenv("DISPATCHER_MAX_UPLOAD_ROWS", "5")
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        yield client


def refused(answer: httpx.Response, status: int, code: str) -> str:
    """The answer is a refusal in the error shape; its message."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    message: str = body["error"]["message"]
    return message


def campaigns_in(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(Campaign)).one())


# --- sizes -------------------------------------------------------------------------------------


def test_a_large_body_is_refused_before_authentication(small_limits: TestClient) -> None:
    answer = small_limits.post(
        "/v1/campaigns",
        content=b"{" + b" " * 5000 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert "4096 bytes" in refused(answer, 413, "too_large")


def test_a_large_unauthenticated_upload_is_refused_from_its_declared_length(
    small_limits: TestClient,
) -> None:
    answer = small_limits.post(
        "/v1/recipient-lists",
        data={"name": "x"},
        files={"file": ("big.csv", b"0912345678\n" * 2000, "text/csv")},
    )
    assert "16384 bytes" in refused(answer, 413, "too_large")


def test_a_chunked_body_is_cut_off_at_the_limit(small_limits: TestClient, world: World) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"title": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}'

    answer = small_limits.post(
        "/v1/campaigns",
        content=chunks(),
        headers={**world["submitter"], "Content-Type": "application/octet-stream"},
    )
    refused(answer, 413, "too_large")


def test_an_upload_of_too_many_rows_is_refused_and_stores_nothing(
    small_limits: TestClient, world: World, engine: Engine
) -> None:
    rows = "msisdn\n" + "".join(f"091200000{i}\n" for i in range(6))
    answer = small_limits.post(
        "/v1/recipient-lists",
        headers=world["submitter"],
        data={"name": "six rows"},
        files={"file": ("list.csv", rows.encode(), "text/csv")},
    )
    assert "more than 5 rows" in refused(answer, 413, "too_large")
    with Session(engine) as session:
        assert session.exec(select(RecipientList)).all() == []
    five = "msisdn\n" + "".join(f"091200000{i}\n" for i in range(5))
    accepted = small_limits.post(
        "/v1/recipient-lists",
        headers=world["submitter"],
        data={"name": "five rows"},
        files={"file": ("list.csv", five.encode(), "text/csv")},
    )
    assert accepted.status_code == 201, accepted.text


# --- strict, bounded input ---------------------------------------------------------------------


def test_an_unknown_field_is_refused_by_name_and_creates_nothing(
    client: TestClient, world: World, engine: Engine
) -> None:
    # "Mode" (wrong case) used to be ignored: the campaign was created live.
    answer = client.post(
        "/v1/campaigns", headers=world["submitter"], json=CAMPAIGN | {"Mode": "exercise"}
    )
    assert "Mode" in refused(answer, 422, "invalid_input")
    assert campaigns_in(engine) == 0


@pytest.mark.parametrize(
    "path",
    [
        "/v1/campaigns/2147483648",
        "/v1/campaigns/99999999999999999999999",
        "/v1/campaigns/0",
        "/v1/recipient-lists/2147483648",
        "/v1/campaigns?before_id=2147483648",
        "/v1/audit?campaign_id=9223372036854775808",
    ],
)
def test_an_id_beyond_its_column_is_refused(client: TestClient, world: World, path: str) -> None:
    refused(client.get(path, headers=world["admin"]), 422, "invalid_input")


@pytest.mark.parametrize(
    "changes",
    [
        {"send_start": "9999-12-31T23:00:00+00:00"},
        {"send_expiry": "1900-01-01T00:00:00+00:00"},
        {"document_date": "0001-01-01"},
        {"target_areas": ["64"] * 101},
        {"target_areas": ["x" * 17]},
        {"recipient_list_id": 2**31},
    ],
)
def test_dates_lists_and_ids_out_of_range_are_refused(
    client: TestClient, world: World, engine: Engine, changes: dict[str, Any]
) -> None:
    answer = client.post("/v1/campaigns", headers=world["submitter"], json=CAMPAIGN | changes)
    assert next(iter(changes)) in refused(answer, 422, "invalid_input")
    assert campaigns_in(engine) == 0


def test_pages_are_bounded(client: TestClient, world: World) -> None:
    for path in ("/v1/campaigns", "/v1/audit", "/v1/areas", "/v1/users", "/v1/authorities"):
        refused(client.get(f"{path}?limit=501", headers=world["admin"]), 422, "invalid_input")


def test_campaigns_page_with_a_cursor_and_a_link(client: TestClient, world: World) -> None:
    ids = [
        client.post("/v1/campaigns", headers=world["submitter"], json=CAMPAIGN).json()["id"]
        for _ in range(5)
    ]
    first = client.get("/v1/campaigns?limit=2", headers=world["submitter"])
    assert [c["id"] for c in first.json()] == ids[::-1][:2]
    link = first.headers["Link"]
    assert link.endswith('; rel="next"') and f"before_id={ids[3]}" in link
    second = client.get(link[1 : link.index(">")], headers=world["submitter"])
    assert [c["id"] for c in second.json()] == ids[::-1][2:4]
    last = client.get(f"/v1/campaigns?limit=2&before_id={ids[1]}", headers=world["submitter"])
    assert [c["id"] for c in last.json()] == [ids[0]] and "Link" not in last.headers


def test_areas_users_and_authorities_page_with_a_cursor(client: TestClient, world: World) -> None:
    everything = client.get("/v1/areas", headers=world["admin"]).json()
    paged: list[dict[str, Any]] = []
    url: str | None = "/v1/areas?limit=7"
    while url is not None:
        answer = client.get(url, headers=world["admin"])
        paged += answer.json()
        link = answer.headers.get("Link")
        url = link[1 : link.index(">")] if link else None
    assert paged == everything and len(everything) > 7
    users = client.get("/v1/users?limit=4", headers=world["admin"])
    after = users.json()[-1]["username"]
    rest = client.get(f"/v1/users?after={after}", headers=world["admin"]).json()
    assert len(users.json()) + len(rest) == len(world.headers)
    authorities = client.get("/v1/authorities?limit=1", headers=world["admin"])
    assert [a["code"] for a in authorities.json()] == ["STTTT-GL"]
    assert "after=STTTT-GL" in authorities.headers["Link"]


# --- characters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "why"),
    [
        ({"text": "Sơ tán\u0000 ngay"}, "text", "U+0000"),
        ({"title": "Lũ\u0007"}, "title", "U+0007"),
        ({"text": "Sơ tán \u202eyagn\u202c"}, "text", "bidirectional"),
        ({"text": "\u200b\u200c\u200d\ufeff \u3164"}, "text", "nothing visible"),
        ({"title": "\u2060\u200b"}, "title", "nothing visible"),
        ({"sender": "GiaLai\n"}, "sender", ""),
        ({"sender": "Gia\u200bLai"}, "sender", ""),
    ],
)
def test_text_and_sender_are_refused_with_control_invisible_or_bidi_characters(
    client: TestClient,
    world: World,
    engine: Engine,
    changes: dict[str, str],
    field: str,
    why: str,
) -> None:
    answer = client.post("/v1/campaigns", headers=world["submitter"], json=CAMPAIGN | changes)
    message = refused(answer, 422, "invalid_input")
    assert field in message and why in message
    assert campaigns_in(engine) == 0


def test_a_multi_line_vietnamese_text_is_accepted(client: TestClient, world: World) -> None:
    text = "Sở TT&TT Gia Lai:\nĐề phòng lũ quét,\r\nsơ tán khỏi ven sông Ba."
    answer = client.post(
        "/v1/campaigns", headers=world["submitter"], json=CAMPAIGN | {"text": text}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["text"] == text


@pytest.mark.parametrize(
    "path",
    ["/v1/opt-outs/0912%00345678", "/v1/audit?actor=a%00b", "/v1/areas?parent=6%0A4"],
)
def test_control_characters_in_a_path_or_query_are_refused(
    client: TestClient, world: World, path: str
) -> None:
    assert "U+00" in refused(client.get(path, headers=world["admin"]), 422, "invalid_input")


def test_control_characters_anywhere_in_a_json_body_are_refused_before_authentication(
    client: TestClient,
) -> None:
    answer = client.post("/v1/authorities", json={"code": "X", "name": "a\u0000b", "areas": []})
    assert "body.name" in refused(answer, 422, "invalid_input")
    answer = client.post(
        "/v1/opt-outs",
        content=b'{"msisdn": "0912345678", "source": "\\ud800"}',  # a lone surrogate
        headers={"Content-Type": "application/json"},
    )
    assert "body.source" in refused(answer, 422, "invalid_input")


def test_a_send_window_that_has_passed_is_refused(
    client: TestClient, world: World, engine: Engine
) -> None:
    def ago(hours: float) -> str:
        return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()

    for changes in (
        {"send_start": ago(30)},  # the default validity (24 h) ended 6 hours ago
        {"send_start": ago(5), "send_expiry": ago(1)},
    ):
        answer = client.post("/v1/campaigns", headers=world["submitter"], json=CAMPAIGN | changes)
        assert "already passed" in refused(answer, 422, "invalid_input")
    assert campaigns_in(engine) == 0
    late = client.post(
        "/v1/campaigns", headers=world["submitter"], json=CAMPAIGN | {"send_start": ago(1)}
    )
    assert late.status_code == 201, late.text  # started an hour ago, still within its window


# --- CSV we write ------------------------------------------------------------------------------


def test_rejection_cells_that_a_spreadsheet_would_run_are_written_as_text(
    client: TestClient, world: World
) -> None:
    upload = "msisdn\n=1+2\n+1 555 0100\n@SUM(A1)\n-1\n0912345678\n"
    created = client.post(
        "/v1/recipient-lists",
        headers=world["submitter"],
        data={"name": "formulas"},
        files={"file": ("list.csv", upload.encode(), "text/csv")},
    )
    assert created.status_code == 201, created.text
    exported = client.get(
        created.json()["rejections_url"], params={"format": "csv"}, headers=world["submitter"]
    )
    raws = [row["raw"] for row in csv.DictReader(io.StringIO(exported.text))]
    assert raws == ["'=1+2", "'+1 555 0100", "'@SUM(A1)", "'-1"]


def test_an_upload_with_an_unknown_form_field_is_refused(
    client: TestClient, world: World, engine: Engine
) -> None:
    answer = client.post(
        "/v1/recipient-lists",
        headers=world["submitter"],
        data={"name": "list", "authority": "SYT-PK"},
        files={"file": ("list.csv", b"0912345678\n", "text/csv")},
    )
    assert "'authority'" in refused(answer, 422, "invalid_input")
    with Session(engine) as session:
        assert session.exec(select(RecipientList)).all() == []
