"""sending engine: claims by worker, attempts, doubt, workers, indexes for claims and housekeeping

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 23:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lost", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker")),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("last_status", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("doubt", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )
        batch_op.drop_index("ix_message_campaign_status")
        batch_op.create_index(
            "ix_message_campaign_status_id", ["campaign_id", "status", "id"], unique=False
        )
        batch_op.create_index(
            "ix_message_status_submitted_at", ["status", "submitted_at"], unique=False
        )
        batch_op.create_index(
            "ix_message_claimed_by_status", ["claimed_by", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_claimed_by_status")
        batch_op.drop_index("ix_message_status_submitted_at")
        batch_op.drop_index("ix_message_campaign_status_id")
        batch_op.create_index("ix_message_campaign_status", ["campaign_id", "status"], unique=False)
        batch_op.drop_column("doubt")
        batch_op.drop_column("last_status")
        batch_op.drop_column("attempts")
        batch_op.drop_column("claimed_by")
    op.drop_table("worker")
