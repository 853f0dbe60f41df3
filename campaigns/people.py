"""People of an authority (or of the operator) and their API tokens, stored hashed."""

import hashlib
import secrets

from sqlmodel import Session, col, select

from campaigns.errors import InvalidInput, NotFound
from campaigns.models import ApiToken, Authority, Role, User, utcnow


def hash_token(token: str) -> str:
    """The stored form of an API token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_authority(
    *, session: Session, code: str, name: str, areas: list[str] | None = None
) -> Authority:
    """Register a competent authority, allowed to target `areas`."""
    authority = Authority(code=code, name=name, areas=areas or [])
    session.add(authority)
    session.flush()
    return authority


def create_user(
    *,
    session: Session,
    username: str,
    name: str,
    role: Role,
    authority: Authority | None,
) -> tuple[User, str]:
    """Create a user and return it with its first API token, shown only this once."""
    if role in (Role.SUBMITTER, Role.APPROVER) and authority is None:
        raise InvalidInput(f"a {role} belongs to an authority")
    if role in (Role.OPERATOR, Role.ADMIN) and authority is not None:
        raise InvalidInput(f"an {role} belongs to the operator, not to an authority")
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise InvalidInput(f"username {username!r} is taken")
    user = User(
        username=username,
        name=name,
        role=role,
        authority_id=authority.id if authority else None,
    )
    session.add(user)
    session.flush()
    return user, issue_token(session=session, user=user)


def issue_token(*, session: Session, user: User) -> str:
    """A new API token for `user`; only its hash is stored."""
    assert user.id is not None
    token = secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token)))
    session.flush()
    return token


def revoke_tokens(*, session: Session, user: User) -> int:
    """Revoke every live token of `user`; return how many."""
    tokens = session.exec(
        select(ApiToken).where(ApiToken.user_id == user.id, col(ApiToken.revoked_at).is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = utcnow()
        session.add(token)
    session.flush()
    return len(tokens)


def user_by_token(*, session: Session, token: str) -> User | None:
    """The user holding `token`, if the token is live."""
    return session.exec(
        select(User)
        .join(ApiToken, col(ApiToken.user_id) == User.id)
        .where(ApiToken.token_hash == hash_token(token), col(ApiToken.revoked_at).is_(None))
    ).first()


def user_by_username(*, session: Session, username: str) -> User:
    """The user called `username`."""
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user
