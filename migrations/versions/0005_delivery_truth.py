"""delivery truth: ids compared per account on a key, receipts stored before they match, late ones

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-04 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("message_part", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "account",
                sqlmodel.sql.sqltypes.AutoString(length=32),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column(
                "smsc_key",
                sqlmodel.sql.sqltypes.AutoString(length=64),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(sa.Column("network_error", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("receipt_state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )
        batch_op.create_index("ix_message_part_account_key", ["account", "smsc_key"], unique=False)
        batch_op.create_unique_constraint(
            "uq_message_part_id", ["message_id", "part_no", "smsc_message_id"]
        )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("late_receipt", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "pending_receipt",
        sa.Column("id", BigId, nullable=False),
        sa.Column("account", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("smsc_message_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("network_error", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("expired", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_receipt")),
    )
    op.create_index(
        "ix_pending_receipt_expired_id", "pending_receipt", ["expired", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_pending_receipt_expired_id", table_name="pending_receipt")
    op.drop_table("pending_receipt")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("late_receipt")
    with op.batch_alter_table("message_part", schema=None) as batch_op:
        batch_op.drop_constraint("uq_message_part_id", type_="unique")
        batch_op.drop_index("ix_message_part_account_key")
        batch_op.drop_column("receipt_state")
        batch_op.drop_column("network_error")
        batch_op.drop_column("smsc_key")
        batch_op.drop_column("account")
