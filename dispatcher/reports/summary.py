"""The campaign report as the API, the CLI and the authority's PDF show it, error codes named."""

from datetime import datetime

from pydantic import BaseModel
from sqlmodel import Session, col, func, select

from campaigns import execution, reports
from campaigns.content import Encoding, analyse
from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus, Mode
from campaigns.policy import Policy
from campaigns.service import sent_text
from dispatcher.sending.answers import status_name
from dispatcher.sending.matching import pending_counts

# The receipt `stat:` each failed status comes from (SMPP 3.4 Appendix B).
RECEIPT_STATES = {
    MessageStatus.UNDELIVERABLE: "UNDELIV",
    MessageStatus.EXPIRED: "EXPIRED",
    MessageStatus.REJECTED: "REJECTD",
    MessageStatus.FAILED: "DELETED",
}


class AreaRow(BaseModel):
    """One registered area's recipients by outcome (`code` null: numbers not in the registry)."""

    code: str | None
    name: str | None
    recipients: int
    delivered: int
    failed: int
    pending: int
    unknown: int
    cancelled: int


class HourRow(BaseModel):
    """Messages submitted and delivered in the UTC hour starting at `hour`."""

    hour: datetime
    submitted: int
    delivered: int


class ErrorRow(BaseModel):
    """Messages that ended on one error: an SMPP command_status, or a receipt's error code."""

    kind: str
    code: int | None
    name: str
    status: str
    messages: int


class DelaySeconds(BaseModel):
    """Seconds from the submit answer to the delivery receipt, over delivered messages."""

    p50: float | None
    p90: float | None
    p99: float | None


class Reached(BaseModel):
    """When 50 %, 90 % and 99 % of the campaign's recipients had been delivered."""

    p50: datetime | None
    p90: datetime | None
    p99: datetime | None


class UnmatchedReceipts(BaseModel):
    """Receipts that matched no message, received since the campaign was approved (any campaign's:
    an unmatched receipt names no campaign)."""

    waiting: int  # stored, tried again as submit answers arrive
    given_up: int  # unmatched after DISPATCHER_UNMATCHED_RECEIPT_TTL


class Report(BaseModel):
    """Where a campaign's messages stand."""

    campaign_id: int
    status: CampaignStatus
    exercise: bool
    encoding: Encoding
    recipients: int
    parts_per_message: int
    total_sms: int
    by_status: dict[str, int]
    by_area: list[AreaRow]
    by_hour: list[HourRow]
    by_error: list[ErrorRow]
    delivery_seconds: DelaySeconds
    reached: Reached
    late_receipts: int  # `unknown` at the receipt timeout, then corrected by a later receipt
    unmatched_receipts: UnmatchedReceipts


def error_name(error: reports.ErrorCount) -> str:
    """`ESME_RINVDSTADR` for a command_status, `UNDELIV` (the receipt state) for a receipt."""
    if error.kind == "command_status" and error.code is not None:
        return status_name(error.code)
    return RECEIPT_STATES.get(MessageStatus(error.status), error.status.upper())


def build(*, session: Session, campaign: Campaign, policy: Policy) -> Report:
    """The report of one campaign, computed now."""
    assert campaign.id is not None
    figures = reports.compute(
        session=session, campaign_id=campaign.id, on=campaign.created_at.date()
    )
    parts = execution.parts_per_message(session=session, campaign_id=campaign.id)
    return Report(
        campaign_id=campaign.id,
        status=campaign.status,
        exercise=campaign.mode == Mode.EXERCISE,
        encoding=analyse(sent_text(campaign, policy)).encoding,
        recipients=campaign.recipients,
        parts_per_message=parts,
        total_sms=campaign.recipients * parts,
        by_status=figures.by_status,
        by_area=[AreaRow(**vars(area)) for area in figures.by_area],
        by_hour=[HourRow(**vars(hour)) for hour in figures.by_hour],
        by_error=[ErrorRow(**vars(e), name=error_name(e)) for e in figures.by_error],
        delivery_seconds=DelaySeconds(**vars(figures.delivery_seconds)),
        reached=Reached(**vars(figures.reached)),
        late_receipts=_late_receipts(session, campaign.id),
        unmatched_receipts=_unmatched(session, campaign),
    )


def _late_receipts(session: Session, campaign_id: int) -> int:
    # Along the partial index of late messages: a handful of rows, however large the campaign.
    query = (
        select(func.count())
        .select_from(Message)
        .where(col(Message.campaign_id) == campaign_id, col(Message.late_receipt).is_(True))
    )
    return int(session.exec(query).one())


def _unmatched(session: Session, campaign: Campaign) -> UnmatchedReceipts:
    since = campaign.approved_at or campaign.created_at
    counts = pending_counts(session.connection(), since=since)
    return UnmatchedReceipts(waiting=counts["waiting"], given_up=counts["expired"])
