"""`dispatcher authorities …` and `dispatcher users …`: the registry of authorities and people.

Changes made here are audited under the actor "cli:<login>", the operating-system account
that ran the command (or "cli" when it has no name), which has an operator admin's rights and
no more (see `campaigns.custody`): it registers authorities and operator staff and bootstraps
an authority with its first authority_admin, and confirms an authority (`authorities confirm`)
as the second operator admin, when the login differs from the one that registered it or
bootstrapped its authority_admin; with direct database access the command line stands outside
these rules anyway. What is the authority's own (its people, their
tokens, its signing key) needs that authority_admin's API token, given with `--as-token-file`
or DISPATCHER_AS_TOKEN; the change is then audited under them. Tokens go to stdout alone,
everything else to stderr, so `dispatcher users token an > an.token` keeps just the token.
"""

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from campaigns import people, tokens
from campaigns.custody import Actor
from campaigns.errors import CampaignError, PermissionDenied
from campaigns.models import Authority, Role
from dispatcher.commands.sign import read_public_key
from dispatcher.db import session_scope

authorities_app = typer.Typer(
    help="Competent authorities: areas, approvals, test numbers, signing key.",
    no_args_is_help=True,
)
users_app = typer.Typer(help="People and their API tokens.", no_args_is_help=True)

Areas = Annotated[
    list[str] | None,
    typer.Option("--area", help="GSO code of an area it may target; repeat. Replaces all."),
]
Approvals = Annotated[
    int | None, typer.Option("--approvals", min=1, help="Approvals a normal campaign needs")
]
UrgentApprovals = Annotated[
    int | None,
    typer.Option("--urgent-approvals", min=1, help="Approvals an urgent campaign needs"),
]
TestNumbers = Annotated[
    list[str] | None,
    typer.Option("--test-number", help="Number exercises go to; repeat. Replaces all."),
]
PublicKeyFile = Annotated[
    Path | None,
    typer.Option(
        "--public-key-file",
        exists=True,
        dir_okay=False,
        help="Ed25519 public key: base64 as `dispatcher keygen` prints it, or PEM",
    ),
]


AsToken = Annotated[
    str | None,
    typer.Option(
        "--as-token-file",
        envvar="DISPATCHER_AS_TOKEN_FILE",
        help="File holding the API token of the authority_admin acting (for an authority's "
        "people, tokens and key)",
    ),
]
Ttl = Annotated[
    int,
    typer.Option("--ttl", min=1, max=tokens.MAX_TTL.days, help="Days the token stays valid"),
]


def acting(session: Session, token_file: str | None) -> Actor:
    """Who acts: the holder of the token given, or the operator-side command line."""
    if token_file is None:
        return cli_actor()
    try:
        token = Path(token_file).read_text().strip()
    except OSError as error:
        raise PermissionDenied(f"cannot read {token_file}: {error.strerror}") from None
    user = tokens.user_by_token(session=session, token=token)
    if user is None:
        raise PermissionDenied("the token given with --as-token-file is not valid")
    return user


