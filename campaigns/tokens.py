"""API tokens: issued with an expiry, stored hashed, their last use noted at most once a minute.

Tokens and their hashes never go into the audit log. Who may issue and revoke whose tokens is
decided in `campaigns.custody`.
"""

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from campaigns import audit, custody
from campaigns.custody import Actor
from campaigns.errors import InvalidInput
from campaigns.models import ApiToken, User, utcnow

DEFAULT_TTL: Final = timedelta(days=90)
MAX_TTL: Final = timedelta(days=366)
LAST_USED_EVERY: Final = timedelta(minutes=1)  # at most one write a minute per token
_token = ApiToken.__table__  # type: ignore[attr-defined]


def hash_token(token: str) -> str:
    """The stored form of an API token."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    *, session: Session, user: User, actor: Actor | None = None, ttl: timedelta = DEFAULT_TTL
) -> str:
    """A new API token for `user`, live for `ttl`; only its hash is stored."""
    return issue(session=session, user=user, actor=actor, ttl=ttl)[0]


def issue(
    *, session: Session, user: User, actor: Actor | None, ttl: timedelta = DEFAULT_TTL
) -> tuple[str, datetime]:
    """A new API token for `user` and when it expires."""
    if actor is not None:
        custody.require_may_issue_token(actor, user)
    return first_token(session=session, user=user, actor=actor, ttl=ttl)


def first_token(
    *, session: Session, user: User, actor: Actor | None, ttl: timedelta = DEFAULT_TTL
) -> tuple[str, datetime]:
    """The token a new user is created with (whoever may create the user hands it over)."""
    if not timedelta(minutes=1) <= ttl <= MAX_TTL:
        raise InvalidInput(f"ttl must be between one minute and {MAX_TTL.days} days")
    assert user.id is not None
    token = secrets.token_urlsafe(32)
    expires_at = utcnow() + ttl
    stored = ApiToken(user_id=user.id, token_hash=hash_token(token), expires_at=expires_at)
    session.add(stored)
    session.flush()
    if actor is not None:
        details = {"token_id": stored.id, "expires_at": expires_at.isoformat(timespec="seconds")}
        audit.record(
            session=session,
            actor=actor,
            action="token.issue",
            subject=f"user:{user.username}",
            details=details,
        )
    return token, expires_at


def revoke_tokens(*, session: Session, user: User, actor: Actor | None = None) -> int:
    """Revoke every live token of `user`; return how many."""
    if actor is not None:
        custody.require_may_revoke(actor, user)
    tokens = session.exec(
        select(ApiToken).where(ApiToken.user_id == user.id, col(ApiToken.revoked_at).is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = utcnow()
        session.add(token)
    session.flush()
    if actor is not None:
        details = {"revoked": len(tokens), "token_ids": [token.id for token in tokens]}
        audit.record(
            session=session,
            actor=actor,
            action="token.revoke",
            subject=f"user:{user.username}",
            details=details,
        )
    return len(tokens)


def expiry(token: ApiToken) -> datetime:
    """When the token stops working (tokens issued before expiries existed: 90 days on)."""
    return token.expires_at or token.created_at + DEFAULT_TTL


def user_by_token(*, session: Session, token: str) -> User | None:
    """The user holding `token`, if it is live and not expired; notes when it was used."""
    found = session.exec(
        select(User, ApiToken)
        .join(ApiToken, col(ApiToken.user_id) == User.id)
        .where(ApiToken.token_hash == hash_token(token), col(ApiToken.revoked_at).is_(None))
    ).first()
    now = utcnow()
    if found is None or expiry(found[1]) <= now:
        return None
    user, stored = found
    if stored.last_used_at is None or stored.last_used_at <= now - LAST_USED_EVERY:
        # Conditional, so that concurrent requests with one token write it once.
        session.connection().execute(
            update(_token)
            .where(
                _token.c.id == stored.id,
                or_(
                    _token.c.last_used_at.is_(None), _token.c.last_used_at <= now - LAST_USED_EVERY
                ),
            )
            .values(last_used_at=now)
        )
    return user
