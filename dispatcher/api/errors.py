"""One error shape for every error: `{"error": {"code": ..., "message": ...}}`.

When the database or Redis cannot be reached the answer is a 503 with a `Retry-After`:

- `database_unavailable`: the database did not answer (connection refused or lost, a
  connection found dead, no connection to be had from the pool in time). The request's
  transaction did not commit, so nothing it meant to write is stored (short of the connection
  dropping during the COMMIT itself, which leaves any database client in doubt).
- `queue_unavailable`: Redis did not answer when an action (approve, cancel, pause, resume)
  was to queue a job or set a halt. Such actions check that Redis answers before they change
  anything, so the usual answer is "nothing was changed, try again". Should Redis go away in the
  instant between that check and the job, after the change was committed, the answer says that
  the change was saved and must not be repeated (see `mark_committed`).

Failures are logged with the exception's class and the first line of the driver's message,
never `str()` of a SQLAlchemy statement error: that carries the statement's parameters, which
may be subscriber numbers.
"""

import logging
from typing import Any

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import exc as sa
from starlette.exceptions import HTTPException

from campaigns.errors import CampaignError, InvalidInput, InvalidState, NotFound, PermissionDenied
from campaigns.numbers import mask_in_text

log = logging.getLogger("dispatcher.api")

RETRY_AFTER_SECONDS = 5
"""What a 503 tells the caller to wait before trying again."""

_COMMITTED = "dispatcher_committed"


class Unauthorized(Exception):
    """No valid token came with the request."""


class TooManyFailures(Exception):
    """The client address failed to authenticate too often: it must wait `retry_after` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed attempts to authenticate; retry in {retry_after} s")
        self.retry_after = retry_after


STATUS_BY_ERROR: dict[type[CampaignError], int] = {
    NotFound: 404,
    PermissionDenied: 403,
    InvalidState: 409,
    InvalidInput: 422,
}

DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sa.OperationalError,
    sa.InterfaceError,
    sa.TimeoutError,  # no connection from the pool in time: the database is not answering
)
QUEUE_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


class ErrorDetail(BaseModel):
    """What went wrong: a stable code for programs, a message for people."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


_MEANINGS = {
    400: "The body could not be read as declared (not UTF-8, not the content type it claims).",
    401: "No valid bearer token came with the request.",
    403: "The caller's role may not do this, or four-eyes forbids it, or the target is outside "
    "the authority's areas.",
    404: "It does not exist, or belongs to another authority.",
    408: "The request body stopped arriving.",
    409: "Not allowed in the current state (an authority not yet confirmed by a second admin "
    "included), a stale content hash, or a concurrent change.",
    413: "The request body is larger than allowed.",
    422: "Invalid input: the message names the field (unknown fields are refused).",
    429: "Too many failed authentications from this address: wait as Retry-After says.",
    503: "The database or the queue (Redis) is not answering; nothing was changed unless the "
    "message says otherwise. Honour Retry-After.",
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": meaning} for status, meaning in _MEANINGS.items()
}
"""Every error answer of the API, documented with its real shape (the 422 included)."""
UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: RESPONSES[503]}


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The body of every error answer."""
    return {"error": {"code": code, "message": message}}


def unavailable(code: str, message: str) -> JSONResponse:
    """A 503 in the error shape, with the `Retry-After` the caller should honour."""
    return JSONResponse(
        error_body(code, message),
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def summary(exc: BaseException) -> str:
    """The exception's class and the first line of the driver's message, numbers masked.

    A SQLAlchemy `StatementError` renders its SQL and parameters in `str()`; only the
    underlying driver error (`orig`) is looked at, and only its first line (PostgreSQL's DETAIL
    lines may quote values).
    """
    cause: BaseException = exc
    if isinstance(exc, sa.StatementError) and isinstance(exc.orig, BaseException):
        cause = exc.orig
    lines = str(cause).strip().splitlines()
    first = mask_in_text(lines[0])[:200] if lines else ""
    name = type(exc).__name__
    if cause is not exc:
        name = f"{name} ({type(cause).__module__}.{type(cause).__name__})"
    return f"{name}: {first}" if first else name


def mark_committed(request: Request) -> None:
    """Note that this request's transaction committed (the session dependency calls it)."""
    setattr(request.state, _COMMITTED, True)


def _committed(request: Request) -> bool:
    return bool(getattr(request.state, _COMMITTED, False))


def _where(request: Request) -> str:
    # Paths may hold subscriber numbers (/v1/opt-outs/{msisdn}).
    return f"{request.method} {mask_in_text(request.url.path)}"


def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The answer to a request the database could not serve."""
    log.warning("database unavailable on %s: %s", _where(request), summary(exc))
    return unavailable(
        "database_unavailable",
        "the database is not answering; try again shortly",
    )


def queue_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The answer to an action that could not reach Redis; says whether the change stands."""
    if _committed(request):
        log.error(
            "queue unavailable on %s after the change was committed; the workers were not told: %s",
            _where(request),
            summary(exc),
        )
        return unavailable(
            "queue_unavailable",
            "the change was saved, but the queue stopped answering before the workers could be "
            "told; do not repeat the request: reload the campaign to see its state",
        )
    log.warning("queue unavailable on %s: %s", _where(request), summary(exc))
    return unavailable(
        "queue_unavailable",
        "the job queue (Redis) is not answering; nothing was changed, try again shortly",
    )


def install(app: FastAPI) -> None:
    """Map domain errors, validation errors, HTTP errors and outages to the one error shape."""

    @app.exception_handler(CampaignError)
    async def campaign_error(_: Request, exc: CampaignError) -> JSONResponse:
        status = next((s for t, s in STATUS_BY_ERROR.items() if isinstance(exc, t)), 400)
        return JSONResponse(error_body(exc.code, str(exc)), status_code=status)

    @app.exception_handler(Unauthorized)
    async def unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        return JSONResponse(
            error_body("unauthorized", str(exc)),
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.exception_handler(TooManyFailures)
    async def too_many_failures(_: Request, exc: TooManyFailures) -> JSONResponse:
        return JSONResponse(
            error_body("too_many_failures", str(exc)),
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse(error_body("invalid_input", details), status_code=422)

    @app.exception_handler(sa.IntegrityError)
    async def conflict(_: Request, exc: sa.IntegrityError) -> JSONResponse:
        # Two requests raced for the same unique value; the check before the insert passed both.
        return JSONResponse(
            error_body("conflict", "it already exists (a concurrent request made it)"),
            status_code=409,
        )

    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        return database_unavailable(request, exc)

    for error in DATABASE_ERRORS:
        app.add_exception_handler(error, database_down)

    @app.exception_handler(sa.DBAPIError)
    async def database_error(request: Request, exc: sa.DBAPIError) -> JSONResponse:
        # Any other driver error is a 503 only if it was a disconnect; otherwise a real bug.
        if exc.connection_invalidated:
            return database_unavailable(request, exc)
        raise exc

    async def queue_down(request: Request, exc: Exception) -> JSONResponse:
        return queue_unavailable(request, exc)

    for error in QUEUE_ERRORS:
        app.add_exception_handler(error, queue_down)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = getattr(exc, "code", f"http_{exc.status_code}")
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )
