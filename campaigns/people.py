"""People of an authority (or of the operator) and their API tokens, stored hashed."""

import hashlib
import secrets

from sqlmodel import Session, select

from campaigns.models import Authority, Role, User


def hash_token(token: str) -> str:
    """The stored form of an API token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_authority(*, session: Session, code: str, name: str) -> Authority:
    """Register a competent authority."""
    authority = Authority(code=code, name=name)
    session.add(authority)
    session.flush()
    return authority


def create_user(
    *, session: Session, name: str, role: Role, authority: Authority | None
) -> tuple[User, str]:
    """Create a user and return it with its new API token, which is shown only this once."""
    token = secrets.token_urlsafe(32)
    user = User(
        name=name,
        role=role,
        authority_id=authority.id if authority else None,
        token_hash=hash_token(token),
    )
    session.add(user)
    session.flush()
    return user, token


def user_by_token(*, session: Session, token: str) -> User | None:
    """The user holding `token`, if any."""
    return session.exec(select(User).where(User.token_hash == hash_token(token))).first()
