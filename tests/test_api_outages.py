"""The API when the database or Redis goes away and comes back: 503s in the error shape.

Real parts only. Between the app and its PostgreSQL or Redis sits a small TCP proxy (below) that
a test cuts (every connection through it aborted, its port no longer listening) and restores;
the machine's shared servers are never touched. SQLite is made unreachable by moving its
directory away. Where an outage ends, the next request succeeds without restarting the app.

What is checked is what a caller sees: the status, the error code, the Retry-After, and that a
refused action changed nothing (or, when Redis went away after the change was committed, that
the answer says it was saved).
"""

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from campaigns.models import Approval, Campaign, Message
from dispatcher import migrate
from dispatcher.api.app import create_app
from dispatcher.db import get_engine, make_engine, session_scope
from dispatcher.settings import get_settings
from tests.conftest import TEST_DATABASE_URL
from tests.world import World, build

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]

CAMPAIGN = {
    "title": "Phòng chống dịch nCoV",
    "text": "Sở TT&TT Gia Lai: đeo khẩu trang, rửa tay thường xuyên.",
    "sender": "GiaLai",
    "target_areas": ["64"],
}
NUMBER = "0912345678"


class Proxy:
    """A local TCP port in front of a real server, that the test cuts and restores.

    It runs its own event loop in a thread. `cut` aborts every connection through it and stops
    listening, so that new connections are refused; `restore` listens on the same port again.
    `cut_when(marker)` cuts at the moment a client sends bytes containing `marker` (they are not
    passed on): the server goes away in the middle of a request.
    """

    def __init__(self, upstream: Callable[[], Coroutine[Any, Any, Streams]]) -> None:
        self._upstream = upstream
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._marker: bytes | None = None
        self.port = 0
        self.restore()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def restore(self) -> None:
        """Listen again (on the same port)."""
        self._call(self._listen())

    def cut(self) -> None:
        """Abort every connection and refuse new ones."""
        self._call(self._cut())

    def cut_when(self, marker: bytes) -> None:
        """Cut as soon as a client sends `marker`."""
        self._loop.call_soon_threadsafe(setattr, self, "_marker", marker)

    def close(self) -> None:
        """Cut, and stop the proxy's loop and thread."""
        self.cut()

        async def settle() -> None:
            # Their connections are aborted: the connection handlers end by themselves.
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=5)

        self._call(settle())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        self._marker = None
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        ends = [writer]
        try:
            try:
                up_reader, up_writer = await self._upstream()
            except OSError:
                return
            ends.append(up_writer)
            if writer not in self._writers:  # cut while connecting upstream
                return
            self._writers.add(up_writer)
            await asyncio.gather(
                self._pipe(reader, up_writer, watch=True), self._pipe(up_reader, writer)
            )
        finally:
            for end in ends:
                end.transport.abort()
                self._writers.discard(end)
            self._tasks.discard(task)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, watch: bool = False
    ) -> None:
        try:
            while data := await source.read(65536):
                if watch and self._marker is not None and self._marker in data:
                    await self._cut()
                    return
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.transport.abort()
            self._writers.discard(sink)


def tcp(host: str, port: int) -> Callable[[], Coroutine[Any, Any, Streams]]:
    """An upstream on a TCP port."""
    return lambda: asyncio.open_connection(host, port)


def unix(path: str) -> Callable[[], Coroutine[Any, Any, Streams]]:
    """An upstream on a unix socket."""
    return lambda: asyncio.open_unix_connection(path)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.02)


def point_app_at(
    monkeypatch: pytest.MonkeyPatch, *, database: str | None = None, redis_url: str | None = None
) -> None:
    """Change where the app (not yet started) finds its database or Redis."""
    if database is not None:
        monkeypatch.setenv("DISPATCHER_DATABASE_URL", database)
    if redis_url is not None:
        monkeypatch.setenv("DISPATCHER_REDIS_URL", redis_url)
    get_settings.cache_clear()
    get_engine.cache_clear()


def server_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the app logged (the test's own HTTP client logs the URLs it asks for)."""
    return "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if not r.name.startswith(("httpx", "httpcore"))
    )


