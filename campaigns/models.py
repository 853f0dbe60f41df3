"""Tables of the campaign domain: authorities, people, areas, subscribers, campaigns, messages."""

from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

# Stable constraint names on every database, so migrations can name what they change.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL; SQLite only auto-increments a plain INTEGER primary key.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Role(StrEnum):
    SUBMITTER = "submitter"
    APPROVER = "approver"
    OPERATOR = "operator"
    AUDITOR = "auditor"
    ADMIN = "admin"


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    COMPLETED = "completed"
    REJECTED = "rejected"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    EXPIRED = "expired"
    REJECTED = "rejected"
    FAILED = "failed"
    UNKNOWN = "unknown"
    CANCELLED = "cancelled"


PENDING_MESSAGE_STATUSES = (MessageStatus.QUEUED, MessageStatus.SUBMITTED)


class Authority(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class User(SQLModel, table=True):
    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    authority_id: int | None = Field(default=None, foreign_key="authority.id", index=True)
    name: str = Field(max_length=200)
    role: Role = Field(sa_type=sa.String(16))
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class Area(SQLModel, table=True):
    code: str = Field(primary_key=True, max_length=16)
    name: str = Field(max_length=200)
    level: str = Field(max_length=32)
    parent_code: str | None = Field(default=None, max_length=16)


class Subscriber(SQLModel, table=True):
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    msisdn: str = Field(max_length=16, unique=True)
    area_code: str = Field(max_length=16, index=True)
    status: str = Field(default="active", max_length=16)


class CampaignBase(SQLModel):
    title: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=1600)
    sender: str = Field(min_length=1, max_length=11)
    target_areas: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Campaign(CampaignBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    authority_id: int = Field(foreign_key="authority.id", index=True)
    status: CampaignStatus = Field(default=CampaignStatus.DRAFT, sa_type=sa.String(16))
    created_by_id: int = Field(foreign_key="app_user.id")
    approved_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    batches: int = 0
    recipients: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    approved_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    completed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class Message(SQLModel, table=True):
    __table_args__ = (
        sa.Index("ix_message_campaign_batch", "campaign_id", "batch_no"),
        sa.Index("ix_message_campaign_status", "campaign_id", "status"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    campaign_id: int = Field(foreign_key="campaign.id")
    batch_no: int
    msisdn: str = Field(max_length=16)
    area_code: str = Field(max_length=16)
    status: MessageStatus = Field(default=MessageStatus.QUEUED, sa_type=sa.String(16))
    smsc_message_id: str | None = Field(default=None, max_length=64, index=True)
    error_code: int | None = None
    submitted_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    done_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
