"""Request dependencies: a database session per request, the caller, the queue."""

from collections.abc import Iterator
from typing import Annotated

from arq import ArqRedis
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import event
from sqlmodel import Session

from campaigns import audit
from campaigns.models import User
from campaigns.tokens import user_by_token
from dispatcher.api.auth_failures import FailedAuth
from dispatcher.api.errors import TooManyFailures, Unauthorized, mark_committed
from dispatcher.db import get_engine
from dispatcher.settings import Settings, get_settings


def get_session(request: Request) -> Iterator[Session]:
    """A session for one request, committed when the handler returns normally.

    A commit is noted on the request, so that an error after it (Redis going away before the
    workers are told) is answered as "saved", not as "nothing changed".
    """
    with Session(get_engine(), expire_on_commit=False) as session:
        event.listen(session, "after_commit", lambda _: mark_committed(request))
        yield session
        session.commit()


# Function scope: the commit happens before the answer is sent, so a failed commit is an error
# the caller sees, never a success that did not stick.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
_bearer = HTTPBearer(auto_error=False)


def current_user(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user whose live bearer token came with the request.

    An address that failed too often waits (429) before any token of it is looked up.
    """
    failures: FailedAuth = request.app.state.auth_failures
    address = request.client.host if request.client else "unknown"
    if (wait := failures.retry_after(address)) is not None:
        raise TooManyFailures(wait)
    if credentials is None:
        raise Unauthorized("an Authorization: Bearer token is required")
    user = user_by_token(session=session, token=credentials.credentials)
    if user is None:
        for note in failures.failed(address):
            audit.record(
                session=session,
                actor="api",
                action=note.action,
                subject=f"address:{address}",
                details=note.details,
            )
        session.commit()  # the entries stay although the request fails
        raise Unauthorized("the token is not valid or has expired")
    return user


async def get_queue(request: Request) -> ArqRedis:
    """The arq pool, once Redis has answered a PING.

    Actions commit their change first and only then queue a job or set a halt. Checking Redis
    before the action runs means that while Redis is down the action is refused with
    `queue_unavailable` and nothing was changed; the redis-py error of the PING is answered by
    `dispatcher.api.errors`. The pool connects lazily (see `dispatcher.api.app`), so this is
    also where a Redis that was down at start-up, or went away since, is found again.
    """
    pool: ArqRedis = request.app.state.queue
    await pool.ping()
    return pool


CurrentUser = Annotated[User, Depends(current_user)]
QueueDep = Annotated[ArqRedis, Depends(get_queue)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
