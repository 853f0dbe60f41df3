"""Campaign endpoints: create, read, submit, approve, report."""

import anyio.from_thread
from fastapi import APIRouter
from pydantic import BaseModel

from campaigns import service
from campaigns.models import Campaign, CampaignBase, CampaignStatus
from dispatcher import queue
from dispatcher.api.deps import CurrentUser, QueueDep, SessionDep

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])


class CampaignCreate(CampaignBase):
    """What a submitter sends to create a campaign."""


class CampaignPublic(CampaignBase):
    """A campaign as the API shows it."""

    id: int
    authority_id: int
    status: CampaignStatus
    recipients: int
    batches: int


class Report(BaseModel):
    """Where a campaign's messages stand."""

    campaign_id: int
    status: CampaignStatus
    recipients: int
    by_status: dict[str, int]


@router.post("", status_code=201, response_model=CampaignPublic)
def create_campaign(data: CampaignCreate, session: SessionDep, actor: CurrentUser) -> Campaign:
    """Create a draft campaign."""
    return service.create(session=session, data=data, actor=actor)


@router.get("/{campaign_id}", response_model=CampaignPublic)
def get_campaign(campaign_id: int, session: SessionDep, actor: CurrentUser) -> Campaign:
    """One campaign."""
    return service.get_visible(session=session, campaign_id=campaign_id, actor=actor)


@router.post("/{campaign_id}/submit", response_model=CampaignPublic)
def submit_campaign(campaign_id: int, session: SessionDep, actor: CurrentUser) -> Campaign:
    """Submit a draft for approval."""
    campaign = service.get_visible(session=session, campaign_id=campaign_id, actor=actor)
    return service.submit(session=session, campaign=campaign, actor=actor)


@router.post("/{campaign_id}/approve", response_model=CampaignPublic)
def approve_campaign(
    campaign_id: int, session: SessionDep, actor: CurrentUser, pool: QueueDep
) -> Campaign:
    """Approve a submitted campaign; sending starts once the approval is committed."""
    campaign = service.get_visible(session=session, campaign_id=campaign_id, actor=actor)
    service.approve(session=session, campaign=campaign, actor=actor)
    session.commit()
    anyio.from_thread.run(queue.enqueue_expansion, pool, campaign_id)
    return campaign


@router.get("/{campaign_id}/report", response_model=Report)
def campaign_report(campaign_id: int, session: SessionDep, actor: CurrentUser) -> Report:
    """Counts of the campaign's messages by status."""
    campaign = service.get_visible(session=session, campaign_id=campaign_id, actor=actor)
    return Report(
        campaign_id=campaign_id,
        status=campaign.status,
        recipients=campaign.recipients,
        by_status=service.count_by_status(session=session, campaign_id=campaign_id),
    )
