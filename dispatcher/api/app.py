"""The HTTP API application."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq import ArqRedis
from arq.connections import RedisSettings
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from dispatcher import embedded_redis, migrate, queue
from dispatcher.api import (
    access_log,
    admin,
    areas,
    audit,
    campaigns,
    docs,
    errors,
    headers,
    limits,
    recipients,
    reports,
)
from dispatcher.api.auth_failures import FailedAuth
from dispatcher.db import get_engine
from dispatcher.settings import Settings, get_settings
from dispatcher.watching import page, signin
from dispatcher.watching.feed import SnapshotFeed

log = logging.getLogger("dispatcher.api")

REDIS_TIMEOUT = 1.0
"""Seconds to connect to Redis, and to wait for each of its answers."""
HEALTH_TIMEOUT = 1.0
"""Seconds the readiness check waits for the database and for Redis."""


def open_queue(settings: Settings) -> ArqRedis:
    """A pool to the queue that connects when first used, with short timeouts.

    arq's `create_pool` PINGs Redis, retrying for seconds, and raises if it is down, which would
    keep the API from starting. This pool opens its connections as requests need them, and opens
    them again once Redis is back, so the API comes up without Redis and answers 503
    (`queue_unavailable`) to what needs it until then.
    """
    try:
        url = queue.redis_url(settings)
    except Exception:  # the embedded Redis did not start: look for it later all the same
        log.exception("the embedded Redis did not start")
        url = embedded_redis.url(settings.var_dir)
    target = RedisSettings.from_dsn(url)
    pool: ArqRedis = ArqRedis(
        host=target.host,
        port=target.port,
        unix_socket_path=target.unix_socket_path,
        db=target.database,
        username=target.username,
        password=target.password,
        ssl=target.ssl,
        socket_connect_timeout=REDIS_TIMEOUT,
        socket_timeout=REDIS_TIMEOUT,
        encoding="utf8",
        default_queue_name=settings.queue_name,
    )
    return pool


def _schema_revision() -> str | None:
    with get_engine().connect() as connection:
        return migrate.current(connection)


def _retrieve(task: "asyncio.Future[str | None]") -> None:
    # A check that ended after its caller stopped waiting: its outcome is of no interest.
    if not task.cancelled():
        task.exception()


class DatabaseCheck:
    """The schema's revision read in a thread, one at a time, waited for at most `timeout` s.

    A database behind a dropped network (rather than a refused connection) can hold a connection
    attempt for minutes: the check answers after `timeout` all the same, and the checks that
    follow wait for the one still under way instead of piling up threads.
    """

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self.head = migrate.head()
        self._running: asyncio.Future[str | None] | None = None

    async def __call__(self) -> tuple[str | None, str | None]:
        """What went wrong with the database (None: it answered), and with its schema."""
        running = self._running
        loop = asyncio.get_running_loop()
        if running is None or running.done() or running.get_loop() is not loop:
            running = self._running = asyncio.ensure_future(asyncio.to_thread(_schema_revision))
            running.add_done_callback(_retrieve)
        try:
            revision = await asyncio.wait_for(asyncio.shield(running), self._timeout)
        except TimeoutError:
            return f"no answer within {self._timeout:g} s", None
        except Exception as exc:
            return errors.summary(exc), None
        if revision != self.head:
            return None, f"at {revision or 'no revision'}, not at {self.head}: migrate it"
        return None, None


async def _check_redis(pool: ArqRedis) -> str | None:
    """None when Redis answered a PING in time, else what went wrong."""
    try:
        await asyncio.wait_for(pool.ping(), HEALTH_TIMEOUT)
    except TimeoutError:
        return f"no answer within {HEALTH_TIMEOUT:g} s"
    except Exception as exc:
        return errors.summary(exc)
    return None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Keep a queue pool for the life of the app; it connects when first needed."""
    app.state.queue = open_queue(get_settings())
    app.state.database_check = DatabaseCheck(HEALTH_TIMEOUT)
    app.state.snapshot_feed = SnapshotFeed(get_settings())
    app.state.ops_sessions = signin.Sessions(get_engine())
    app.state.auth_failures = FailedAuth(get_settings().auth_failures_per_minute)
    try:
        yield
    finally:
        await app.state.queue.aclose()
        app.state.snapshot_feed.close()


class Alive(BaseModel):
    """The process answers."""

    status: str = "ok"


class Ready(BaseModel):
    """The database and Redis answer and the schema is at the newest migration."""

    status: str
    database: str
    redis: str
    schema_revision: str


def create_app() -> FastAPI:
    """Build the API."""
    settings = get_settings()
    app = FastAPI(
        title="Public-information SMS dispatcher",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    access_log.install()
    docs.install(app)
    for router in (
        campaigns.router,
        reports.router,
        audit.router,
        areas.router,
        admin.router,
        recipients.opt_out_router,
        recipients.list_router,
    ):
        app.include_router(router, responses=errors.RESPONSES)
    app.include_router(page.router)
    app.mount("/ops/static", page.static, name="ops-static")
    _install_probes(app)
    # The last added runs first: headers on every answer, CORS, then the limits.
    app.add_middleware(
        limits.RequestLimits,
        max_body=settings.max_request_bytes,
        max_upload=settings.max_upload_bytes,
        read_timeout=settings.body_read_timeout,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(headers.SecurityHeaders)
    return app


def _install_probes(app: FastAPI) -> None:
    @app.get("/health", tags=["health"], response_model=Alive)
    async def health() -> Alive:
        """Liveness, without a token and without looking at the database or Redis."""
        return Alive()

    @app.get("/ready", tags=["health"], response_model=Ready, responses=errors.UNAVAILABLE)
    async def ready(request: Request) -> Ready | JSONResponse:
        """Readiness, without a token: the database answers and is migrated, Redis answers.

        A 503 in the error shape names what is not ready: `database_unavailable`,
        `queue_unavailable`, `unavailable` (both), or `not_migrated` (the schema is behind);
        each is given about a second.
        """
        check: DatabaseCheck = request.app.state.database_check
        (database, schema), redis = await asyncio.gather(
            check(), _check_redis(request.app.state.queue)
        )
        if database is None and redis is None and schema is None:
            return Ready(status="ok", database="ok", redis="ok", schema_revision=check.head)
        problems = {"database": database, "redis": redis, "schema": schema}
        for name, problem in problems.items():
            if problem is not None:
                log.warning("ready: %s: %s", name, problem)
        code = {
            (False, True): "database_unavailable",
            (True, False): "queue_unavailable",
            (False, False): "unavailable",
        }.get((database is None, redis is None), "not_migrated")
        state = ", ".join(
            f"{name}: {'ok' if problems[name] is None else 'unavailable'}"
            for name in ("database", "redis")
        )
        if schema is not None:
            state += f", schema: {schema}"
        return errors.unavailable(code, state)
