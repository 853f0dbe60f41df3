"""The campaign lifecycle as the system drives it: start sending, complete, expire.

Like the transitions people make, each one locks the campaign row and checks its state again
on what it read under the lock (see `service.locked`).
"""

from datetime import datetime

from sqlmodel import Session, col, func, select

from campaigns import approval, content, targeting
from campaigns.errors import InvalidState
from campaigns.models import (
    PENDING_MESSAGE_STATUSES,
    Campaign,
    CampaignStatus,
    Message,
    MessageStatus,
    utcnow,
)
from campaigns.policy import Policy
from campaigns.service import end_queued, locked, record_event, sent_text

S = CampaignStatus
SYSTEM = "system"


class Superseded(InvalidState):
    """The campaign changed while it was being expanded: the expansion must be rolled back."""


def start_sending(
    *, session: Session, campaign: Campaign, generation: int, batch_size: int, policy: Policy
) -> int:
    """Expand an approved campaign into one queued message per recipient; return how many.

    0 when it is no longer due at `generation` with its approved content, or already expanded.
    The long INSERT runs without the campaign's lock, so an edit or a cancel is not held up;
    the lock is taken before the campaign becomes `sending`, and if anything changed meanwhile
    `Superseded` is raised for the caller to roll the messages back.
    """
    if not _due(campaign, generation) or _expanded(session, campaign):
        return 0
    parts = content.analyse(sent_text(campaign, policy)).segments
    recipients = targeting.insert_messages(
        session=session, campaign=campaign, batch_size=batch_size, parts=parts
    )
    locked(session=session, campaign=campaign)
    if not _due(campaign, generation):
        raise Superseded(f"campaign {campaign.id} is {campaign.status} at {campaign.generation}")
    campaign.recipients = recipients
    campaign.batches = -(-recipients // batch_size)
    campaign.status = S.SENDING
    session.add(campaign)
    session.flush()
    record_event(session, SYSTEM, "campaign.sending", campaign, recipients=recipients, parts=parts)
    return recipients


def _due(campaign: Campaign, generation: int) -> bool:
    """Approved at this generation, and its content is exactly what the approvals named."""
    return (
        campaign.status in (S.APPROVED, S.SCHEDULED)
        and campaign.generation == generation
        and campaign.approved_hash is not None
        and campaign.content_hash == campaign.approved_hash
        and approval.content_hash(campaign) == campaign.approved_hash
    )


def _expanded(session: Session, campaign: Campaign) -> bool:
    found = session.exec(select(Message.id).where(Message.campaign_id == campaign.id).limit(1))
    return found.first() is not None


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
    locked(session=session, campaign=campaign)  # a pause or a cancel may have come first
    if campaign.status != S.SENDING:
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
    locked(session=session, campaign=campaign)  # an edit or a cancel may have come first
    if campaign.status not in (S.APPROVED, S.SCHEDULED, S.SENDING, S.PAUSED):
        return False
    if campaign.send_expiry is None or campaign.send_expiry > now:
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
