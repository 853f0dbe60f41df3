"""Competent authorities and their people.

Every change is appended to the audit log under the `actor` that made it: a `User`, or a
label for a trusted operator-side caller without a user, such as "cli:<login>" for the command
line; who may do what is decided in `campaigns.custody`. `actor=None` checks nothing and writes
no entry: it exists only for test fixtures; every command and endpoint passes an actor.
"""

import base64
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, and_, col, func, select

from campaigns import approval, audit, custody, tokens
from campaigns.areas import unknown_codes
from campaigns.custody import Actor
from campaigns.errors import InvalidInput, InvalidState, NotFound
from campaigns.models import ApiToken, Authority, Role, User, utcnow
from campaigns.numbers import NumberRejected, normalise_msisdn

AUTHORITY_CODE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
MAX_USERNAME: Final = 64
MAX_NAME: Final = 200
MAX_APPROVALS: Final = 100
AUTHORITY_ROLES: Final = custody.AUTHORITY_ROLES
OPERATOR_ROLES: Final = (Role.OPERATOR, Role.ADMIN)  # never of an authority


class AuthorityChanges(BaseModel):
    """An update of an authority: the fields given are changed, the others stay as they are.

    `public_key` given as None removes the key.
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    areas: list[str] | None = None
    approvals_normal: int | None = None
    approvals_urgent: int | None = None
    test_numbers: list[str] | None = None
    public_key: str | None = None
    off_registry_lists: bool | None = None


@dataclass(frozen=True)
class UserSummary:
    """A user with the code of their authority and how many live tokens they hold."""

    user: User
    authority_code: str | None
    live_tokens: int


# --- authorities ----------------------------------------------------------------------------


def create_authority(
    *,
    session: Session,
    code: str,
    name: str,
    areas: list[str] | None = None,
    approvals_normal: int = 1,
    approvals_urgent: int = 1,
    test_numbers: list[str] | None = None,
    public_key: str | None = None,
    off_registry_lists: bool = False,
    actor: Actor | None = None,
) -> Authority:
    """Register a competent authority, allowed to target `areas` (operator admins)."""
    if actor is not None:
        custody.require_operator_admin(actor)
    if not AUTHORITY_CODE.fullmatch(code):
        raise InvalidInput(
            f"authority code {code!r} must be 1 to 32 letters, digits, '.', '_' or '-'"
        )
    if session.exec(select(Authority).where(Authority.code == code)).first() is not None:
        raise InvalidInput(f"authority code {code!r} is taken")
    authority = Authority(
        code=code,
        name=_checked_name("name", name),
        areas=_checked_areas(session, areas or []),
        approvals_normal=_checked_approvals("approvals_normal", approvals_normal),
        approvals_urgent=_checked_approvals("approvals_urgent", approvals_urgent),
        test_numbers=_checked_test_numbers(test_numbers or []),
        public_key=_checked_public_key(public_key),
        off_registry_lists=off_registry_lists,
        created_by=custody.label(actor) if actor is not None else None,
    )
    session.add(authority)
    session.flush()
    _audit(session, actor, "authority.create", f"authority:{code}", _described(authority))
    return authority


def update_authority(
    *, session: Session, authority: Authority, changes: AuthorityChanges, actor: Actor | None
) -> Authority:
    """Apply `changes` to `authority`; audit what actually changed, from what to what."""
    if actor is not None:
        fields = set(changes.model_fields_set)
        custody.require_may_change(actor, authority_id=authority.id, fields=fields)
    checked = _checked_changes(session, changes)
    before = _described(authority)
    diff = {
        field: {"from": before[field], "to": value}
        for field, value in checked.items()
        if before[field] != value
    }
    if not diff:
        return authority
    for field, value in checked.items():
        setattr(authority, field, value)
    session.add(authority)
    session.flush()
    # Allowed to one operator admin after confirmation too: an authority's areas or lists let
    # no operator-side person act as it; the entry says whether it was confirmed by then.
    details = {"changes": diff, "confirmed": authority.confirmed_at is not None}
    _audit(session, actor, "authority.update", f"authority:{authority.code}", details)
    return authority


def confirm_authority(*, session: Session, authority: Authority, actor: Actor) -> Authority:
    """A second operator admin vouches for the authority and its authority_admin; audited."""
    # Two admins confirming at once: the second waits here, then finds it confirmed.
    session.refresh(authority, with_for_update={"key_share": True})
    custody.require_may_confirm(actor, authority)
    if authority.confirmed_at is not None:
        raise InvalidState(
            f"authority {authority.code} was confirmed by {authority.confirmed_by} already"
        )
    if not _has_authority_admin(session, authority):
        raise InvalidState(
            f"authority {authority.code} has no authority_admin yet: confirm it once there is one"
        )
    authority.confirmed_at = utcnow()
    authority.confirmed_by = custody.label(actor)
    session.add(authority)
    session.flush()
    details = {
        "created_by": authority.created_by,
        "bootstrapped_by": authority.bootstrapped_by,
        "authority_admins": _authority_admin_names(session, authority),
    }
    _audit(session, actor, "authority.confirm", f"authority:{authority.code}", details)
    return authority


def authority_by_code(*, session: Session, code: str) -> Authority:
    """The authority with `code`."""
    authority = session.exec(select(Authority).where(Authority.code == code)).first()
    if authority is None:
        raise NotFound(f"no authority {code!r}")
    return authority


def list_authorities(*, session: Session) -> list[Authority]:
    """Every authority, by code."""
    return list(session.exec(select(Authority).order_by(col(Authority.code))))


def _checked_changes(session: Session, changes: AuthorityChanges) -> dict[str, object]:
    given = changes.model_fields_set
    checked: dict[str, object] = {}
    if "name" in given:
        checked["name"] = _checked_name("name", changes.name)
    if "areas" in given:
        checked["areas"] = _checked_areas(session, _not_null("areas", changes.areas))
    for field in ("approvals_normal", "approvals_urgent"):
        if field in given:
            checked[field] = _checked_approvals(field, getattr(changes, field))
    if "test_numbers" in given:
        checked["test_numbers"] = _checked_test_numbers(
            _not_null("test_numbers", changes.test_numbers)
        )
    if "public_key" in given:
        checked["public_key"] = _checked_public_key(changes.public_key)
    if "off_registry_lists" in given:
        if changes.off_registry_lists is None:
            raise InvalidInput("off_registry_lists may not be null")
        checked["off_registry_lists"] = changes.off_registry_lists
    return checked


def _not_null(field: str, values: list[str] | None) -> list[str]:
    if values is None:
        raise InvalidInput(f"{field} may not be null; give [] for none")
    return values


def _checked_name(field: str, name: str | None) -> str:
    text = unicodedata.normalize("NFC", name or "").strip()
    if not text or len(text) > MAX_NAME:
        raise InvalidInput(f"{field} must be 1 to {MAX_NAME} characters")
    return text


def _checked_areas(session: Session, codes: list[str]) -> list[str]:
    codes = list(dict.fromkeys(code.strip() for code in codes))
    if unknown := unknown_codes(session, codes):
        raise InvalidInput(f"areas: unknown area codes {', '.join(repr(c) for c in unknown)}")
    return codes


def _checked_approvals(field: str, count: int | None) -> int:
    if count is None or not 1 <= count <= MAX_APPROVALS:
        raise InvalidInput(f"{field} must be between 1 and {MAX_APPROVALS}")
    return count


def _checked_test_numbers(numbers: list[str]) -> list[str]:
    normalised = []
    for raw in numbers:
        try:
            normalised.append(normalise_msisdn(raw))
        except NumberRejected as error:  # its message shows the number masked
            raise InvalidInput(f"test number: {error}") from None
    return list(dict.fromkeys(normalised))


def _checked_public_key(encoded: str | None) -> str | None:
    if encoded is None:
        return None
    try:
        key = approval.parse_public_key(encoded.strip())
    except ValueError as error:
        raise InvalidInput(f"public_key: {error}") from None
    return base64.b64encode(key.public_bytes_raw()).decode()


def _described(authority: Authority) -> dict[str, object]:
    return {
        "code": authority.code,
        "name": authority.name,
        "areas": list(authority.areas),
        "approvals_normal": authority.approvals_normal,
        "approvals_urgent": authority.approvals_urgent,
        "test_numbers": list(authority.test_numbers),
        "public_key": authority.public_key,
        "off_registry_lists": authority.off_registry_lists,
    }


# --- people ---------------------------------------------------------------------------------


def create_user(
    *,
    session: Session,
    username: str,
    name: str,
    role: Role,
    authority: Authority | None,
    actor: Actor | None = None,
    ttl: timedelta = tokens.DEFAULT_TTL,
) -> tuple[User, str]:
    """Create a user and return it with its first API token, shown only this once."""
    username = _checked_username(username)
    has_admin = authority is not None and _has_authority_admin(session, authority)
    if actor is not None:
        custody.require_may_create(
            actor,
            role=role,
            authority_id=authority.id if authority else None,
            authority_has_admin=has_admin,
        )
    if role in AUTHORITY_ROLES and authority is None:
        raise InvalidInput(f"a user with role {role} belongs to an authority")
    if role in OPERATOR_ROLES and authority is not None:
        raise InvalidInput(f"a user with role {role} belongs to the operator, not to an authority")
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise InvalidInput(f"username {username!r} is taken")
    user = User(
        username=username,
        name=_checked_name("name", name),
        role=role,
        authority_id=authority.id if authority else None,
    )
    session.add(user)
    if authority is not None and role == Role.AUTHORITY_ADMIN and not has_admin:
        authority.bootstrapped_by = custody.label(actor) if actor is not None else None
        session.add(authority)
    session.flush()
    details = {
        "username": username,
        "name": user.name,
        "role": str(role),
        "authority": authority.code if authority else None,
    }
    _audit(session, actor, "user.create", f"user:{username}", details)
    return user, tokens.first_token(session=session, user=user, actor=actor, ttl=ttl)[0]


def _has_authority_admin(session: Session, authority: Authority) -> bool:
    found = session.exec(
        select(User.id).where(User.authority_id == authority.id, User.role == Role.AUTHORITY_ADMIN)
    ).first()
    return found is not None


def _authority_admin_names(session: Session, authority: Authority) -> list[str]:
    query = select(User.username).where(
        User.authority_id == authority.id, User.role == Role.AUTHORITY_ADMIN
    )
    return sorted(session.exec(query))


def user_by_username(*, session: Session, username: str) -> User:
    """The user called `username`."""
    username = unicodedata.normalize("NFC", username)
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def list_users(*, session: Session, authority: Authority | None = None) -> list[UserSummary]:
    """Users by username, all or of one authority, with their live token counts."""
    live = and_(col(ApiToken.user_id) == User.id, col(ApiToken.revoked_at).is_(None))
    query = (
        select(User, Authority.code, func.count(col(ApiToken.id)))
        .outerjoin(Authority, col(Authority.id) == User.authority_id)
        .outerjoin(ApiToken, live)
        .group_by(col(User.id), col(Authority.code))
        .order_by(col(User.username))
    )
    if authority is not None:
        query = query.where(User.authority_id == authority.id)
    return [UserSummary(user, code, int(count)) for user, code, count in session.exec(query)]


def _checked_username(username: str) -> str:
    username = unicodedata.normalize("NFC", username)
    if not 1 <= len(username) <= MAX_USERNAME or any(
        ch.isspace() or not ch.isprintable() or ch == "/" for ch in username
    ):
        raise InvalidInput(
            f"username must be 1 to {MAX_USERNAME} printable characters, without spaces or '/'"
        )
    return username


# --- the log -------------------------------------------------------------------


def _audit(
    session: Session,
    actor: Actor | None,
    action: str,
    subject: str,
    details: Mapping[str, object],
) -> None:
    if actor is not None:
        audit.record(session=session, actor=actor, action=action, subject=subject, details=details)
