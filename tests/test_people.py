"""Authorities, people and tokens: the domain, the admin API, the commands and approval keys."""

import base64
import json
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel, col, select
from typer.testing import CliRunner

from campaigns import approval, areas, people, tokens
from campaigns.errors import InvalidInput, PermissionDenied
from campaigns.models import ApiToken, AuditEntry, Authority, Role, User
from dispatcher.db import session_scope

DIGEST = "ab" * 32
ROLES_BUT_ADMIN = [Role.SUBMITTER, Role.APPROVER, Role.OPERATOR, Role.AUDITOR]
MANAGERS = {Role.ADMIN, Role.AUTHORITY_ADMIN}


def _public_key() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    return base64.b64encode(raw).decode()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _audit_log(engine: Engine) -> list[AuditEntry]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.id))))


def _everything(engine: Engine) -> str:
    """Every row of every table, as text."""
    with Session(engine) as session:
        return "\n".join(
            repr(tuple(row))
            for table in SQLModel.metadata.sorted_tables
            for row in session.execute(table.select())
        )


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    with session_scope(engine) as session:
        areas.seed(session)
    return engine


# --- the domain -----------------------------------------------------------------------------


def test_an_authority_is_stored_normalised_and_its_creation_audited(seeded: Engine) -> None:
    key = _public_key()
    with session_scope(seeded) as session:
        authority = people.create_authority(
            session=session,
            code="STTTT-GL",
            name=" Sở TT&TT Gia Lai ",
            areas=["64", "622", "64"],
            approvals_normal=2,
            approvals_urgent=1,
            test_numbers=["0912 345 678", "+84912345678", "01629123456"],
            public_key=f" {key}\n",
            actor="cli:test",
        )
        assert authority.name == "Sở TT&TT Gia Lai"
        assert authority.areas == ["64", "622"]
        assert authority.test_numbers == ["+84912345678", "+84329123456"]
        assert authority.public_key == key
    [entry] = _audit_log(seeded)
    assert (entry.actor, entry.action, entry.subject) == (
        "cli:test",
        "authority.create",
        "authority:STTTT-GL",
    )
    details = json.loads(entry.details)
    assert details["test_numbers"] == ["+84******678", "+84******456"]
    assert details["approvals_normal"] == 2 and details["public_key"] == key


@pytest.mark.parametrize(
    ("changes", "shown"),
    [
        ({"areas": ["64", "999"]}, "999"),
        ({"test_numbers": ["0912345678", "0999 12"]}, "test number"),
        ({"public_key": "bm90IGEga2V5"}, "public_key"),
        ({"approvals_normal": 0}, "approvals_normal"),
        ({"name": "  "}, "name"),
        ({"test_numbers": None}, "test_numbers"),
    ],
)
def test_a_refused_update_names_the_field_and_changes_nothing(
    seeded: Engine, changes: dict[str, object], shown: str
) -> None:
    with session_scope(seeded) as session:
        people.create_authority(session=session, code="A", name="A", areas=["64"], actor="t")
    with pytest.raises(InvalidInput, match=shown), session_scope(seeded) as session:
        authority = people.authority_by_code(session=session, code="A")
        update = people.AuthorityChanges.model_validate(changes)
        # No actor: the values are checked whoever may change them (see test_custody).
        people.update_authority(session=session, authority=authority, changes=update, actor=None)
    with Session(seeded) as session:
        assert people.authority_by_code(session=session, code="A").areas == ["64"]
    assert [entry.action for entry in _audit_log(seeded)] == ["authority.create"]


def test_a_bad_test_number_is_named_masked(seeded: Engine) -> None:
    with pytest.raises(InvalidInput) as refused, session_scope(seeded) as session:
        people.create_authority(
            session=session, code="A", name="A", test_numbers=["0912345678", "+8491234567890"]
        )
    assert "+8491234567890" not in str(refused.value)
    assert "+84********890" in str(refused.value)