def cli_actor() -> str:
    """How the audit log names whoever ran this command."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid, e.g. in a bare container
        return "cli"
    return f"cli:{login}"[:100]


@contextmanager
def _domain_errors() -> Iterator[None]:
    # One line for a refused change, exit 1; the session has rolled back by then.
    try:
        yield
    except CampaignError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


@authorities_app.command("create")
def create_authority(
    code: Annotated[str, typer.Argument(help="Short code, e.g. STTTT-GL")],
    name: Annotated[str, typer.Argument(help="Full name")],
    area: Areas = None,
    approvals: Approvals = None,
    urgent_approvals: UrgentApprovals = None,
    test_number: TestNumbers = None,
    public_key_file: PublicKeyFile = None,
) -> None:
    """Register a competent authority."""
    public_key = read_public_key(public_key_file) if public_key_file else None
    with _domain_errors(), session_scope() as session:
        authority = people.create_authority(
            session=session,
            code=code,
            name=name,
            areas=area,
            approvals_normal=approvals or 1,
            approvals_urgent=urgent_approvals or 1,
            test_numbers=test_number,
            public_key=public_key,
            actor=cli_actor(),
        )
        typer.echo(f"created authority {authority.code}", err=True)


@authorities_app.command("update")
def update_authority(
    code: Annotated[str, typer.Argument(help="The authority's code")],
    name: Annotated[str | None, typer.Option(help="New full name")] = None,
    area: Areas = None,
    approvals: Approvals = None,
    urgent_approvals: UrgentApprovals = None,
    test_number: TestNumbers = None,
    clear_test_numbers: Annotated[
        bool, typer.Option("--clear-test-numbers", help="Remove every test number")
    ] = False,
    public_key_file: PublicKeyFile = None,
    remove_public_key: Annotated[
        bool, typer.Option("--remove-public-key", help="Approvals no longer need a signature")
    ] = False,
    off_registry_lists: Annotated[
        bool | None,
        typer.Option(
            "--off-registry-lists/--registry-lists-only",
            help="Whether its recipient lists may hold numbers outside the registry and its areas",
        ),
    ] = None,
    as_token_file: AsToken = None,
) -> None:
    """Change what is given of an authority; the rest stays as it is."""
    if clear_test_numbers and test_number or remove_public_key and public_key_file:
        typer.echo("error: an option contradicts another", err=True)
        raise typer.Exit(2)
    given: dict[str, object] = {
        "name": name,
        "areas": area,
        "approvals_normal": approvals,
        "approvals_urgent": urgent_approvals,
        "test_numbers": [] if clear_test_numbers else test_number,
        "public_key": read_public_key(public_key_file) if public_key_file else None,
        "off_registry_lists": off_registry_lists,
    }
    fields = {field: value for field, value in given.items() if value is not None}
    if remove_public_key:
        fields["public_key"] = None  # given as None: remove the key
    changes = people.AuthorityChanges.model_validate(fields)
    with _domain_errors(), session_scope() as session:
        authority = people.authority_by_code(session=session, code=code)
        before = authority.model_dump()
        actor = acting(session, as_token_file)
        people.update_authority(session=session, authority=authority, changes=changes, actor=actor)
        changed = authority.model_dump() != before
        typer.echo(f"{'updated' if changed else 'nothing to change in'} {code}", err=True)


@authorities_app.command("confirm")
def confirm_authority(
    code: Annotated[str, typer.Argument(help="The authority's code")],
) -> None:
    """Vouch, as a second operator admin, for the authority and its authority_admin."""
    with _domain_errors(), session_scope() as session:
        authority = people.authority_by_code(session=session, code=code)
        people.confirm_authority(session=session, authority=authority, actor=cli_actor())
        typer.echo(f"confirmed {code}: its campaigns may now be submitted", err=True)


@authorities_app.command("list")
def list_authorities() -> None:
    """Every authority with its areas, approvals, test numbers and whether it has a key."""
    with session_scope() as session:
        for authority in people.list_authorities(session=session):
            typer.echo(_authority_line(authority))


def _authority_line(authority: Authority) -> str:
    return "  ".join(
        [
            authority.code,
            authority.name,
            f"areas={','.join(authority.areas) or '-'}",
            f"approvals={authority.approvals_normal}/urgent:{authority.approvals_urgent}",
            f"test_numbers={len(authority.test_numbers)}",
            f"key={'yes' if authority.public_key else 'no'}",
            f"off_registry_lists={'yes' if authority.off_registry_lists else 'no'}",
            f"confirmed_by={authority.confirmed_by or '-'}",
        ]
    )


@users_app.command("create")
def create_user(
    username: Annotated[str, typer.Argument(help="Login name, no spaces")],
    name: Annotated[str, typer.Option(help="Full name")],
    role: Annotated[Role, typer.Option(help="The one role the user holds")],
    authority: Annotated[
        str | None, typer.Option(help="Code of the user's authority; none for the operator")
    ] = None,
    ttl: Ttl = tokens.DEFAULT_TTL.days,
    as_token_file: AsToken = None,
) -> None:
    """Create a user and print their first API token, once."""
    with _domain_errors(), session_scope() as session:
        where = people.authority_by_code(session=session, code=authority) if authority else None
        user, token = people.create_user(
            session=session,
            username=username,
            name=name,
            role=role,
            authority=where,
            actor=acting(session, as_token_file),
            ttl=timedelta(days=ttl),
        )
        typer.echo(f"created {user.role} {user.username}", err=True)
    _print_token(token)


@users_app.command("token")
def issue_token(
    username: Annotated[str, typer.Argument()],
    ttl: Ttl = tokens.DEFAULT_TTL.days,
    as_token_file: AsToken = None,
) -> None:
    """Issue a new API token to USERNAME and print it, once; older tokens stay live."""
    with _domain_errors(), session_scope() as session:
        user = people.user_by_username(session=session, username=username)
        actor = acting(session, as_token_file)
        token, expires_at = tokens.issue(
            session=session, user=user, actor=actor, ttl=timedelta(days=ttl)
        )
    typer.echo(f"valid until {expires_at.isoformat(timespec='seconds')}", err=True)
    _print_token(token)


@users_app.command("revoke")
def revoke_tokens(
    username: Annotated[str, typer.Argument()], as_token_file: AsToken = None
) -> None:
    """Revoke every API token of USERNAME."""
    with _domain_errors(), session_scope() as session:
        user = people.user_by_username(session=session, username=username)
        actor = acting(session, as_token_file)
        count = tokens.revoke_tokens(session=session, user=user, actor=actor)
    typer.echo(f"revoked {count} token(s) of {username}", err=True)


@users_app.command("list")
def list_users(
    authority: Annotated[str | None, typer.Option(help="Only this authority's people")] = None,
) -> None:
    """Users with their role, authority and number of live tokens."""
    with _domain_errors(), session_scope() as session:
        where = people.authority_by_code(session=session, code=authority) if authority else None
        for summary in people.list_users(session=session, authority=where):
            user = summary.user
            typer.echo(
                f"{user.username}  {user.role}  {summary.authority_code or '(operator)'}  "
                f"tokens={summary.live_tokens}  {user.name}"
            )


def _print_token(token: str) -> None:
    typer.echo("API token, shown only now: it is not stored, keep it safe.", err=True)
    typer.echo(token)
