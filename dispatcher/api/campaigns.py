"""Campaign endpoints: the lifecycle and the preview (reports: `dispatcher.api.reports`)."""

from collections.abc import Callable, Coroutine
from datetime import datetime
from functools import partial
from typing import Annotated, Any

import anyio.from_thread
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from campaigns import service
from campaigns.models import Campaign, CampaignBase, CampaignStatus, Mode
from dispatcher import queue
from dispatcher.api.bounds import MAX_ID, IdPath, Offset, PageLimit, link_next
from dispatcher.api.deps import CurrentUser, QueueDep, SessionDep, SettingsDep
from dispatcher.api.preview import Preview, preview_of
from dispatcher.sending import halts

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])


AreaCode = Annotated[str, StringConstraints(min_length=1, max_length=16)]


class CampaignIn(CampaignBase):
    """What a submitter sends to create or edit a campaign; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    target_areas: list[AreaCode] = Field(default_factory=list, max_length=100)
    recipient_list_id: int | None = Field(default=None, ge=1, le=MAX_ID)


class CampaignPublic(CampaignBase):
    """A campaign as the API shows it."""

    id: int
    authority_id: int
    status: CampaignStatus
    exercise: bool
    content_hash: str
    approvals: int
    approvals_required: int
    reject_reason: str | None
    recipients: int
    created_at: datetime
    submitted_at: datetime | None
    approved_at: datetime | None
    completed_at: datetime | None


class ApprovalIn(BaseModel):
    """An approval quotes the content hash it approves, signed where the authority has a key."""

    model_config = ConfigDict(extra="forbid")

    content_hash: str = Field(pattern="^[0-9a-f]{64}$")
    signature: str | None = Field(default=None, max_length=200)


class RejectionIn(BaseModel):
    """Why a campaign is refused."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000)


def _public(session: SessionDep, campaign: Campaign) -> CampaignPublic:
    return CampaignPublic.model_validate(
        campaign,
        update={
            "exercise": campaign.mode == Mode.EXERCISE,
            "approvals": service.current_approvals(session=session, campaign=campaign),
            "approvals_required": service.approvals_needed(session=session, campaign=campaign),
        },
    )


def _committed(
    session: SessionDep, campaign: Campaign, *then: Callable[[], Coroutine[Any, Any, None]]
) -> CampaignPublic:
    """Commit, then tell the workers: a job never runs ahead of the change that justifies it."""
    public = _public(session, campaign)
    session.commit()
    for action in then:
        anyio.from_thread.run(action)
    return public


@router.post("", status_code=201, response_model=CampaignPublic)
def create_campaign(
    data: CampaignIn, session: SessionDep, actor: CurrentUser, settings: SettingsDep
) -> CampaignPublic:
    """Create a draft campaign."""
    campaign = service.create(session=session, data=data, actor=actor, policy=settings.policy)
    return _public(session, campaign)


@router.get("", response_model=list[CampaignPublic])
def list_campaigns(
    request: Request,
    response: Response,
    session: SessionDep,
    actor: CurrentUser,
    status: CampaignStatus | None = None,
    limit: PageLimit = 50,
    offset: Offset = 0,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="the next page: older than this id")
    ] = None,
) -> list[CampaignPublic]:
    """Campaigns the caller may see, newest first; page with `before_id` (see `Link`)."""
    found = service.list_visible(
        session=session,
        actor=actor,
        status=status,
        limit=limit,
        offset=offset,
        before_id=before_id,
    )
    if found:
        link_next(request, response, len(found), limit, before_id=found[-1].id)
    return [_public(session, campaign) for campaign in found]


@router.get("/{campaign_id}", response_model=CampaignPublic)
def get_campaign(campaign_id: IdPath, session: SessionDep, actor: CurrentUser) -> CampaignPublic:
    """One campaign."""
    return _public(
        session, service.get_visible(session=session, campaign_id=campaign_id, actor=actor)
    )


@router.put("/{campaign_id}", response_model=CampaignPublic)
def edit_campaign(
    campaign_id: IdPath,
    data: CampaignIn,
    session: SessionDep,
    actor: CurrentUser,
    settings: SettingsDep,
) -> CampaignPublic:
    """Change a campaign that has not started sending; approvals of the old content lapse."""
    campaign = service.get_visible(session=session, campaign_id=campaign_id, actor=actor)
    service.edit(session=session, campaign=campaign, data=data, actor=actor, policy=settings.policy)
    return _public(session, campaign)


