"""The campaign lifecycle as the system drives it: start sending, complete, expire."""

from datetime import datetime

from sqlmodel import Session, col, func, select

from campaigns import content, targeting
from campaigns.models import (
    PENDING_MESSAGE_STATUSES,
    Campaign,
    CampaignStatus,
    Message,
    MessageStatus,
    utcnow,
)
from campaigns.policy import Policy
from campaigns.service import end_queued, record_event, sent_text

S = CampaignStatus
SYSTEM = "system"


def start_sending(
    *, session: Session, campaign: Campaign, batch_size: int, policy: Policy
) -> Campaign:
    """Expand an approved campaign into one queued message per recipient, in batches."""
    if campaign.status not in (S.APPROVED, S.SCHEDULED):
        return campaign
    parts = content.analyse(sent_text(campaign, policy)).segments
    campaign.recipients = targeting.insert_messages(
        session=session, campaign=campaign, batch_size=batch_size, parts=parts
    )
    campaign.batches = -(-campaign.recipients // batch_size)
    campaign.status = S.SENDING
    session.add(campaign)
    session.flush()
    record_event(
        session, SYSTEM, "campaign.sending", campaign, recipients=campaign.recipients, parts=parts
    )
    return campaign


def complete_if_done(*, session: Session, campaign: Campaign) -> bool:
    """Mark a sending campaign completed once none of its messages is pending."""
    pending = session.exec(
        select(Message.id)
        .where(Message.campaign_id == campaign.id)
        .where(col(Message.status).in_(PENDING_MESSAGE_STATUSES))
        .limit(1)
    ).first()
    if pending is not None:
        return False
    campaign.status = S.COMPLETED
    campaign.completed_at = utcnow()
    session.add(campaign)
    session.flush()
    record_event(
        session,
        SYSTEM,
        "campaign.completed",
        campaign,
        by_status=count_by_status(session=session, campaign_id=campaign.id or 0),
    )
    return True


def expire_if_due(*, session: Session, campaign: Campaign, now: datetime) -> bool:
    """Past its expiry a campaign sends nothing more: its queued messages end `expired`."""
    if campaign.send_expiry is None or campaign.send_expiry > now:
        return False
    if campaign.status not in (S.APPROVED, S.SCHEDULED, S.SENDING, S.PAUSED):
        return False
    expired = end_queued(session=session, campaign=campaign, status=MessageStatus.EXPIRED)
    campaign.status = S.EXPIRED
    campaign.completed_at = now
    session.add(campaign)
    session.flush()
    record_event(session, SYSTEM, "campaign.expired", campaign, messages_expired=expired)
    return True


def parts_per_message(*, session: Session, campaign_id: int) -> int:
    """How many SMS each of the campaign's messages takes (0 before expansion)."""
    parts = session.exec(
        select(Message.parts).where(Message.campaign_id == campaign_id).limit(1)
    ).first()
    return parts or 0


def count_by_status(*, session: Session, campaign_id: int) -> dict[str, int]:
    """How many of the campaign's messages are in each status."""
    rows = session.exec(
        select(Message.status, func.count())
        .where(Message.campaign_id == campaign_id)
        .group_by(Message.status)
    ).all()
    return {str(status): count for status, count in rows}
