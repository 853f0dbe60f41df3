"""An operable API: probes, documentation served from the app, headers, CORS, timeouts.

The timeouts are checked on the real server (`dispatcher api`, uvicorn) over TCP.
"""

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from dispatcher import migrate
from dispatcher.api.app import create_app
from dispatcher.db import get_engine, make_engine
from dispatcher.settings import get_settings
from tests.world import World, build

ERRORS = {"400", "401", "403", "404", "408", "409", "413", "422", "503"}


@pytest.fixture
def world(engine: Engine) -> World:
    return build(engine)


# --- probes ------------------------------------------------------------------------------------


def test_health_answers_while_the_database_is_away_and_ready_does_not(
    settings_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "db").mkdir()
    url = f"sqlite:///{tmp_path / 'db' / 'dispatcher.db'}"
    migrate.upgrade(url)
    monkeypatch.setenv("DISPATCHER_DATABASE_URL", url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    with TestClient(create_app()) as client:
        get_engine()  # made now: an engine made later would create an empty database there
        (tmp_path / "db").rename(tmp_path / "away")
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "database_unavailable"


def test_ready_says_when_the_schema_is_behind_its_migrations(
    settings_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'behind.db'}"
    migrate.upgrade(url, "0001")
    monkeypatch.setenv("DISPATCHER_DATABASE_URL", url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    with TestClient(create_app()) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503, ready.text
        assert ready.json()["error"]["code"] == "not_migrated"
        assert f"not at {migrate.head()}" in ready.json()["error"]["message"]
        migrate.upgrade(url)
        assert client.get("/ready").json()["schema_revision"] == migrate.head()


# --- documentation -----------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_documentation_pages_load_everything_from_the_app(
    client: TestClient, page: str
) -> None:
    answer = client.get(page)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert "http://" not in answer.text and "https://" not in answer.text
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', answer.text)
    assert assets
    for asset in assets:
        loaded = client.get(asset)
        assert loaded.status_code == 200, asset
        assert len(loaded.content) > 100
    assert client.get("/openapi.json").status_code == 200
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "<script>" not in answer.text  # no inline script: the policy would block it


def test_every_error_answer_is_documented_with_its_real_shape(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    shape = document["components"]["schemas"]["ErrorBody"]
    assert shape["required"] == ["error"]
    for path, operations in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            documented = set(operation["responses"])
            assert ERRORS <= documented, f"{method} {path}: {ERRORS - documented}"
            schema = operation["responses"]["422"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}


# --- headers and CORS --------------------------------------------------------------------------


def test_security_headers_and_no_store_on_every_answer(client: TestClient, world: World) -> None:
    issued = client.post("/v1/users/submitter/tokens", headers=world["admin"])
    assert issued.status_code == 201 and "token" in issued.json()
    for answer in (
        issued,
        client.get("/v1/campaigns", headers=world["submitter"]),
        client.get("/v1/campaigns"),  # a 401
        client.get("/health"),
    ):
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_cors_is_off_unless_origins_are_configured(
    settings_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    preflight = {
        "Origin": "https://ops.example.vn",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    with TestClient(create_app()) as client:
        answer = client.options("/v1/campaigns", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers
        plain = client.get("/health", headers={"Origin": "https://ops.example.vn"})
        assert "access-control-allow-origin" not in plain.headers
    monkeypatch.setenv("DISPATCHER_CORS_ORIGINS", '["https://ops.example.vn"]')
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        answer = client.options("/v1/campaigns", headers=preflight)
        assert answer.headers["access-control-allow-origin"] == "https://ops.example.vn"
        other = client.options("/v1/campaigns", headers=preflight | {"Origin": "https://x.com"})
        assert "access-control-allow-origin" not in other.headers


def test_statement_parameters_are_never_rendered(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with pytest.raises(DBAPIError) as failed, engine.connect() as connection:
            connection.execute(
                text("SELECT * FROM no_such_table WHERE x = :n"), {"n": "84912345678"}
            )
        assert "84912345678" not in str(failed.value)
    finally:
        engine.dispose()


# --- the real server's timeouts ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def server(settings_env: None) -> Iterator[int]:
    """`dispatcher api` with one-second header, keep-alive and body timeouts."""
    port = _free_port()
    env = os.environ | {
        "DISPATCHER_HEADERS_TIMEOUT": "1",
        "DISPATCHER_API_KEEP_ALIVE_TIMEOUT": "1",
        "DISPATCHER_BODY_READ_TIMEOUT": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "dispatcher", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "no API"
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


def _closed_within(connection: socket.socket, seconds: float) -> tuple[bytes, float]:
    """What the server sent before it closed the connection, and when it closed it."""
    started = time.monotonic()
    connection.settimeout(seconds)
    received = b""
    try:
        while chunk := connection.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    return received, time.monotonic() - started


def test_a_connection_that_sends_nothing_is_closed(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as connection:
        received, after = _closed_within(connection, 5)
    assert received == b"" and after < 3


def test_headers_trickling_in_are_cut_off(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as connection:
        started = time.monotonic()
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(20):  # a header byte every 0.25 s: never complete
                connection.sendall(b"X")
                time.sleep(0.25)
        except (BrokenPipeError, ConnectionResetError):
            pass
        _closed_within(connection, 5)
    assert time.monotonic() - started < 4


def test_a_body_that_stops_arriving_is_answered_408(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as connection:
        connection.sendall(
            b"POST /v1/campaigns HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"title": '
        )
        received, after = _closed_within(connection, 5)
    assert received.startswith(b"HTTP/1.1 408"), received[:100]
    assert b'"code":"timeout"' in received and after < 4


def test_an_idle_keep_alive_connection_is_closed(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        received, after = _closed_within(connection, 5)
    assert received.startswith(b"HTTP/1.1 200") and after < 3