def assert_unavailable(answer: httpx.Response, code: str) -> None:
    """A 503 in the error shape, with the code and a Retry-After."""
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == code
    assert set(answer.json()["error"]) == {"code", "message"}
    assert int(answer.headers["Retry-After"]) > 0


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[Proxy]:
    """A proxy in front of the test Redis (embedded on a unix socket, or TCP)."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        proxy = Proxy(unix(parts.path))
    else:
        proxy = Proxy(tcp(parts.hostname or "127.0.0.1", parts.port or 6379))
    yield proxy
    proxy.close()


def proxied_redis_url(redis_url: str, proxy: Proxy) -> str:
    """The test Redis's database, reached through `proxy`."""
    parts = urlsplit(redis_url)
    database = "0" if parts.scheme == "unix" else parts.path.lstrip("/") or "0"
    return f"redis://127.0.0.1:{proxy.port}/{database}"


@pytest.fixture
def world(engine: Engine) -> World:
    return build(engine)


@pytest.fixture
def outage_client(
    settings_env: None,
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    redis_proxy: Proxy,
) -> Iterator[TestClient]:
    """The API on the test database, and on the test Redis through `redis_proxy`."""
    point_app_at(monkeypatch, redis_url=proxied_redis_url(redis_url, redis_proxy))
    with TestClient(create_app()) as client:
        yield client


def submitted(client: TestClient, world: World) -> dict[str, Any]:
    created = client.post("/v1/campaigns", headers=world["submitter"], json=CAMPAIGN)
    assert created.status_code == 201, created.text
    answer = client.post(f"/v1/campaigns/{created.json()['id']}/submit", headers=world["submitter"])
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def approve(client: TestClient, world: World, campaign: dict[str, Any]) -> httpx.Response:
    answer: httpx.Response = client.post(
        f"/v1/campaigns/{campaign['id']}/approve",
        headers=world["approver"],
        json={"content_hash": campaign["content_hash"]},
    )
    return answer


def approved_with_messages(
    client: TestClient, world: World, engine: Engine, count: int = 5
) -> dict[str, Any]:
    campaign = submitted(client, world)
    answer = approve(client, world, campaign)
    assert answer.status_code == 200, answer.text
    with session_scope(engine) as session:
        session.add_all(
            Message(campaign_id=campaign["id"], batch_no=0, msisdn=f"+8491200{i:04d}")
            for i in range(count)
        )
    return campaign


def status_of(engine: Engine, campaign_id: int) -> str:
    with Session(engine) as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        return str(campaign.status)


def messages_by_status(engine: Engine, campaign_id: int) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.exec(
            select(Message.status, func.count())
            .where(Message.campaign_id == campaign_id)
            .group_by(Message.status)
        ).all()
    return {str(status): n for status, n in rows}


def halted(redis_url: str) -> dict[bytes, bytes]:
    """The halt board the workers follow (`<queue name>:halted`)."""
    client = redis.Redis.from_url(redis_url)
    try:
        return cast(dict[bytes, bytes], client.hgetall(f"{get_settings().queue_name}:halted"))
    finally:
        client.close()


def queued_jobs(redis_url: str) -> list[bytes]:
    client = redis.Redis.from_url(redis_url)
    try:
        return cast(list[bytes], client.zrange(get_settings().queue_name, 0, -1))
    finally:
        client.close()


def test_ready_when_the_database_and_redis_answer_and_the_schema_is_at_head(
    client: TestClient,
) -> None:
    answer = client.get("/ready")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "database": "ok",
        "redis": "ok",
        "schema_revision": migrate.head(),
    }
    assert client.get("/health").json() == {"status": "ok"}


def test_the_api_starts_without_redis_and_serves_actions_once_it_is_back(
    settings_env: None,
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    redis_proxy: Proxy,
    world: World,
    engine: Engine,
) -> None:
    redis_proxy.cut()
    point_app_at(monkeypatch, redis_url=proxied_redis_url(redis_url, redis_proxy))
    with TestClient(create_app()) as client:  # start-up does not wait for Redis
        health = client.get("/ready")
        assert_unavailable(health, "queue_unavailable")
        assert health.json()["error"]["message"] == "database: ok, redis: unavailable"

        campaign = submitted(client, world)  # what needs only the database still works
        refused = approve(client, world, campaign)
        assert_unavailable(refused, "queue_unavailable")
        assert "nothing was changed" in refused.json()["error"]["message"]
        shown = client.get(f"/v1/campaigns/{campaign['id']}", headers=world["approver"]).json()
        assert (shown["status"], shown["approvals"]) == ("submitted", 0)
        with Session(engine) as session:
            assert session.exec(select(Approval)).all() == []

        redis_proxy.restore()
        assert client.get("/ready").json()["status"] == "ok"
        answer = approve(client, world, campaign)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "approved"
        assert queued_jobs(redis_url) == [f"expand:{campaign['id']}:0".encode()]