def test_an_update_changes_only_what_is_given_and_audits_from_and_to(seeded: Engine) -> None:
    key = _public_key()
    with session_scope(seeded) as session:
        authority = people.create_authority(
            session=session, code="A", name="A", areas=["64"], public_key=key, actor="t"
        )
        steward, _ = people.create_user(
            session=session,
            username="mai",
            name="Mai",
            role=Role.AUTHORITY_ADMIN,
            authority=authority,
            actor="t",
        )
        for changes in ({"approvals_urgent": 3, "public_key": None}, {"approvals_urgent": 3}):
            people.update_authority(
                session=session,
                authority=authority,
                changes=people.AuthorityChanges.model_validate(changes),
                actor=steward,
            )
        assert (authority.areas, authority.approvals_urgent, authority.public_key) == (
            ["64"],
            3,
            None,
        )
    *_, update = _audit_log(seeded)  # the second update changed nothing: no entry
    assert [e.action for e in _audit_log(seeded)].count("authority.update") == 1
    assert json.loads(update.details) == {
        "changes": {
            "approvals_urgent": {"from": 1, "to": 3},
            "public_key": {"from": key, "to": None},
        },
        "confirmed": False,
    }


def test_tokens_are_stored_hashed_and_never_logged(seeded: Engine) -> None:
    with session_scope(seeded) as session:
        user, first = people.create_user(
            session=session,
            username="op",
            name="Vận hành",
            role=Role.OPERATOR,
            authority=None,
            actor="t",
        )
        second = tokens.issue_token(session=session, user=user, actor="t")
    with Session(seeded) as session:
        hashes = set(session.exec(select(ApiToken.token_hash)))
    assert hashes == {tokens.hash_token(first), tokens.hash_token(second)}
    everything = _everything(seeded)
    assert first not in everything and second not in everything
    log = "\n".join(entry.details for entry in _audit_log(seeded))
    assert not any(secret in log for secret in [*hashes, first, second])
    assert [entry.action for entry in _audit_log(seeded)] == [
        "user.create",
        "token.issue",
        "token.issue",
    ]


def test_only_an_admin_user_may_change_the_registry(seeded: Engine) -> None:
    with session_scope(seeded) as session:
        operator, _ = people.create_user(
            session=session, username="op", name="Op", role=Role.OPERATOR, authority=None
        )
        with pytest.raises(PermissionDenied):
            people.create_authority(session=session, code="A", name="A", actor=operator)
        with pytest.raises(PermissionDenied):
            tokens.issue_token(session=session, user=operator, actor=operator)


# --- the admin API --------------------------------------------------------------------------


@dataclass
class Callers:
    admin: dict[str, str]
    by_role: dict[Role, dict[str, str]]


@pytest.fixture
def callers(seeded: Engine) -> Callers:
    with session_scope(seeded) as session:
        own = people.create_authority(session=session, code="STTTT-GL", name="Sở", areas=["64"])
        tokens = {
            role: people.create_user(
                session=session,
                username=f"{role}-user",
                name=str(role),
                role=role,
                authority=own if role in people.AUTHORITY_ROLES else None,
            )[1]
            for role in Role
        }
    return Callers(
        admin=_bearer(tokens[Role.ADMIN]),
        by_role={role: _bearer(token) for role, token in tokens.items()},
    )


ADMIN, OWN_ADMIN = {Role.ADMIN}, {Role.AUTHORITY_ADMIN}
ENDPOINTS = [
    ("POST", "/v1/authorities", {"code": "SYT-GL", "name": "Sở Y tế", "areas": ["64"]}, ADMIN),
    ("GET", "/v1/authorities", None, ADMIN),
    ("GET", "/v1/authorities/STTTT-GL", None, MANAGERS),
    ("PATCH", "/v1/authorities/STTTT-GL", {"approvals_urgent": 2}, MANAGERS),
    ("PATCH", "/v1/authorities/STTTT-GL", {"areas": ["622"]}, ADMIN),
    ("PATCH", "/v1/authorities/STTTT-GL", {"public_key": _public_key()}, OWN_ADMIN),
    ("POST", "/v1/users", {"username": "moi", "name": "Mới", "role": "auditor"}, ADMIN),
    (
        "POST",
        "/v1/users",
        {"username": "moi", "name": "Mới", "role": "approver", "authority": "STTTT-GL"},
        OWN_ADMIN,
    ),
    ("GET", "/v1/users", None, MANAGERS),
    ("POST", "/v1/users/submitter-user/tokens", None, OWN_ADMIN),
    ("POST", "/v1/users/operator-user/tokens", None, ADMIN),
    ("DELETE", "/v1/users/submitter-user/tokens", None, MANAGERS),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS)
