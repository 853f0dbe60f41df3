"""Report endpoints: a campaign's figures, its delivery log, the authority's report, look-ups.

Who sees what:
- the report (JSON, HTML, PDF): anyone who sees the campaign; it holds no subscriber number;
- the delivery log (CSV): anyone who sees the campaign; numbers in full for auditors and
  operators, masked for everyone else (see `campaigns.disclosure.sees_numbers`);
- the messages to one number, across campaigns: auditors and operators only.
Every export and look-up is written to the audit log before anything is answered.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel

from campaigns import disclosure, service
from campaigns.models import Campaign
from dispatcher.api.bounds import IdPath, PageLimit
from dispatcher.api.deps import CurrentUser, SessionDep, SettingsDep
from dispatcher.db import get_engine
from dispatcher.reports import authority, delivery_log
from dispatcher.reports.summary import Report, build
from dispatcher.sending.answers import status_name

router = APIRouter(prefix="/v1", tags=["reports"])


class MessagePublic(BaseModel):
    """One message to the looked-up number."""

    message_id: int
    campaign_id: int
    campaign_title: str
    msisdn: str
    area_code: str | None
    status: str
    attempts: int
    command_status: int | None
    command_status_name: str | None
    receipt_error: int | None
    submitted_at: datetime | None
    done_at: datetime | None
    smsc_message_ids: list[str]


@router.get("/campaigns/{campaign_id}/report", response_model=Report)
def campaign_report(
    campaign_id: IdPath, session: SessionDep, actor: CurrentUser, settings: SettingsDep
) -> Report:
    """The campaign's messages by status, area, hour and error, with delivery and reach times."""
    campaign = service.get_visible(session=session, campaign_id=campaign_id, actor=actor)
    return build(session=session, campaign=campaign, policy=settings.policy)


@router.get("/campaigns/{campaign_id}/messages.csv", response_class=StreamingResponse)
def delivery_log_csv(campaign_id: IdPath, session: SessionDep, actor: CurrentUser) -> Response:
    """One CSV row per message, streamed; numbers in full for auditors and operators only."""
    campaign = service.get_visible(session=session, campaign_id=campaign_id, actor=actor)
    masked = not disclosure.sees_numbers(actor)
    disclosure.record_export(session=session, actor=actor, campaign=campaign, masked=masked)
    session.commit()  # the export is on record before its first byte leaves
    chunks = (chunk.text for chunk in delivery_log.chunks(get_engine(), campaign_id, masked=masked))
    filename = f"campaign-{campaign_id}-messages.csv"
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/messages", response_model=list[MessagePublic])
def messages_to_number(
    session: SessionDep,
    actor: CurrentUser,
    msisdn: Annotated[str, Query(min_length=1, max_length=32, description="any written form")],
    limit: PageLimit = 100,
) -> list[MessagePublic]:
    """Every message to one number across campaigns, newest first (auditors and operators)."""
    found = disclosure.messages_to(session=session, actor=actor, raw=msisdn, limit=limit)
    session.commit()  # the look-up stays on record whatever happens to the answer
    return [
        MessagePublic(
            message_id=message.id or 0,
            campaign_id=message.campaign_id,
            campaign_title=title,
            msisdn=message.msisdn,
            area_code=message.area_code,
            status=message.status,
            attempts=message.attempts,
            command_status=message.last_status,
            command_status_name=(
                None if message.last_status is None else status_name(message.last_status)
            ),
            receipt_error=disclosure.receipt_error(message),
            submitted_at=message.submitted_at,
            done_at=message.done_at,
            smsc_message_ids=ids,
        )
        for message, title, ids in found
    ]


def _authority_report(
    session: SessionDep, actor: CurrentUser, settings: SettingsDep, campaign_id: IdPath
) -> authority.AuthorityReport:
    campaign: Campaign = service.get_visible(session=session, campaign_id=campaign_id, actor=actor)
    figures = build(session=session, campaign=campaign, policy=settings.policy)
    return authority.gather(session=session, campaign=campaign, report=figures, settings=settings)


# Default (JSON) response class, so that their errors are documented as the JSON they are; the
# 200 is declared as what it really is.
@router.get(
    "/campaigns/{campaign_id}/report.html",
    response_model=None,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
def authority_report_html(
    campaign_id: IdPath, session: SessionDep, actor: CurrentUser, settings: SettingsDep
) -> HTMLResponse:
    """The report to the authority, in Vietnamese, as a page; no subscriber numbers."""
    report = _authority_report(session, actor, settings, campaign_id)
    return HTMLResponse(authority.html(report))


@router.get(
    "/campaigns/{campaign_id}/report.pdf",
    response_model=None,
    responses={
        200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}}
    },
)
def authority_report_pdf(
    campaign_id: IdPath, session: SessionDep, actor: CurrentUser, settings: SettingsDep
) -> Response:
    """The report to the authority, in Vietnamese, as a PDF; no subscriber numbers."""
    report = _authority_report(session, actor, settings, campaign_id)
    return Response(
        authority.pdf(report),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="campaign-{campaign_id}-report.pdf"'},
    )
