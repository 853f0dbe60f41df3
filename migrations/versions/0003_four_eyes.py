"""four eyes under concurrency: approved hash, one message per number, token expiry and use,
authorities granted off-registry lists

Campaigns already approved keep sending: their approved hash is their content hash. The unique
(campaign_id, msisdn) cannot be added to a database that already holds a number twice in one
campaign (the race this revision closes); find such rows with
`SELECT campaign_id, msisdn FROM message GROUP BY campaign_id, msisdn HAVING COUNT(*) > 1`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("approved_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
    op.execute(
        "UPDATE campaign SET approved_hash = content_hash "
        "WHERE status IN ('approved', 'scheduled', 'sending', 'paused')"
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_unique_constraint(op.f("uq_message_campaign_id"), ["campaign_id", "msisdn"])
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("authority", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("off_registry_lists", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("authority", schema=None) as batch_op:
        batch_op.drop_column("off_registry_lists")
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("expires_at")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_message_campaign_id"), type_="unique")
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.drop_column("approved_hash")
