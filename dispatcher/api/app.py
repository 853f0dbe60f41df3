"""The HTTP API application."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq import ArqRedis
from arq.connections import RedisSettings
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from dispatcher import embedded_redis, queue
from dispatcher.api import access_log, admin, areas, audit, campaigns, errors, recipients, reports
from dispatcher.db import get_engine
from dispatcher.settings import Settings, get_settings

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


def _select_one() -> None:
    with get_engine().connect() as connection:
        connection.exec_driver_sql("SELECT 1").all()


def _retrieve(task: "asyncio.Future[None]") -> None:
    # A check that ended after its caller stopped waiting: its outcome is of no interest.
    if not task.cancelled():
        task.exception()


class DatabaseCheck:
    """`SELECT 1` in a thread, one at a time, waited for at most `timeout` seconds.

    A database behind a dropped network (rather than a refused connection) can hold a connection
    attempt for minutes: the check answers after `timeout` all the same, and the checks that
    follow wait for the one still under way instead of piling up threads.
    """

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._running: asyncio.Future[None] | None = None

    async def __call__(self) -> str | None:
        """None when the database answered, else what went wrong."""
        running = self._running
        loop = asyncio.get_running_loop()
        if running is None or running.done() or running.get_loop() is not loop:
            running = self._running = asyncio.ensure_future(asyncio.to_thread(_select_one))
            running.add_done_callback(_retrieve)
        try:
            await asyncio.wait_for(asyncio.shield(running), self._timeout)
        except TimeoutError:
            return f"no answer within {self._timeout:g} s"
        except Exception as exc:
            return errors.summary(exc)
        return None


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
    try:
        yield
    finally:
        await app.state.queue.aclose()


def create_app() -> FastAPI:
    """Build the API."""
    app = FastAPI(title="Public-information SMS dispatcher", version="0.1.0", lifespan=lifespan)
    errors.install(app)
    access_log.install()
    app.include_router(campaigns.router)
    app.include_router(reports.router)
    app.include_router(audit.router)
    app.include_router(areas.router)
    app.include_router(admin.router)
    app.include_router(recipients.opt_out_router)
    app.include_router(recipients.list_router)

    @app.get("/health", tags=["health"], response_model=None)
    async def health(request: Request) -> dict[str, str] | JSONResponse:
        """Readiness, without a token: the database answers `SELECT 1` and Redis a PING.

        200 `{"status": "ok", "database": "ok", "redis": "ok"}`, or a 503 in the error shape
        whose code names what is down (`database_unavailable`, `queue_unavailable`, or
        `unavailable` for both); each is given about a second.
        """
        check: DatabaseCheck = request.app.state.database_check
        database, redis = await asyncio.gather(check(), _check_redis(request.app.state.queue))
        if database is None and redis is None:
            return {"status": "ok", "database": "ok", "redis": "ok"}
        for name, problem in (("database", database), ("redis", redis)):
            if problem is not None:
                log.warning("health: %s unavailable: %s", name, problem)
        code = {
            (False, True): "database_unavailable",
            (True, False): "queue_unavailable",
        }.get((database is None, redis is None), "unavailable")
        state = ", ".join(
            f"{name}: {'ok' if problem is None else 'unavailable'}"
            for name, problem in (("database", database), ("redis", redis))
        )
        return errors.unavailable(code, state)

    return app