def test_a_cancel_while_redis_is_down_is_refused_and_changes_nothing(
    outage_client: TestClient, redis_proxy: Proxy, redis_url: str, world: World, engine: Engine
) -> None:
    client = outage_client
    campaign = approved_with_messages(client, world, engine)
    redis_proxy.cut()

    refused = client.post(f"/v1/campaigns/{campaign['id']}/cancel", headers=world["operator"])
    assert_unavailable(refused, "queue_unavailable")
    assert "nothing was changed" in refused.json()["error"]["message"]
    assert status_of(engine, campaign["id"]) == "approved"
    assert messages_by_status(engine, campaign["id"]) == {"queued": 5}
    assert halted(redis_url) == {}
    # Reading does not need Redis.
    report = client.get(f"/v1/campaigns/{campaign['id']}/report", headers=world["submitter"])
    assert report.status_code == 200 and report.json()["by_status"] == {"queued": 5}

    redis_proxy.restore()
    answer = client.post(f"/v1/campaigns/{campaign['id']}/cancel", headers=world["operator"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "cancelled"
    assert messages_by_status(engine, campaign["id"]) == {"cancelled": 5}
    assert halted(redis_url) == {str(campaign["id"]).encode(): b"cancelled"}


def test_redis_lost_after_the_change_was_saved_is_answered_as_saved(
    outage_client: TestClient,
    redis_proxy: Proxy,
    redis_url: str,
    world: World,
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis answers the check before the cancel, then goes away just as the halt is set."""
    client = outage_client
    campaign = approved_with_messages(client, world, engine)
    redis_proxy.cut_when(b"HSET")

    with caplog.at_level(logging.WARNING, logger="dispatcher.api"):
        answer = client.post(f"/v1/campaigns/{campaign['id']}/cancel", headers=world["operator"])
    assert_unavailable(answer, "queue_unavailable")
    message = answer.json()["error"]["message"]
    assert "the change was saved" in message and "do not repeat" in message
    assert status_of(engine, campaign["id"]) == "cancelled"
    assert messages_by_status(engine, campaign["id"]) == {"cancelled": 5}
    assert "after the change was committed" in caplog.text

    redis_proxy.restore()
    shown = client.get(f"/v1/campaigns/{campaign['id']}", headers=world["submitter"])
    assert shown.status_code == 200 and shown.json()["status"] == "cancelled"
    again = client.post(f"/v1/campaigns/{campaign['id']}/cancel", headers=world["operator"])
    assert again.status_code == 409


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database in a directory of its own (to be moved away)."""
    url = f"sqlite:///{tmp_path / 'db' / 'dispatcher.db'}"
    (tmp_path / "db").mkdir()
    migrate.upgrade(url)
    return url


def test_an_unreachable_sqlite_file_is_a_503_until_it_is_back(
    settings_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sqlite_url: str,
) -> None:
    seeding = make_engine(sqlite_url)
    world = build(seeding)
    seeding.dispose()
    point_app_at(monkeypatch, database=sqlite_url)
    with TestClient(create_app()) as client:
        get_engine()  # the app's engine exists, with no connection open yet
        (tmp_path / "db").rename(tmp_path / "elsewhere")

        assert_unavailable(
            client.get("/v1/campaigns", headers=world["operator"]), "database_unavailable"
        )
        created = client.post("/v1/campaigns", headers=world["submitter"], json=CAMPAIGN)
        assert_unavailable(created, "database_unavailable")
        health = client.get("/ready")
        assert_unavailable(health, "database_unavailable")
        assert health.json()["error"]["message"] == "database: unavailable, redis: ok"

        (tmp_path / "elsewhere").rename(tmp_path / "db")
        assert client.get("/ready").status_code == 200
        listed = client.get("/v1/campaigns", headers=world["operator"])
        assert listed.status_code == 200 and listed.json() == []  # the refused create left nothing


def test_a_database_where_nothing_listens_is_a_503_and_the_api_still_starts(
    settings_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, nothing listening on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    point_app_at(monkeypatch, database=f"postgresql+psycopg://postgres@127.0.0.1:{port}/test")
    with TestClient(create_app()) as client:
        health = client.get("/ready")
        assert_unavailable(health, "database_unavailable")
        assert health.json()["error"]["message"] == "database: unavailable, redis: ok"
        answer = client.get("/v1/campaigns", headers={"Authorization": "Bearer some-token"})
        assert_unavailable(answer, "database_unavailable")
        # What needs no database is still answered as before.
        assert client.get("/v1/campaigns").status_code == 401


def test_statement_parameters_stay_out_of_the_log(
    settings_env: None,
    monkeypatch: pytest.MonkeyPatch,
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A statement that fails with a subscriber's number in its parameters (a lost table)."""
    seeding = make_engine(sqlite_url)
    world = build(seeding)
    with seeding.begin() as connection:
        connection.execute(text("DROP TABLE opt_out"))
    seeding.dispose()
    point_app_at(monkeypatch, database=sqlite_url)
    with TestClient(create_app()) as client, caplog.at_level(logging.DEBUG):
        answer = client.get(f"/v1/opt-outs/{NUMBER}", headers=world["operator"])
    assert_unavailable(answer, "database_unavailable")
    logged = server_log(caplog)
    assert "OperationalError" in logged
    assert NUMBER[1:] not in logged and "[parameters" not in logged


needs_postgresql = pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="DISPATCHER_TEST_DATABASE_URL is not set"
)


@pytest.fixture
def postgresql_proxy(database_url: str) -> Iterator[tuple[Proxy, str]]:
    """A proxy in front of the test PostgreSQL, and the test database's URL through it."""
    url = make_url(database_url)
    proxy = Proxy(tcp(url.host or "127.0.0.1", url.port or 5432))
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    yield proxy, through
    proxy.close()


@needs_postgresql
def test_postgresql_lost_and_back(
    settings_env: None,
    monkeypatch: pytest.MonkeyPatch,
    postgresql_proxy: tuple[Proxy, str],
    world: World,
    engine: Engine,
) -> None:
    proxy, through = postgresql_proxy
    point_app_at(monkeypatch, database=through)
    with TestClient(create_app()) as client:
        assert client.get("/v1/campaigns", headers=world["operator"]).status_code == 200
        proxy.cut()  # the pooled connection dies with it: pre-ping finds it, a new one is refused

        assert_unavailable(
            client.get("/v1/campaigns", headers=world["operator"]), "database_unavailable"
        )
        created = client.post("/v1/campaigns", headers=world["submitter"], json=CAMPAIGN)
        assert_unavailable(created, "database_unavailable")
        health = client.get("/ready")
        assert_unavailable(health, "database_unavailable")
        assert health.json()["error"]["message"] == "database: unavailable, redis: ok"

        proxy.restore()
        assert client.get("/ready").status_code == 200
        listed = client.get("/v1/campaigns", headers=world["operator"])
        assert listed.status_code == 200 and listed.json() == []
    with Session(engine) as session:
        assert session.exec(select(Campaign)).all() == []


@needs_postgresql
def test_postgresql_lost_in_the_middle_of_a_statement_keeps_its_parameters_out_of_the_log(
    settings_env: None,
    monkeypatch: pytest.MonkeyPatch,
    postgresql_proxy: tuple[Proxy, str],
    world: World,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy, through = postgresql_proxy
    point_app_at(monkeypatch, database=through)
    with TestClient(create_app()) as client:
        proxy.cut_when(b"FROM opt_out")
        with caplog.at_level(logging.DEBUG):
            answer = client.get(f"/v1/opt-outs/{NUMBER}", headers=world["operator"])
        assert_unavailable(answer, "database_unavailable")
        logged = server_log(caplog)
        assert "OperationalError" in logged
        assert NUMBER[1:] not in logged and "[parameters" not in logged

        proxy.restore()
        found = client.get(f"/v1/opt-outs/{NUMBER}", headers=world["operator"])
        assert found.status_code == 404  # answered again: that number has not opted out
