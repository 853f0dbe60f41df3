"""fewer index writes per message: partial indexes for the messages in flight, and no part
index that another one already covers

Every message changes status three times (claimed, submitted, final), and every index that
holds its status is written each time. The receipt timeout and a dead worker's recovery look
only at messages in flight: their indexes now hold those alone, so a message enters and leaves
each once and they stay small. message_part's index on message_id is the first column of
uq_message_part_id, and nothing looks parts up by smsc_message_id (receipts are matched on
account and smsc_key).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 18:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_message_status_submitted_at", table_name="message")
    op.drop_index("ix_message_claimed_by_status", table_name="message")
    op.create_index(
        "ix_message_submitted_at",
        "message",
        ["submitted_at"],
        sqlite_where=sa.text("status = 'submitted'"),
        postgresql_where=sa.text("status = 'submitted'"),
    )
    op.create_index(
        "ix_message_submitting",
        "message",
        ["claimed_by"],
        sqlite_where=sa.text("status = 'submitting'"),
        postgresql_where=sa.text("status = 'submitting'"),
    )
    op.drop_index("ix_message_part_message_id", table_name="message_part")
    op.drop_index("ix_message_part_smsc_message_id", table_name="message_part")


def downgrade() -> None:
    op.create_index("ix_message_part_smsc_message_id", "message_part", ["smsc_message_id"])
    op.create_index("ix_message_part_message_id", "message_part", ["message_id"])
    op.drop_index("ix_message_submitting", table_name="message")
    op.drop_index("ix_message_submitted_at", table_name="message")
    op.create_index("ix_message_claimed_by_status", "message", ["claimed_by", "status"])
    op.create_index("ix_message_status_submitted_at", "message", ["status", "submitted_at"])
