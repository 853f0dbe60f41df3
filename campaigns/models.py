"""Tables of the campaign domain: authorities, people, areas, subscribers, campaigns, messages."""

from datetime import UTC, date, datetime
from enum import StrEnum

import sqlalchemy as sa
from pydantic import field_validator
from sqlmodel import JSON, Column, Field, SQLModel

# Stable constraint names on every database, so migrations can name what they change.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

EARLIEST_YEAR = 2000
LATEST_YEAR = 2100
"""Dates and times a campaign may name: anything outside is a typing error, not a plan."""

# 64-bit ids on PostgreSQL; SQLite only auto-increments a plain INTEGER primary key.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: use timezone-aware UTC")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Role(StrEnum):
    SUBMITTER = "submitter"
    APPROVER = "approver"
    OPERATOR = "operator"
    AUDITOR = "auditor"
    ADMIN = "admin"
    AUTHORITY_ADMIN = "authority_admin"  # manages its authority's people, tokens and key


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


class Priority(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"


class Mode(StrEnum):
    LIVE = "live"
    EXERCISE = "exercise"


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SUBMITTING = "submitting"  # in one worker's bind: about to be written or awaiting answer
    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    EXPIRED = "expired"
    REJECTED = "rejected"
    FAILED = "failed"
    UNKNOWN = "unknown"
    CANCELLED = "cancelled"


PENDING_MESSAGE_STATUSES = (
    MessageStatus.QUEUED,
    MessageStatus.SUBMITTING,
    MessageStatus.SUBMITTED,
)


class Authority(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=200)
    areas: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    approvals_normal: int = 1
    approvals_urgent: int = 1
    test_numbers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    public_key: str | None = Field(default=None, max_length=100)  # Ed25519, base64
    # Recipient lists may hold numbers outside the registry and the authority's areas.
    off_registry_lists: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    # Four eyes on the operator side (`campaigns.custody`), by the audit log's actor labels:
    # who registered it, who created its first authority_admin, and the second operator admin
    # who vouched for both; unconfirmed, it may not submit or approve campaigns.
    created_by: str | None = Field(default=None, max_length=100)
    bootstrapped_by: str | None = Field(default=None, max_length=100)
    confirmed_by: str | None = Field(default=None, max_length=100)
    confirmed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class User(SQLModel, table=True):
    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    authority_id: int | None = Field(default=None, foreign_key="authority.id", index=True)
    username: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    role: Role = Field(sa_type=sa.String(16))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UtcDateTime)  # to the minute


class Area(SQLModel, table=True):
    """An administrative unit as it was between two dates (GSO codes)."""

    __table_args__ = (sa.UniqueConstraint("code", "valid_from"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=16, index=True)
    name: str = Field(max_length=200)
    level: str = Field(max_length=32)
    parent_code: str | None = Field(default=None, max_length=16)
    valid_from: date
    valid_to: date | None = None


class AreaSuccession(SQLModel, table=True):
    """A unit that merged into (or became part of) another on a date."""

    __tablename__ = "area_succession"

    id: int | None = Field(default=None, primary_key=True)
    from_code: str = Field(max_length=16, index=True)
    to_code: str = Field(max_length=16, index=True)
    effective: date


class Subscriber(SQLModel, table=True):
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    msisdn: str = Field(max_length=16, unique=True)
    area_code: str = Field(max_length=16, index=True)
    status: str = Field(default="active", max_length=16)


class OptOut(SQLModel, table=True):
    __tablename__ = "opt_out"

    msisdn: str = Field(primary_key=True, max_length=16)
    source: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class RecipientList(SQLModel, table=True):
    __tablename__ = "recipient_list"

    id: int | None = Field(default=None, primary_key=True)
    authority_id: int = Field(foreign_key="authority.id", index=True)
    name: str = Field(max_length=200)
    created_by_id: int = Field(foreign_key="app_user.id")
    accepted: int = 0
    rejected: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class RecipientListEntry(SQLModel, table=True):
    __tablename__ = "recipient_list_entry"

    list_id: int = Field(foreign_key="recipient_list.id", primary_key=True)
    msisdn: str = Field(max_length=16, primary_key=True)


class RecipientListRejection(SQLModel, table=True):
    __tablename__ = "recipient_list_rejection"

    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="recipient_list.id", index=True)
    line: int
    raw: str = Field(max_length=200)
    reason: str = Field(max_length=32)


