"""reports: indexes that read a campaign's report by range scans, without sorting its messages

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 15:00:00

The delay index is on an expression (seconds from submit to receipt), written as
`campaigns.reports.delay_expression` writes it, so that the planner matches the two.
A later migration that rebuilds the message table on SQLite (batch "move and copy") must
create it again: Alembic does not reflect expression indexes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_POSTGRES_DELAY = "(date_part('epoch', done_at - submitted_at))"
_SQLITE_DELAY = "((julianday(done_at) - julianday(submitted_at)) * 86400.0)"


def upgrade() -> None:
    # Ended messages only: the claims and answers before a message ends never touch it.
    final = sa.text("status NOT IN ('queued', 'submitting', 'submitted')")
    op.create_index(
        "ix_message_final",
        "message",
        ["campaign_id", "area_code", "status", "last_status", "error_code"],
        postgresql_where=final,
        sqlite_where=final,
    )
    op.create_index("ix_message_campaign_area", "message", ["campaign_id", "area_code"])
    op.create_index("ix_message_campaign_submitted", "message", ["campaign_id", "submitted_at"])
    # Delivered messages only: the claims and answers that change a message's status before
    # its delivery never touch these two.
    delivered = sa.text("status = 'delivered'")
    op.create_index(
        "ix_message_delivered_done",
        "message",
        ["campaign_id", "done_at"],
        postgresql_where=delivered,
        sqlite_where=delivered,
    )
    if op.get_bind().dialect.name == "postgresql":
        # The columns of the expression ride along, so the scan never visits the table.
        op.execute(
            f"CREATE INDEX ix_message_delivered_delay ON message (campaign_id, {_POSTGRES_DELAY})"
            " INCLUDE (submitted_at, done_at) WHERE status = 'delivered'"
        )
    else:
        op.create_index(
            "ix_message_delivered_delay",
            "message",
            ["campaign_id", sa.text(_SQLITE_DELAY)],
            sqlite_where=delivered,
        )


def downgrade() -> None:
    op.drop_index("ix_message_delivered_delay", table_name="message")
    op.drop_index("ix_message_delivered_done", table_name="message")
    op.drop_index("ix_message_campaign_submitted", table_name="message")
    op.drop_index("ix_message_campaign_area", table_name="message")
    op.drop_index("ix_message_final", table_name="message")