def test_who_may_call_the_registry_endpoints(
    client: TestClient,
    callers: Callers,
    seeded: Engine,
    method: str,
    path: str,
    body: dict[str, object] | None,
    allowed: set[Role],
) -> None:
    entries = len(_audit_log(seeded))
    for role in set(Role) - allowed:
        refused = client.request(method, path, json=body, headers=callers.by_role[role])
        assert refused.status_code == 403, (role, refused.text)
        assert refused.json()["error"]["code"] == "forbidden"
    assert client.request(method, path, json=body).status_code == 401
    assert len(_audit_log(seeded)) == entries
    for role in allowed:
        answer = client.request(method, path, json=body, headers=callers.by_role[role])
        assert answer.is_success, answer.text


def test_an_admin_bootstraps_an_authority_whose_admin_manages_its_people(
    client: TestClient, callers: Callers, seeded: Engine
) -> None:
    before = len(_audit_log(seeded))
    key = _public_key()
    created = client.post(
        "/v1/authorities",
        headers=callers.admin,
        json={"code": "SYT-GL", "name": "Sở Y tế", "areas": ["622"], "public_key": key},
    )
    assert created.status_code == 201, created.text
    assert created.json()["public_key"] == key
    patched = client.patch(
        "/v1/authorities/SYT-GL", headers=callers.admin, json={"test_numbers": ["0912345678"]}
    )
    assert patched.json()["test_numbers"] == ["+84912345678"]
    first = client.post(
        "/v1/users",
        headers=callers.admin,
        json={"username": "mai", "name": "Mai", "role": "authority_admin", "authority": "SYT-GL"},
    )
    assert first.status_code == 201, first.text
    steward = _bearer(first.json()["token"])
    # Bootstrap only: no second authority_admin, no submitter or approver by the operator.
    for role in ("authority_admin", "approver", "submitter"):
        body = {"username": "x", "name": "X", "role": role, "authority": "SYT-GL"}
        assert client.post("/v1/users", headers=callers.admin, json=body).status_code == 403
    user = client.post(
        "/v1/users",
        headers=steward,
        json={"username": "lan", "name": "Lan", "role": "approver", "ttl_days": 30},
    )
    assert user.status_code == 201, user.text
    assert user.json()["authority"] == "SYT-GL" and user.json()["live_tokens"] == 1
    listed = client.get("/v1/users", headers=steward)
    assert [u["username"] for u in listed.json()] == ["lan", "mai"]
    assert "token" not in listed.json()[0]
    token = user.json()["token"]
    assert client.post("/v1/users/lan/tokens", headers=callers.admin).status_code == 403
    assert (
        client.patch(
            "/v1/authorities/SYT-GL", headers=callers.admin, json={"public_key": None}
        ).status_code
        == 403
    )
    issued = client.post("/v1/users/lan/tokens", headers=steward, json={"ttl_days": 7})
    again = issued.json()["token"]
    revoked = client.delete("/v1/users/lan/tokens", headers=callers.admin)
    assert revoked.json() == {"username": "lan", "revoked": 2}
    rekeyed = client.patch("/v1/authorities/SYT-GL", headers=steward, json={"public_key": None})
    assert rekeyed.json()["public_key"] is None

    log = _audit_log(seeded)[before:]
    assert [(e.action, e.subject) for e in log] == [
        ("authority.create", "authority:SYT-GL"),
        ("authority.update", "authority:SYT-GL"),
        ("user.create", "user:mai"),
        ("token.issue", "user:mai"),
        ("user.create", "user:lan"),
        ("token.issue", "user:lan"),
        ("token.issue", "user:lan"),
        ("token.revoke", "user:lan"),
        ("authority.update", "authority:SYT-GL"),
    ]
    with Session(seeded) as session:
        admin = people.user_by_username(session=session, username="admin-user")
        mai = people.user_by_username(session=session, username="mai")
    assert {e.actor for e in log[:4] + log[7:8]} == {f"user:{admin.id}:admin-user"}
    assert {e.actor for e in log[4:7] + log[8:]} == {f"user:{mai.id}:mai"}
    assert "+84912345678" not in log[1].details
    text = "\n".join(e.details for e in log)
    for secret in (token, again, tokens.hash_token(token), tokens.hash_token(again)):
        assert secret not in text
    assert token not in _everything(seeded) and again not in _everything(seeded)


