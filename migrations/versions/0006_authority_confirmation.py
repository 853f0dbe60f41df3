"""four eyes on the operator side: who registered an authority, who bootstrapped its first
authority_admin, and the second operator admin who confirmed it

Existing authorities come out unconfirmed: until a second operator admin confirms each one
(`POST /v1/authorities/{code}/confirm` or `dispatcher authorities confirm CODE`), their
campaigns cannot be submitted or approved. Who registered them and who created their first
authority_admin is read back from the audit log, so that the confirmation rule holds for them
too.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 16:10:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("created_by", "bootstrapped_by", "confirmed_by")

# Plain ADD COLUMN, which SQLite does in place: a batch operation would copy and drop a table
# that others refer to, which SQLite's foreign keys refuse once there is data.


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column(
            "authority",
            sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        )
    op.add_column("authority", sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))
    _backfill_from_audit_log()


def _backfill_from_audit_log() -> None:
    connection = op.get_bind()
    entries = connection.execute(
        sa.text(
            "SELECT actor, action, subject, details FROM audit_entry "
            "WHERE action IN ('authority.create', 'user.create') ORDER BY id"
        )
    )
    created: dict[str, str] = {}
    bootstrapped: dict[str, str] = {}
    for actor, action, subject, details in entries:
        if action == "authority.create":
            created.setdefault(subject.removeprefix("authority:"), actor)
            continue
        described = json.loads(details)
        if described.get("role") == "authority_admin" and described.get("authority"):
            bootstrapped.setdefault(described["authority"], actor)
    for column, found in (("created_by", created), ("bootstrapped_by", bootstrapped)):
        for code, actor in found.items():
            connection.execute(
                sa.text(f"UPDATE authority SET {column} = :actor WHERE code = :code"),
                {"actor": actor, "code": code},
            )


def downgrade() -> None:
    op.drop_column("authority", "confirmed_at")  # SQLite 3.35 or later drops in place
    for name in reversed(COLUMNS):
        op.drop_column("authority", name)
