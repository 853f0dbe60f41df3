"""The campaign lifecycle: create, submit, approve, start sending, complete."""

from sqlalchemy import func
from sqlmodel import Session, col, select

from campaigns import areas, content
from campaigns.errors import InvalidInput, InvalidState, NotFound, PermissionDenied
from campaigns.models import (
    Area,
    Campaign,
    CampaignBase,
    CampaignStatus,
    Message,
    MessageStatus,
    Role,
    User,
    utcnow,
)
from campaigns.targeting import insert_messages


def get_visible(*, session: Session, campaign_id: int, actor: User) -> Campaign:
    """The campaign, if `actor` may see it (own authority, or the operator's people)."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or (
        actor.authority_id is not None and campaign.authority_id != actor.authority_id
    ):
        raise NotFound(f"campaign {campaign_id} not found")
    return campaign


def create(*, session: Session, data: CampaignBase, actor: User) -> Campaign:
    """Create a draft campaign for the actor's authority."""
    if actor.role != Role.SUBMITTER or actor.authority_id is None:
        raise PermissionDenied("only a submitter of an authority creates campaigns")
    check_text(data.text)
    if not data.target_areas:
        raise InvalidInput("target_areas must name at least one area")
    known = set(session.exec(select(Area.code).where(col(Area.code).in_(data.target_areas))))
    if unknown := sorted(set(data.target_areas) - known):
        raise InvalidInput(f"unknown area codes: {', '.join(unknown)}")
    campaign = Campaign.model_validate(
        data, update={"authority_id": actor.authority_id, "created_by_id": actor.id}
    )
    session.add(campaign)
    session.flush()
    return campaign


# Multi-part messages need one SMSC message id per part; until the sender tracks parts,
# a campaign text must fit one SMS.
MAX_PARTS = 1


def check_text(text: str) -> content.ContentInfo:
    """Refuse a text that cannot be sent; describe the one that can."""
    try:
        info = content.analyse(text)
    except content.ContentError as error:
        raise InvalidInput(f"text: {error}") from error
    if info.segments > MAX_PARTS:
        raise InvalidInput(
            f"text: needs {info.segments} SMS ({info.encoding}, {info.units} units); "
            f"at most {MAX_PARTS} per message is supported"
        )
    return info


def submit(*, session: Session, campaign: Campaign, actor: User) -> Campaign:
    """Submit a draft for approval."""
    if actor.role != Role.SUBMITTER:
        raise PermissionDenied("only a submitter submits campaigns")
    _require(campaign, CampaignStatus.DRAFT)
    campaign.status = CampaignStatus.SUBMITTED
    session.add(campaign)
    session.flush()
    return campaign


def approve(*, session: Session, campaign: Campaign, actor: User) -> Campaign:
    """Approve a submitted campaign: a second person, an approver of the same authority."""
    if actor.role != Role.APPROVER or actor.authority_id != campaign.authority_id:
        raise PermissionDenied("only an approver of the campaign's authority approves it")
    if actor.id == campaign.created_by_id:
        raise PermissionDenied("the approver must be another person than the submitter")
    _require(campaign, CampaignStatus.SUBMITTED)
    campaign.status = CampaignStatus.APPROVED
    campaign.approved_by_id = actor.id
    campaign.approved_at = utcnow()
    session.add(campaign)
    session.flush()
    return campaign


def start_sending(*, session: Session, campaign: Campaign, batch_size: int) -> Campaign:
    """Expand an approved campaign into one queued message per recipient, in batches."""
    _require(campaign, CampaignStatus.APPROVED)
    assert campaign.id is not None
    reached = areas.resolve(session, campaign.target_areas)
    campaign.recipients = insert_messages(
        session=session, campaign_id=campaign.id, area_codes=reached, batch_size=batch_size
    )
    campaign.batches = -(-campaign.recipients // batch_size)
    campaign.status = CampaignStatus.SENDING
    session.add(campaign)
    session.flush()
    return campaign


def complete_if_done(*, session: Session, campaign: Campaign) -> bool:
    """Mark a sending campaign completed once none of its messages is pending."""
    pending = session.exec(
        select(Message.id)
        .where(Message.campaign_id == campaign.id)
        .where(col(Message.status).in_([MessageStatus.QUEUED, MessageStatus.SUBMITTED]))
        .limit(1)
    ).first()
    if pending is not None:
        return False
    campaign.status = CampaignStatus.COMPLETED
    campaign.completed_at = utcnow()
    session.add(campaign)
    session.flush()
    return True


def count_by_status(*, session: Session, campaign_id: int) -> dict[str, int]:
    """How many of the campaign's messages are in each status."""
    rows = session.exec(
        select(Message.status, func.count())
        .where(Message.campaign_id == campaign_id)
        .group_by(Message.status)
    ).all()
    return {str(status): count for status, count in rows}


def _require(campaign: Campaign, *allowed: CampaignStatus) -> None:
    if campaign.status not in allowed:
        raise InvalidState(f"campaign {campaign.id} is {campaign.status}")
