"""Who may manage whom: no operator-side person may make, or act as, an authority's people.

An authority's submitters and approvers, their tokens and the authority's signing key are the
authority's own business, run by its `authority_admin`s. The operator side (an admin, or the
command line with direct database access) registers an authority and bootstraps it with its
first authority_admin, and from then on can only take access away (revoke tokens), never give
it. So no operator-side person can get a campaign approved without the authority taking part.

Nor can one operator admin invent an authority and act as it: an authority submits and approves
campaigns only once a second operator admin, neither the one who registered it nor the one who
bootstrapped its first authority_admin, has confirmed it after that authority_admin exists,
vouching for the authority and for the person holding its authority_admin account.

An actor is a `User`, or a label for a trusted operator-side caller without a user, such as
"cli:<login>" for the command line: it has an operator admin's rights, no more.
"""

from typing import Final

from campaigns.audit import actor_label
from campaigns.errors import AuthorityNotConfirmed, PermissionDenied
from campaigns.models import Authority, Role, User

Actor = User | str

AUTHORITY_ROLES: Final = (Role.SUBMITTER, Role.APPROVER, Role.AUTHORITY_ADMIN)
OPERATOR_ROLES: Final = (Role.OPERATOR, Role.AUDITOR, Role.ADMIN)
# What an authority's own admin may change of it; the operator admin may change the others.
AUTHORITY_OWNED_FIELDS: Final = frozenset(
    {"public_key", "test_numbers", "approvals_normal", "approvals_urgent"}
)
OPERATOR_OWNED_FIELDS: Final = frozenset(
    {"name", "areas", "approvals_normal", "approvals_urgent", "test_numbers", "off_registry_lists"}
)


def label(actor: Actor) -> str:
    """How the audit log, and an authority's custody columns, name the actor."""
    return actor if isinstance(actor, str) else actor_label(actor)


def is_operator_admin(actor: Actor) -> bool:
    """An admin user, or a trusted operator-side caller such as the command line."""
    return isinstance(actor, str) or actor.role == Role.ADMIN


def is_authority_admin(actor: Actor, authority_id: int | None) -> bool:
    """An authority_admin of that authority."""
    return (
        isinstance(actor, User)
        and actor.role == Role.AUTHORITY_ADMIN
        and authority_id is not None
        and actor.authority_id == authority_id
    )


def require_operator_admin(actor: Actor) -> None:
    """Registering authorities and operator-side people is the operator admin's."""
    if not is_operator_admin(actor):
        raise PermissionDenied("only an operator admin registers authorities and operator staff")


def require_may_create(
    actor: Actor, *, role: Role, authority_id: int | None, authority_has_admin: bool
) -> None:
    """Operator staff by an operator admin; an authority's people by its authority_admin.

    The one exception is the bootstrap: an operator admin may create an authority's first
    authority_admin, while it has none.
    """
    if authority_id is None:
        require_operator_admin(actor)
    elif is_authority_admin(actor, authority_id) and role in AUTHORITY_ROLES:
        return
    elif role == Role.AUTHORITY_ADMIN and not authority_has_admin and is_operator_admin(actor):
        return
    else:
        raise PermissionDenied(
            "an authority's people are created by its authority_admin; an operator admin "
            "creates only its first authority_admin"
        )


def require_may_issue_token(actor: Actor, user: User) -> None:
    """Tokens of operator staff by an operator admin; of an authority's people by its admin."""
    if user.authority_id is None:
        require_operator_admin(actor)
    elif not is_authority_admin(actor, user.authority_id):
        raise PermissionDenied("only the authority's own authority_admin issues its people tokens")


def require_may_revoke(actor: Actor, user: User) -> None:
    """Taking access away: an operator admin for anyone, an authority_admin for its people."""
    if not (is_operator_admin(actor) or is_authority_admin(actor, user.authority_id)):
        raise PermissionDenied("only an admin or the authority's authority_admin revokes tokens")


def require_may_change(actor: Actor, *, authority_id: int | None, fields: set[str]) -> None:
    """The authority's key and test numbers are its own; its areas are the operator's to set."""
    if is_authority_admin(actor, authority_id):
        allowed = AUTHORITY_OWNED_FIELDS
    elif is_operator_admin(actor):
        allowed = OPERATOR_OWNED_FIELDS
    else:
        raise PermissionDenied("only an admin or the authority's authority_admin changes it")
    if refused := sorted(fields - allowed):
        raise PermissionDenied(
            f"{', '.join(refused)}: not for "
            f"{'the authority' if allowed is AUTHORITY_OWNED_FIELDS else 'the operator'} to change"
        )


def require_may_confirm(actor: Actor, authority: Authority) -> None:
    """A second operator admin: not who registered it, nor who bootstrapped its admin."""
    require_operator_admin(actor)
    if label(actor) in (authority.created_by, authority.bootstrapped_by):
        raise PermissionDenied(
            f"authority {authority.code}: a second operator admin confirms it, not the one who "
            "registered it or created its first authority_admin"
        )


def require_confirmed(authority: Authority) -> None:
    """An authority acts (submits, approves) only once a second operator admin confirmed it."""
    if authority.confirmed_at is None:
        raise AuthorityNotConfirmed(
            f"authority {authority.code} is not confirmed yet: a second operator admin must "
            "confirm it before its campaigns can be submitted or approved"
        )
