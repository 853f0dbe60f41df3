"""Admin endpoints: the registry of authorities, people and API tokens. Admins only."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict

from campaigns import people
from campaigns.errors import PermissionDenied
from campaigns.models import Authority, Role, User
from campaigns.people import AuthorityChanges
from dispatcher.api.bounds import MAX_PAGE, Key, PageLimit, link_next
from dispatcher.api.deps import CurrentUser, SessionDep

router = APIRouter(prefix="/v1", tags=["admin"])


def admin(user: CurrentUser) -> User:
    """The caller, who must be an admin."""
    if user.role != Role.ADMIN:
        raise PermissionDenied("only an admin manages authorities, people and tokens")
    return user


Admin = Annotated[User, Depends(admin)]
Code = Annotated[str, Path(min_length=1, max_length=32)]
Username = Annotated[str, Path(min_length=1, max_length=64)]


class AuthorityIn(BaseModel):
    """A new authority. Test numbers in any written form; the public key as base64 raw bytes."""

    model_config = ConfigDict(extra="forbid")

    code: str
    name: str
    areas: list[str] = []
    approvals_normal: int = 1
    approvals_urgent: int = 1
    test_numbers: list[str] = []
    public_key: str | None = None


class AuthorityPublic(BaseModel):
    """An authority as the API shows it, test numbers in E.164."""

    code: str
    name: str
    areas: list[str]
    approvals_normal: int
    approvals_urgent: int
    test_numbers: list[str]
    public_key: str | None
    created_at: datetime


class UserIn(BaseModel):
    """A new user: of an authority (by code), or of the operator (no authority)."""

    model_config = ConfigDict(extra="forbid")

    username: str
    name: str
    role: Role
    authority: str | None = None


class UserPublic(BaseModel):
    """A user, with how many live API tokens they hold."""

    username: str
    name: str
    role: Role
    authority: str | None
    live_tokens: int
    created_at: datetime


class UserCreated(UserPublic):
    """A new user with their first API token, shown only in this answer."""

    token: str


class TokenIssued(BaseModel):
    """A new API token, shown only in this answer."""

    username: str
    token: str


class TokensRevoked(BaseModel):
    """How many live tokens were revoked."""

    username: str
    revoked: int


@router.post("/authorities", status_code=201, response_model=AuthorityPublic)
def create_authority(body: AuthorityIn, session: SessionDep, actor: Admin) -> AuthorityPublic:
    """Register a competent authority."""
    authority = people.create_authority(session=session, actor=actor, **body.model_dump())
    return _authority(authority)


@router.get("/authorities", response_model=list[AuthorityPublic])
def list_authorities(
    request: Request,
    response: Response,
    session: SessionDep,
    _: Admin,
    after: Key | None = None,
    limit: PageLimit = MAX_PAGE,
) -> list[AuthorityPublic]:
    """Authorities by code; page with `after` = the last code received (see `Link`)."""
    # Ordered here, not by the database's collation, so that the cursor compares the same way.
    found = sorted(people.list_authorities(session=session), key=lambda a: a.code)
    page = [_authority(a) for a in found if after is None or a.code > after][:limit]
    if page:
        link_next(request, response, len(page), limit, after=page[-1].code)
    return page


@router.get("/authorities/{code}", response_model=AuthorityPublic)
def get_authority(code: Code, session: SessionDep, _: Admin) -> AuthorityPublic:
    """One authority."""
    return _authority(people.authority_by_code(session=session, code=code))


@router.patch("/authorities/{code}", response_model=AuthorityPublic)
def update_authority(
    code: Code, changes: AuthorityChanges, session: SessionDep, actor: Admin
) -> AuthorityPublic:
    """Change the fields given; `"public_key": null` removes the key."""
    authority = people.authority_by_code(session=session, code=code)
    people.update_authority(session=session, authority=authority, changes=changes, actor=actor)
    return _authority(authority)


@router.post("/users", status_code=201, response_model=UserCreated)
def create_user(body: UserIn, session: SessionDep, actor: Admin) -> UserCreated:
    """Create a user; the answer holds their first API token, which is not stored."""
    where = (
        people.authority_by_code(session=session, code=body.authority) if body.authority else None
    )
    user, token = people.create_user(
        session=session,
        username=body.username,
        name=body.name,
        role=body.role,
        authority=where,
        actor=actor,
    )
    summary = people.UserSummary(user, where.code if where else None, live_tokens=1)
    return UserCreated(**_user(summary).model_dump(), token=token)


@router.get("/users", response_model=list[UserPublic])
def list_users(
    request: Request,
    response: Response,
    session: SessionDep,
    _: Admin,
    authority: Key | None = None,
    after: Key | None = None,
    limit: PageLimit = MAX_PAGE,
) -> list[UserPublic]:
    """Users by username, all or of one authority (by code); page with `after` (see `Link`)."""
    where = people.authority_by_code(session=session, code=authority) if authority else None
    found = sorted(
        people.list_users(session=session, authority=where), key=lambda s: s.user.username
    )
    page = [_user(s) for s in found if after is None or s.user.username > after][:limit]
    if page:
        link_next(request, response, len(page), limit, after=page[-1].username)
    return page


@router.post("/users/{username}/tokens", status_code=201, response_model=TokenIssued)
def issue_token(username: Username, session: SessionDep, actor: Admin) -> TokenIssued:
    """A new API token for the user, shown only in this answer; older tokens stay live."""
    user = people.user_by_username(session=session, username=username)
    token = people.issue_token(session=session, user=user, actor=actor)
    return TokenIssued(username=user.username, token=token)


@router.delete("/users/{username}/tokens", response_model=TokensRevoked)
def revoke_tokens(username: Username, session: SessionDep, actor: Admin) -> TokensRevoked:
    """Revoke every live API token of the user."""
    user = people.user_by_username(session=session, username=username)
    revoked = people.revoke_tokens(session=session, user=user, actor=actor)
    return TokensRevoked(username=user.username, revoked=revoked)


def _authority(authority: Authority) -> AuthorityPublic:
    return AuthorityPublic.model_validate(authority, from_attributes=True)


def _user(summary: people.UserSummary) -> UserPublic:
    user = summary.user
    return UserPublic(
        username=user.username,
        name=user.name,
        role=user.role,
        authority=summary.authority_code,
        live_tokens=summary.live_tokens,
        created_at=user.created_at,
    )
