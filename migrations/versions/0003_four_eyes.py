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


# Plain ADD COLUMN and CREATE INDEX, which SQLite does in place: a batch operation would copy
# and drop tables that others refer to, which SQLite's foreign keys refuse once there is data.


def upgrade() -> None:
    op.add_column(
        "campaign",
        sa.Column("approved_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    )
    op.execute(
        "UPDATE campaign SET approved_hash = content_hash "
        "WHERE status IN ('approved', 'scheduled', 'sending', 'paused')"
    )
    op.create_index("uq_message_campaign_msisdn", "message", ["campaign_id", "msisdn"], unique=True)
    op.add_column("api_token", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_token", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "authority",
        sa.Column("off_registry_lists", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("authority", "off_registry_lists")  # SQLite 3.35 or later drops in place
    op.drop_column("api_token", "last_used_at")
    op.drop_column("api_token", "expires_at")
    op.drop_index("uq_message_campaign_msisdn", table_name="message")
    op.drop_column("campaign", "approved_hash")