def test_a_revoked_token_is_refused_and_a_new_one_works(
    client: TestClient, callers: Callers
) -> None:
    campaigns = "/v1/campaigns"
    steward = callers.by_role[Role.AUTHORITY_ADMIN]
    old = _bearer(
        client.post(
            "/v1/users",
            headers=steward,
            json={"username": "an", "name": "An", "role": "submitter", "authority": "STTTT-GL"},
        ).json()["token"]
    )
    assert client.get(campaigns, headers=old).status_code == 200
    assert client.delete("/v1/users/an/tokens", headers=callers.admin).status_code == 200
    assert client.get(campaigns, headers=old).status_code == 401
    new = _bearer(client.post("/v1/users/an/tokens", headers=steward).json()["token"])
    assert client.get(campaigns, headers=new).status_code == 200
    assert client.get(campaigns, headers=old).status_code == 401


@pytest.mark.parametrize(
    ("path", "body", "shown"),
    [
        ("/v1/authorities", {"code": "X", "name": "X", "areas": ["999"]}, "999"),
        ("/v1/authorities", {"code": "X", "name": "X", "test_numbers": ["12345"]}, "test number"),
        ("/v1/authorities", {"code": "X", "name": "X", "public_key": "AAAA"}, "public_key"),
        ("/v1/authorities", {"code": "STTTT-GL", "name": "again"}, "taken"),
        ("/v1/authorities", {"code": "has space", "name": "X"}, "code"),
        ("/v1/authorities", {"code": "X", "name": "X", "approvals_urgent": 0}, "approvals"),
        ("/v1/users", {"username": "admin-user", "name": "A", "role": "auditor"}, "taken"),
        ("/v1/users", {"username": "b", "name": "B", "role": "submitter"}, "authority"),
        ("/v1/users", {"username": "b", "name": "B", "role": "chief"}, "role"),
        ("/v1/users", {"username": "b c", "name": "B", "role": "auditor"}, "username"),
    ],
)
def test_invalid_input_is_refused_with_422_and_nothing_changes(
    client: TestClient,
    callers: Callers,
    seeded: Engine,
    path: str,
    body: dict[str, object],
    shown: str,
) -> None:
    before = _everything(seeded)
    answer = client.post(path, headers=callers.admin, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_input"
    assert shown in answer.json()["error"]["message"]
    assert _everything(seeded) == before


def test_an_invalid_patch_changes_nothing_and_unknown_names_are_404(
    client: TestClient, callers: Callers, seeded: Engine
) -> None:
    before = _everything(seeded)
    bad = client.patch(
        "/v1/authorities/STTTT-GL", headers=callers.admin, json={"areas": ["64", "999"]}
    )
    assert bad.status_code == 422
    unknown_field = client.patch("/v1/authorities/STTTT-GL", headers=callers.admin, json={"x": 1})
    assert unknown_field.status_code == 422
    assert client.get("/v1/authorities/NONE", headers=callers.admin).status_code == 404
    assert client.post("/v1/users/nobody/tokens", headers=callers.admin).status_code == 404
    assert _everything(seeded) == before


# --- the commands ---------------------------------------------------------------------------


@pytest.fixture
def cli(settings_env: None, seeded: Engine) -> CliRunner:
    return CliRunner()


def _run(runner: CliRunner, command: str, code: int = 0) -> str:
    """Run `dispatcher <command>`; its stdout on success, its stderr otherwise."""
    from dispatcher.cli import app

    result = runner.invoke(app, shlex.split(command))
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else result.stderr


def test_the_commands_create_an_authority_and_a_user_and_revoke_the_token(
    cli: CliRunner, seeded: Engine, tmp_path: Path
) -> None:
    public_key = _run(cli, f"keygen --out {tmp_path / 'key.pem'}").strip()
    (tmp_path / "key.pub").write_text(public_key + "\n")
    _run(
        cli,
        "authorities create STTTT-GL 'Sở TT&TT Gia Lai' --area 64 --approvals 2 "
        f"--test-number 0912345678 --public-key-file {tmp_path / 'key.pub'}",
    )
    _run(cli, "authorities update STTTT-GL --urgent-approvals 2")
    listed = _run(cli, "authorities list")
    assert "STTTT-GL" in listed and "approvals=2/urgent:2" in listed and "key=yes" in listed

    refused = "users create an --name 'Nguyễn Văn An' --role submitter --authority STTTT-GL"
    assert "authority_admin" in _run(cli, refused, code=1)
    steward = _run(cli, "users create mai --name Mai --role authority_admin --authority STTTT-GL")
    (tmp_path / "mai.token").write_text(steward)
    token = _run(cli, f"{refused} --ttl 30 --as-token-file {tmp_path / 'mai.token'}").strip()
    assert "\n" not in token
    with Session(seeded) as session:
        assert tokens.user_by_token(session=session, token=token) is not None
        authority = people.authority_by_code(session=session, code="STTTT-GL")
        assert authority.public_key == public_key
        assert authority.test_numbers == ["+84912345678"]
    assert "an  submitter  STTTT-GL  tokens=1" in _run(cli, "users list")

    # The command line has an operator admin's rights: not the authority's own.
    assert "authority_admin" in _run(cli, "users token an", code=1)
    assert "public_key" in _run(
        cli, f"authorities update STTTT-GL --public-key-file {tmp_path / 'key.pub'}", code=1
    )
    _run(cli, "users revoke an")
    with Session(seeded) as session:
        assert tokens.user_by_token(session=session, token=token) is None
    assert "tokens=0" in _run(cli, "users list --authority STTTT-GL")
    log = _audit_log(seeded)
    assert [e.action for e in log] == [
        "authority.create",
        "authority.update",
        "user.create",
        "token.issue",
        "user.create",
        "token.issue",
        "token.revoke",
    ]
    assert [e.actor.split(":")[0] for e in log] == ["cli"] * 4 + ["user"] * 2 + ["cli"]
    assert token not in _everything(seeded)


def test_refused_commands_say_why_in_one_line_and_exit_1(cli: CliRunner, seeded: Engine) -> None:
    message = _run(cli, "authorities create X X --area 999", code=1)
    assert message == "error: areas: unknown area codes '999'\n"
    message = _run(cli, "users create b --name B --role approver", code=1)
    assert message == "error: a user with role approver belongs to an authority\n"
    assert _run(cli, "users token nobody", code=1) == "error: no user 'nobody'\n"
    with Session(seeded) as session:
        assert session.exec(select(Authority)).all() == []
        assert session.exec(select(User)).all() == []


# --- approval keys --------------------------------------------------------------------------


def test_keygen_and_sign_make_a_signature_valid_for_that_campaign_only(tmp_path: Path) -> None:
    runner = CliRunner()
    key = tmp_path / "authority.pem"
    public_key = _run(runner, f"keygen --out {key}").strip()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    approval.parse_public_key(public_key)
    command = f"sign --key {key} --campaign 7 --hash {DIGEST} --approver binh.tran"
    signature = _run(runner, command).strip()

    def valid(campaign_id: int, digest: str, approver: str = "binh.tran") -> bool:
        return approval.signature_is_valid(
            public_key=public_key,
            campaign_id=campaign_id,
            digest=digest,
            approver=approver,
            signature=signature,
        )

    assert valid(7, DIGEST)
    assert not valid(8, DIGEST)
    assert not valid(7, "cd" * 32)
    assert not valid(7, DIGEST, "an.nguyen")  # it counts for the approver it names only
    assert "exists" in _run(runner, f"keygen --out {key}", code=1)
    bad_hash = f"sign --key {key} --campaign 7 --hash x --approver binh.tran"
    assert "content_hash" in _run(runner, bad_hash, code=1)
