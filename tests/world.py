"""A small world for API tests: two authorities and a person of every role."""

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlmodel import Session, select

from campaigns import areas
from campaigns.models import Authority, Role, User
from campaigns.people import confirm_authority, create_authority, create_user
from dispatcher.db import session_scope

TEST_NUMBERS = ["+84912000001", "+84912000002", "+84912000003"]
SECOND_ADMIN = "cli:second-admin"  # the operator admin who confirms the tests' authorities


@dataclass
class World:
    """Bearer headers by name, and the authorities' ids."""

    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    authority_ids: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> dict[str, str]:
        return self.headers[name]


def build(engine: Engine) -> World:
    """Seed areas, authority A (Gia Lai, three test numbers) and B (Pleiku only), and people."""
    world = World()
    with session_scope(engine) as session:
        areas.seed(session)
        a = create_authority(
            session=session, code="STTTT-GL", name="Sở TT&TT Gia Lai", areas=["64"]
        )
        a.test_numbers = TEST_NUMBERS
        b = create_authority(
            session=session, code="SYT-PK", name="Phòng Y tế Pleiku", areas=["622"]
        )
        people: list[tuple[str, Role, Authority | None]] = [
            ("submitter", Role.SUBMITTER, a),
            ("submitter2", Role.SUBMITTER, a),
            ("approver", Role.APPROVER, a),
            ("approver2", Role.APPROVER, a),
            ("other_submitter", Role.SUBMITTER, b),
            ("other_approver", Role.APPROVER, b),
            ("authadmin", Role.AUTHORITY_ADMIN, a),
            ("other_authadmin", Role.AUTHORITY_ADMIN, b),
            ("operator", Role.OPERATOR, None),
            ("auditor", Role.AUDITOR, None),
            ("admin", Role.ADMIN, None),
        ]
        for name, role, authority in people:
            _, token = create_user(
                session=session, username=name, name=name, role=role, authority=authority
            )
            world.headers[name] = {"Authorization": f"Bearer {token}"}
        session.add(a)
        confirmed(session, a)
        confirmed(session, b)
        assert a.id is not None and b.id is not None
        world.authority_ids = {"a": a.id, "b": b.id}
    return world


def confirmed(session: Session, authority: Authority) -> Authority:
    """As a second operator admin would: confirm it, first giving it an authority_admin if none."""
    admins = session.exec(
        select(User).where(User.authority_id == authority.id, User.role == Role.AUTHORITY_ADMIN)
    ).first()
    if admins is None:
        create_user(
            session=session,
            username=f"{authority.code}-admin",
            name=f"{authority.name} admin",
            role=Role.AUTHORITY_ADMIN,
            authority=authority,
        )
    return confirm_authority(session=session, authority=authority, actor=SECOND_ADMIN)
