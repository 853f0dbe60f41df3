"""delivery truth: ids compared per account on a key, receipts stored before they match, late ones

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


# Plain ADD COLUMN and CREATE INDEX, which SQLite does in place (a batch copy of `message`
# would drop a table that others refer to).
def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.add_column(
        "message_part",
        sa.Column("account", text(length=32), nullable=False, server_default=""),
    )
    op.add_column(
        "message_part",
        sa.Column("smsc_key", text(length=64), nullable=False, server_default=""),
    )
    op.add_column("message_part", sa.Column("network_error", sa.Integer(), nullable=True))
    op.add_column("message_part", sa.Column("receipt_state", text(length=16), nullable=True))
    # Parts stored before this revision: their ids become keys of the unnamed account.
    op.execute("UPDATE message_part SET smsc_key = LOWER(smsc_message_id)")
    op.create_index("ix_message_part_account_key", "message_part", ["account", "smsc_key"])
    op.create_index(
        "uq_message_part_id",
        "message_part",
        ["message_id", "part_no", "smsc_message_id"],
        unique=True,
    )
    op.add_column(
        "message",
        sa.Column("late_receipt", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    # The report counts a campaign's late receipts along this index: few rows, set rarely.
    op.create_index(
        "ix_message_late_receipt",
        "message",
        ["campaign_id"],
        sqlite_where=sa.text("late_receipt"),
        postgresql_where=sa.text("late_receipt"),
    )
    op.create_table(
        "pending_receipt",
        sa.Column("id", BigId, nullable=False),
        sa.Column("account", text(length=32), nullable=False),
        sa.Column("smsc_message_id", text(length=64), nullable=False),
        sa.Column("state", text(length=16), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("network_error", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", text(length=16), nullable=False),
        sa.Column("expired", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_receipt")),
    )
    op.create_index(
        "ix_pending_receipt_expired_id", "pending_receipt", ["expired", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_pending_receipt_expired_id", table_name="pending_receipt")
    op.drop_table("pending_receipt")
    op.drop_index("ix_message_late_receipt", table_name="message")
    op.drop_column("message", "late_receipt")  # SQLite 3.35 or later drops in place
    op.drop_index("uq_message_part_id", table_name="message_part")
    op.drop_index("ix_message_part_account_key", table_name="message_part")
    op.drop_column("message_part", "receipt_state")
    op.drop_column("message_part", "network_error")
    op.drop_column("message_part", "smsc_key")
    op.drop_column("message_part", "account")
