"""Registry endpoints: authorities, people and API tokens.

Operator admins register authorities and operator staff, and bootstrap an authority with its
first authority_admin; an authority_admin manages its own authority's people, their tokens and
its signing key. The finer rules are in `campaigns.custody`.
"""

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from campaigns import people, tokens
from campaigns.errors import NotFound, PermissionDenied
from campaigns.models import Authority, Role, User
from campaigns.people import AuthorityChanges
from dispatcher.api.bounds import MAX_PAGE, Key, PageLimit, link_next
from dispatcher.api.deps import CurrentUser, SessionDep

router = APIRouter(prefix="/v1", tags=["admin"])
TtlDays = Annotated[int, Field(ge=1, le=tokens.MAX_TTL.days)]


def admin(user: CurrentUser) -> User:
    """The caller, who must be an operator admin."""
    if user.role != Role.ADMIN:
        raise PermissionDenied("only an admin manages authorities, people and tokens")
    return user


def manager(user: CurrentUser) -> User:
    """The caller, who must be an operator admin or an authority_admin."""
    if user.role not in (Role.ADMIN, Role.AUTHORITY_ADMIN):
        raise PermissionDenied("only an admin or an authority_admin manages people and tokens")
    return user


Admin = Annotated[User, Depends(admin)]
Manager = Annotated[User, Depends(manager)]
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
    off_registry_lists: bool = False


class AuthorityPublic(BaseModel):
    """An authority as the API shows it, test numbers in E.164.

    `created_by`, `bootstrapped_by` and `confirmed_by` name operator-side actors as the audit
    log does ("user:<id>:<username>", "cli:<login>"); it submits campaigns once confirmed.
    """

    code: str
    name: str
    areas: list[str]
    approvals_normal: int
    approvals_urgent: int
    test_numbers: list[str]
    public_key: str | None
    off_registry_lists: bool
    created_at: datetime
    created_by: str | None
    bootstrapped_by: str | None
    confirmed_at: datetime | None
    confirmed_by: str | None


class UserIn(BaseModel):
    """A new user: of an authority (by code; an authority_admin's own by default), or of the
    operator (no authority); their first token lives `ttl_days` (default 90)."""

    model_config = ConfigDict(extra="forbid")

    username: str
    name: str
    role: Role
    authority: str | None = None
    ttl_days: TtlDays = tokens.DEFAULT_TTL.days


class TokenIn(BaseModel):
    """How long a new token lives."""

    model_config = ConfigDict(extra="forbid")

    ttl_days: TtlDays = tokens.DEFAULT_TTL.days


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
    expires_at: datetime


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
def get_authority(code: Code, session: SessionDep, actor: Manager) -> AuthorityPublic:
    """One authority (an authority_admin sees only its own)."""
    return _authority(_managed_authority(session, code, actor))


@router.patch("/authorities/{code}", response_model=AuthorityPublic)
def update_authority(
    code: Code, changes: AuthorityChanges, session: SessionDep, actor: Manager
) -> AuthorityPublic:
    """Change the fields given; `"public_key": null` removes the key.

    The signing key is the authority's own (its authority_admin's to set); its name, areas and
    off-registry lists are the operator admin's; both may set approvals and test numbers.
    """
    authority = _managed_authority(session, code, actor)
    people.update_authority(session=session, authority=authority, changes=changes, actor=actor)
    return _authority(authority)


@router.post("/authorities/{code}/confirm", response_model=AuthorityPublic)
def confirm_authority(code: Code, session: SessionDep, actor: Admin) -> AuthorityPublic:
    """Vouch for the authority and its authority_admin: then it may submit campaigns.

    A second operator admin's: not the one who registered it (403), nor the one who created its
    first authority_admin (403); it must have one (409), and be unconfirmed (409).
    """
    authority = people.authority_by_code(session=session, code=code)
    people.confirm_authority(session=session, authority=authority, actor=actor)
    return _authority(authority)


@router.post("/users", status_code=201, response_model=UserCreated)
def create_user(body: UserIn, session: SessionDep, actor: Manager) -> UserCreated:
    """Create a user; the answer holds their first API token, which is not stored."""
    code = body.authority
    if code is None and actor.role == Role.AUTHORITY_ADMIN:
        where: Authority | None = session.get(Authority, actor.authority_id)
    else:
        where = people.authority_by_code(session=session, code=code) if code else None
    user, token = people.create_user(
        session=session,
        username=body.username,
        name=body.name,
        role=body.role,
        authority=where,
        actor=actor,
        ttl=timedelta(days=body.ttl_days),
    )
    summary = people.UserSummary(user, where.code if where else None, live_tokens=1)
    return UserCreated(**_user(summary).model_dump(), token=token)


@router.get("/users", response_model=list[UserPublic])
def list_users(
    request: Request,
    response: Response,
    session: SessionDep,
    actor: Manager,
    authority: Key | None = None,
    after: Key | None = None,
    limit: PageLimit = MAX_PAGE,
) -> list[UserPublic]:
    """Users by username, all or of one authority (by code); an authority_admin sees its own.

    Page with `after` = the last username received (see `Link`).
    """
    if actor.role == Role.AUTHORITY_ADMIN:
        where: Authority | None = session.get(Authority, actor.authority_id)
        if authority is not None and (where is None or where.code != authority):
            raise NotFound(f"no authority {authority!r}")
    else:
        where = people.authority_by_code(session=session, code=authority) if authority else None
    found = sorted(
        people.list_users(session=session, authority=where), key=lambda s: s.user.username
    )
    page = [_user(s) for s in found if after is None or s.user.username > after][:limit]
    if page:
        link_next(request, response, len(page), limit, after=page[-1].username)
    return page


@router.post("/users/{username}/tokens", status_code=201, response_model=TokenIssued)
def issue_token(
    username: Username,
    session: SessionDep,
    actor: Manager,
    body: Annotated[TokenIn | None, Body()] = None,
) -> TokenIssued:
    """A new API token for the user, shown only in this answer; older tokens stay live."""
    user = people.user_by_username(session=session, username=username)
    ttl = timedelta(days=(body or TokenIn()).ttl_days)
    token, expires_at = tokens.issue(session=session, user=user, actor=actor, ttl=ttl)
    return TokenIssued(username=user.username, token=token, expires_at=expires_at)


@router.delete("/users/{username}/tokens", response_model=TokensRevoked)
def revoke_tokens(username: Username, session: SessionDep, actor: Manager) -> TokensRevoked:
    """Revoke every live API token of the user."""
    user = people.user_by_username(session=session, username=username)
    revoked = tokens.revoke_tokens(session=session, user=user, actor=actor)
    return TokensRevoked(username=user.username, revoked=revoked)


def _managed_authority(session: SessionDep, code: str, actor: User) -> Authority:
    """The authority, if the caller manages it: an authority_admin sees no other one."""
    authority = people.authority_by_code(session=session, code=code)
    if actor.role == Role.AUTHORITY_ADMIN and authority.id != actor.authority_id:
        raise NotFound(f"no authority {code!r}")
    return authority


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