class CampaignBase(SQLModel):
    title: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=1600)
    sender: str = Field(min_length=1, max_length=11)
    target_areas: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    recipient_list_id: int | None = Field(default=None, foreign_key="recipient_list.id")
    document_number: str = Field(default="", max_length=64)
    document_date: date | None = None
    document_issuer: str = Field(default="", max_length=200)
    priority: Priority = Field(default=Priority.NORMAL, sa_type=sa.String(16))
    mode: Mode = Field(default=Mode.LIVE, sa_type=sa.String(16))
    send_start: datetime | None = Field(default=None, sa_type=UtcDateTime)
    send_expiry: datetime | None = Field(default=None, sa_type=UtcDateTime)
    unaccented: bool = False

    @field_validator("send_start", "send_expiry")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a timezone, e.g. 2020-02-02T08:00:00+07:00")
        if value is not None and not EARLIEST_YEAR <= value.astimezone(UTC).year <= LATEST_YEAR:
            raise ValueError(f"must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
        return value

    @field_validator("document_date")
    @classmethod
    def _sane_date(cls, value: date | None) -> date | None:
        if value is not None and not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
            raise ValueError(f"must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
        return value


class Campaign(CampaignBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    authority_id: int = Field(foreign_key="authority.id", index=True)
    status: CampaignStatus = Field(default=CampaignStatus.DRAFT, sa_type=sa.String(16))
    content_hash: str = Field(default="", max_length=64)
    created_by_id: int = Field(foreign_key="app_user.id")
    reject_reason: str | None = Field(default=None, max_length=1000)
    generation: int = 0  # bumped by every edit after submission and by resume
    # The content hash the approvals made it approved at; nothing else is ever sent.
    approved_hash: str | None = Field(default=None, max_length=64)
    batches: int = 0
    recipients: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    submitted_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    approved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class Approval(SQLModel, table=True):
    """One approver's approval of one exact content of a campaign."""

    __table_args__ = (sa.UniqueConstraint("campaign_id", "approver_id", "content_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    approver_id: int = Field(foreign_key="app_user.id")
    content_hash: str = Field(max_length=64)
    signature: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class Message(SQLModel, table=True):
    """One recipient of one campaign."""

    __table_args__ = (
        sa.Index("ix_message_campaign_batch", "campaign_id", "batch_no"),
        # Claims take a campaign's queued messages in id order; completion asks for pending ones.
        sa.Index("ix_message_campaign_status_id", "campaign_id", "status", "id"),
        # The receipt timeout looks for messages submitted before a cutoff, in every campaign;
        # a dead worker's claims are looked for by worker. Partial indexes, so that they hold
        # only the messages in flight and a message enters and leaves each once: on SQLite the
        # queries name the status as a literal (a bound parameter cannot select such an index).
        sa.Index(
            "ix_message_submitted_at",
            "submitted_at",
            sqlite_where=sa.text("status = 'submitted'"),
            postgresql_where=sa.text("status = 'submitted'"),
        ),
        sa.Index(
            "ix_message_submitting",
            "claimed_by",
            sqlite_where=sa.text("status = 'submitting'"),
            postgresql_where=sa.text("status = 'submitting'"),
        ),
        # The report's count of late receipts: the few messages a late receipt corrected.
        sa.Index(
            "ix_message_late_receipt",
            "campaign_id",
            sqlite_where=sa.text("late_receipt"),
            postgresql_where=sa.text("late_receipt"),
        ),
        # The last line of defence against a second copy: one message per number per campaign.
        sa.Index("uq_message_campaign_msisdn", "campaign_id", "msisdn", unique=True),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    campaign_id: int = Field(foreign_key="campaign.id")
    batch_no: int
    msisdn: str = Field(max_length=16)
    area_code: str | None = Field(default=None, max_length=16)
    parts: int = 1
    status: MessageStatus = Field(default=MessageStatus.QUEUED, sa_type=sa.String(16))
    error_code: int | None = None
    submitted_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    done_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    claimed_by: int | None = None  # the worker whose bind holds it while `submitting`
    attempts: int = 0  # submit_sm answered for it (the most for one part)
    last_status: int | None = None  # the SMSC's last command_status for it
    doubt: str | None = Field(default=None, max_length=16)  # why it may not have arrived, or twice
    late_receipt: bool = False  # `unknown` at the receipt timeout, then a receipt told the truth


class Worker(SQLModel, table=True):
    """One worker process, alive while its heartbeat is fresh."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)  # host:pid
    started_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    stopped_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    lost: bool = False  # declared dead by the housekeeping leader, not stopped by itself


class MessagePart(SQLModel, table=True):
    """One submit_sm of a message: its SMSC message id and what the network said of it."""

    __tablename__ = "message_part"
    __table_args__ = (
        # Receipts are matched on the id's key within the account that handed it out.
        sa.Index("ix_message_part_account_key", "account", "smsc_key"),
        # An answer stored again (a commit whose acknowledgement was lost) adds nothing.
        sa.Index("uq_message_part_id", "message_id", "part_no", "smsc_message_id", unique=True),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    # Looked up by message along uq_message_part_id, whose first column it is.
    message_id: int = Field(sa_column=Column(BigId, sa.ForeignKey("message.id")))
    part_no: int
    smsc_message_id: str = Field(max_length=64)  # as the SMSC wrote it
    account: str = Field(default="", max_length=32)  # the SMSC account that handed it out
    smsc_key: str = Field(default="", max_length=64)  # the id's comparable form (smsc_ids.key)
    status: MessageStatus = Field(default=MessageStatus.SUBMITTED, sa_type=sa.String(16))
    error_code: int | None = None  # the receipt's err:
    network_error: int | None = None  # the receipt's network_error_code TLV (type << 16 | code)
    receipt_state: str | None = Field(default=None, max_length=16)  # the last state reported
    done_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class PendingReceipt(SQLModel, table=True):
    """A delivery receipt stored before it matched a message: acknowledged, matched later."""

    __tablename__ = "pending_receipt"
    __table_args__ = (sa.Index("ix_pending_receipt_expired_id", "expired", "id"),)

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    account: str = Field(max_length=32)
    smsc_message_id: str = Field(max_length=64)
    state: str = Field(max_length=16)  # as reported: DELIVRD, ENROUTE…
    error_code: int | None = None
    network_error: int | None = None
    received_at: datetime = Field(sa_type=UtcDateTime)
    reason: str = Field(default="unmatched", max_length=16)  # unmatched, ambiguous, ids_unknown
    expired: bool = False  # given up on after DISPATCHER_UNMATCHED_RECEIPT_TTL


class AuditEntry(SQLModel, table=True):
    """One link of the append-only, hash-chained audit log."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    at: datetime = Field(sa_type=UtcDateTime)
    actor: str = Field(max_length=100)
    action: str = Field(max_length=64, index=True)
    subject: str = Field(max_length=100)
    campaign_id: int | None = Field(default=None, index=True)
    details: str = Field(default="{}", sa_type=sa.Text())
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)