@router.post("/{campaign_id}/submit", response_model=CampaignPublic)
def submit_campaign(campaign_id: IdPath, session: SessionDep, actor: CurrentUser) -> CampaignPublic:
    """Submit a draft for approval."""
    campaign = service.get_visible(session=session, campaign_id=campaign_id, actor=actor)
    return _public(session, service.submit(session=session, campaign=campaign, actor=actor))


@router.post("/{campaign_id}/approve", response_model=CampaignPublic)
def approve_campaign(
    campaign_id: IdPath, body: ApprovalIn, session: SessionDep, actor: CurrentUser, pool: QueueDep
) -> CampaignPublic:
    """Approve the quoted content; once enough approvals are in, sending is scheduled."""
    campaign = service.get_visible(session=session, campaign_id=campaign_id, actor=actor)
    service.approve(
        session=session,
        campaign=campaign,
        actor=actor,
        content_hash=body.content_hash,
        signature=body.signature,
    )
    if campaign.status not in (CampaignStatus.APPROVED, CampaignStatus.SCHEDULED):
        return _committed(session, campaign)  # more approvals to come
    start = campaign.send_start if campaign.status == CampaignStatus.SCHEDULED else None
    expand = partial(queue.enqueue_expansion, pool, campaign_id, campaign.generation, start)
    return _committed(session, campaign, expand)


@router.post("/{campaign_id}/reject", response_model=CampaignPublic)
def reject_campaign(
    campaign_id: IdPath, body: RejectionIn, session: SessionDep, actor: CurrentUser
) -> CampaignPublic:
    """Refuse a submitted campaign."""
    campaign = service.get_visible(session=session, campaign_id=campaign_id, actor=actor)
    service.reject(session=session, campaign=campaign, actor=actor, reason=body.reason)
    return _public(session, campaign)


@router.post("/{campaign_id}/cancel", response_model=CampaignPublic)
def cancel_campaign(
    campaign_id: IdPath,
    session: SessionDep,
    actor: CurrentUser,
    pool: QueueDep,
    settings: SettingsDep,
) -> CampaignPublic:
    """Stop a campaign for good: nothing more is submitted, queued messages end cancelled."""
    campaign = service.get_visible(session=session, campaign_id=campaign_id, actor=actor)
    service.cancel(session=session, campaign=campaign, actor=actor)
    halt = partial(halts.halt, pool, settings.queue_name, campaign_id, "cancelled")
    return _committed(session, campaign, halt)


@router.post("/{campaign_id}/pause", response_model=CampaignPublic)
def pause_campaign(
    campaign_id: IdPath,
    session: SessionDep,
    actor: CurrentUser,
    pool: QueueDep,
    settings: SettingsDep,
) -> CampaignPublic:
    """Hold a sending campaign (operators)."""
    campaign = service.get_visible(session=session, campaign_id=campaign_id, actor=actor)
    service.pause(session=session, campaign=campaign, actor=actor)
    halt = partial(halts.halt, pool, settings.queue_name, campaign_id, "paused")
    return _committed(session, campaign, halt)


@router.post("/{campaign_id}/resume", response_model=CampaignPublic)
def resume_campaign(
    campaign_id: IdPath,
    session: SessionDep,
    actor: CurrentUser,
    pool: QueueDep,
    settings: SettingsDep,
) -> CampaignPublic:
    """Send a paused campaign's queued messages again (operators)."""
    campaign = service.get_visible(session=session, campaign_id=campaign_id, actor=actor)
    service.resume(session=session, campaign=campaign, actor=actor)
    release = partial(halts.release, pool, settings.queue_name, campaign_id)
    expand = partial(queue.enqueue_expansion, pool, campaign_id, campaign.generation, None)
    return _committed(session, campaign, release, expand)


@router.get("/{campaign_id}/preview", response_model=Preview)
def campaign_preview(
    campaign_id: IdPath, session: SessionDep, actor: CurrentUser, settings: SettingsDep
) -> Preview:
    """What the campaign would cost: encoding, segments, recipients and total SMS."""
    campaign = service.get_visible(session=session, campaign_id=campaign_id, actor=actor)
    return preview_of(session=session, campaign=campaign, policy=settings.policy)
