"""schemathesis over the whole OpenAPI document, with a token of every role.

Cases valid and invalid by the schema are generated for every operation and sent to the app
in-process, on the real test database (SQLite, or PostgreSQL with DISPATCHER_TEST_DATABASE_URL)
and the real Redis. Every answer must be no server error, have a documented status, content type
and headers, and match its documented schema; input the schema refuses must be refused.

`DISPATCHER_FUZZ_EXAMPLES` sets the examples per operation and role (`make fuzz` runs more).
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text
from sqlalchemy.engine import make_url

from dispatcher import migrate
from dispatcher.api.app import create_app
from dispatcher.db import get_engine, make_engine
from dispatcher.settings import get_settings
from tests.conftest import TEST_DATABASE_URL
from tests.world import World, build

EXAMPLES = int(os.environ.get("DISPATCHER_FUZZ_EXAMPLES", "4"))
ROLES = ("submitter", "approver", "operator", "auditor", "admin")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
CAMPAIGN = {
    "title": "Phòng chống dịch nCoV",
    "text": "Sở TT&TT Gia Lai: đeo khẩu trang, rửa tay thường xuyên.",
    "sender": "GiaLai",
    "target_areas": ["64"],
}


@dataclass
class Fuzzed:
    """The app under test, the people calling it, and what was sent."""

    client: TestClient
    world: World
    cases: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


def _database(tmp_path: Path) -> Iterator[str]:
    """A migrated database of the module's own (an own schema on PostgreSQL)."""
    if not TEST_DATABASE_URL:
        url = f"sqlite:///{tmp_path / 'fuzz.db'}"
        migrate.upgrade(url)
        yield url
        return
    schema = f"fuzz_{os.getpid()}"
    url = make_url(TEST_DATABASE_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    admin = make_engine(TEST_DATABASE_URL)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    rendered = url.render_as_string(hide_password=False)
    migrate.upgrade(rendered)
    try:
        yield rendered
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def _seed(client: TestClient, world: World) -> None:
    """A campaign in a few states, so that small ids name real ones."""
    for _ in range(3):
        created = client.post("/v1/campaigns", headers=world["submitter"], json=CAMPAIGN)
        assert created.status_code == 201, created.text
    submitted = client.post("/v1/campaigns/2/submit", headers=world["submitter"])
    assert submitted.status_code == 200, submitted.text
    client.post("/v1/campaigns/3/submit", headers=world["submitter"])
    approved = client.post(
        "/v1/campaigns/3/approve",
        headers=world["approver"],
        json={
            "content_hash": client.get("/v1/campaigns/3", headers=world["approver"]).json()[
                "content_hash"
            ]
        },
    )
    assert approved.status_code == 200, approved.text


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Iterator[Fuzzed]:
    """The app on a database and Redis of this module's own."""
    tmp_path = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as patch:
        for database_url in _database(tmp_path):
            patch.setenv("DISPATCHER_VAR_DIR", str(tmp_path / "var"))
            patch.setenv("DISPATCHER_DATABASE_URL", database_url)
            patch.setenv("DISPATCHER_REDIS_URL", redis_server)
            get_settings.cache_clear()
            get_engine.cache_clear()
            seeding = make_engine(database_url)
            world = build(seeding)
            seeding.dispose()
            with TestClient(create_app()) as client:
                _seed(client, world)
                run = Fuzzed(client, world)
                yield run
            get_engine().dispose()
            get_settings.cache_clear()
            get_engine.cache_clear()
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(run.by_status.items()))
            print(f"\nschemathesis: {run.cases} cases, 0 failures; answers by status: {statuses}")


def _schema() -> Any:
    """The app's OpenAPI document (building the app reads no database)."""
    document = create_app().openapi()
    get_settings.cache_clear()
    loaded = schemathesis.openapi.from_dict(document)
    loaded.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=EXAMPLES,
        with_security_parameters=False,  # the token is each role's, added when sending
    )
    return loaded


schema = _schema()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_server_error_and_every_answer_as_documented(
    case: schemathesis.Case, fuzzed: Fuzzed
) -> None:
    """Each generated case is sent once with the token of each role."""
    for role in ROLES:
        _send_and_check(case, fuzzed, fuzzed.world[role])


def _send_and_check(case: schemathesis.Case, fuzzed: Fuzzed, token: dict[str, str]) -> None:
    # The case is rendered to bytes the way schemathesis renders it (with requests), then sent
    # to the app in-process, so that odd multipart parts and bodies arrive as generated.
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=token)
    prepared = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        json=kwargs.get("json"),
        data=kwargs.get("data"),
        files=kwargs.get("files"),
    ).prepare()
    assert prepared.method is not None and prepared.url is not None
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    answer = fuzzed.client.request(
        prepared.method, prepared.url, headers=dict(prepared.headers), content=body
    )
    fuzzed.cases += 1
    fuzzed.by_status[answer.status_code] = fuzzed.by_status.get(answer.status_code, 0) + 1
    checks = CHECKS
    if case.media_type == "multipart/form-data":
        # A non-string generated as "invalid" for a form field is sent as its text ("false"),
        # which is a valid string: the negative check cannot hold for form fields.
        checks = [check for check in CHECKS if check is not negative_data_rejection]
    case.validate_response(answer, checks=checks, headers=dict(prepared.headers))
