"""The campaign lifecycle as people drive it: create, edit, submit, approve, reject, cancel, pause.

Who may do what:
- people of an authority (submitter, approver) see their own authority's campaigns only; to
  them another authority's campaign does not exist (NotFound). Operators, auditors and admins
  see every campaign.
- a submitter creates, edits and submits; an approver of the same authority, who is not the
  submitter, approves or rejects; the authority's submitters and approvers, and operators,
  cancel; operators pause and resume. Auditors and admins only read.
- an authority's campaigns are submitted and approved only once a second operator admin has
  confirmed the authority (`campaigns.custody`); until then AuthorityNotConfirmed.
A transition not allowed from the current state raises InvalidState and changes nothing.

One writer at a time: every transition first re-reads the campaign under a row lock (`locked`,
`SELECT … FOR NO KEY UPDATE` on PostgreSQL; SQLite's write lock is taken at BEGIN) and checks
its state on what it read there, so a change committed meanwhile by another person or by the
expansion is seen, never overwritten.
"""

from sqlmodel import Session, col, func, select, update

from campaigns import approval, areas, audit, characters, content, custody
from campaigns.errors import InvalidInput, InvalidState, NotFound, PermissionDenied
from campaigns.models import (
    Approval,
    Authority,
    Campaign,
    CampaignBase,
    CampaignStatus,
    Message,
    MessageStatus,
    Mode,
    Priority,
    RecipientList,
    Role,
    User,
    utcnow,
)
from campaigns.policy import SENDER, Policy

S = CampaignStatus
EDITABLE = (S.DRAFT, S.SUBMITTED, S.APPROVED, S.SCHEDULED)
CANCELLABLE = (S.DRAFT, S.SUBMITTED, S.APPROVED, S.SCHEDULED, S.SENDING, S.PAUSED)
AUTHORITY_ROLES = (Role.SUBMITTER, Role.APPROVER)


def locked(*, session: Session, campaign: Campaign) -> Campaign:
    """Re-read `campaign` as committed, locked until this transaction ends."""
    # NO KEY UPDATE: it does not wait for the key-share locks messages take on their campaign
    # while being inserted, so a cancel or an edit is not held up by a running expansion.
    session.refresh(campaign, with_for_update={"key_share": True})
    return campaign


def get_visible(*, session: Session, campaign_id: int, actor: User) -> Campaign:
    """The campaign, if `actor` may see it."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or (
        actor.authority_id is not None and campaign.authority_id != actor.authority_id
    ):
        raise NotFound(f"campaign {campaign_id} not found")
    return campaign


def list_visible(
    *,
    session: Session,
    actor: User,
    status: CampaignStatus | None,
    limit: int,
    offset: int = 0,
    before_id: int | None = None,
) -> list[Campaign]:
    """Campaigns `actor` may see, newest first (older than `before_id` if given)."""
    query = select(Campaign).order_by(col(Campaign.id).desc()).limit(limit).offset(offset)
    if before_id is not None:
        query = query.where(col(Campaign.id) < before_id)
    if actor.authority_id is not None:
        query = query.where(Campaign.authority_id == actor.authority_id)
    if status is not None:
        query = query.where(Campaign.status == status)
    return list(session.exec(query).all())


def sent_text(campaign: CampaignBase, policy: Policy) -> str:
    """The text as it goes out: unaccented if chosen, with the exercise marker if an exercise."""
    text = content.unaccented(campaign.text) if campaign.unaccented else campaign.text
    return policy.exercise_marker + text if campaign.mode == Mode.EXERCISE else text


def check_content(*, session: Session, data: CampaignBase, actor: User, policy: Policy) -> None:
    """Refuse content that cannot be sent, or a target the authority may not reach."""
    for field in ("text", "title", "sender", "document_number", "document_issuer"):
        wrong = characters.problem(getattr(data, field), multiline=field == "text")
        if wrong is not None:
            raise InvalidInput(f"{field}: {wrong}")
    try:
        content.split(sent_text(data, policy), reference=0, max_parts=policy.max_parts)
    except content.ContentError as error:
        raise InvalidInput(f"text: {error}") from error
    if not SENDER.fullmatch(data.sender):
        raise InvalidInput("sender: a brandname of at most 11 letters/digits, or a short code")
    if not data.target_areas and data.recipient_list_id is None:
        raise InvalidInput("target_areas: name at least one area, or a recipient_list_id")
    if unknown := areas.unknown_codes(session, data.target_areas):
        raise InvalidInput(f"target_areas: unknown area codes {', '.join(unknown)}")
    authority = session.get(Authority, actor.authority_id)
    assert authority is not None
    if outside := areas.within(session, data.target_areas, authority.areas):
        raise PermissionDenied(f"{authority.code} may not target {', '.join(outside)}")
    if data.recipient_list_id is not None:
        recipients = session.get(RecipientList, data.recipient_list_id)
        if recipients is None or recipients.authority_id != authority.id:
            raise InvalidInput(f"recipient_list_id: no list {data.recipient_list_id}")
    start = data.send_start or utcnow()
    if data.send_expiry is not None and data.send_expiry <= start:
        raise InvalidInput("send_expiry: must be after send_start (and in the future)")
    if data.send_expiry is not None and data.send_expiry <= utcnow():
        raise InvalidInput("send_expiry: the send window has already passed")


def _normalised(data: CampaignBase, policy: Policy) -> CampaignBase:
    nfc = content.normalise
    expiry = data.send_expiry or (data.send_start or utcnow()) + policy.default_validity
    return data.model_copy(
        update={
            "text": nfc(data.text),
            "title": nfc(data.title),
            "document_issuer": nfc(data.document_issuer),
            "target_areas": sorted(set(data.target_areas)),
            "send_expiry": expiry,
        }
    )


def create(*, session: Session, data: CampaignBase, actor: User, policy: Policy) -> Campaign:
    """Create a draft campaign for the actor's authority."""
    _require_role(actor, Role.SUBMITTER)
    data = _normalised(data, policy)
    check_content(session=session, data=data, actor=actor, policy=policy)
    campaign = Campaign.model_validate(
        data, update={"authority_id": actor.authority_id, "created_by_id": actor.id}
    )
    campaign.content_hash = approval.content_hash(campaign)
    session.add(campaign)
    session.flush()
    record_event(session, actor, "campaign.create", campaign, title=campaign.title)
    return campaign


def edit(
    *, session: Session, campaign: Campaign, data: CampaignBase, actor: User, policy: Policy
) -> Campaign:
    """Change a campaign before it sends; an edit after submission voids every approval."""
    _require_role(actor, Role.SUBMITTER)
    locked(session=session, campaign=campaign)
    _require(campaign, *EDITABLE)
    data = _normalised(data, policy)
    check_content(session=session, data=data, actor=actor, policy=policy)
    for field, value in data.model_dump().items():
        setattr(campaign, field, value)
    old_hash, campaign.content_hash = campaign.content_hash, approval.content_hash(campaign)
    if campaign.status != S.DRAFT:
        campaign.status = S.SUBMITTED
        campaign.generation += 1  # a scheduled send job of the old content must not run
        campaign.approved_hash = None
    session.add(campaign)
    session.flush()
    record_event(session, actor, "campaign.edit", campaign, old_hash=old_hash)
    return campaign


def submit(*, session: Session, campaign: Campaign, actor: User) -> Campaign:
    """Submit a draft for approval."""
    _require_role(actor, Role.SUBMITTER)
    locked(session=session, campaign=campaign)
    _require(campaign, S.DRAFT)
    _require_confirmed_authority(session, campaign)
    campaign.status = S.SUBMITTED
    campaign.submitted_at = utcnow()
    session.add(campaign)
    session.flush()
    record_event(session, actor, "campaign.submit", campaign)
    return campaign


def approvals_needed(*, session: Session, campaign: Campaign) -> int:
    """How many distinct approvals the campaign's authority requires for it."""
    authority = session.get(Authority, campaign.authority_id)
    assert authority is not None
    urgent = campaign.priority == Priority.URGENT
    return authority.approvals_urgent if urgent else authority.approvals_normal


def current_approvals(*, session: Session, campaign: Campaign) -> int:
    """Distinct approvers of the campaign's current content."""
    count = session.exec(
        select(func.count(func.distinct(Approval.approver_id))).where(
            Approval.campaign_id == campaign.id, Approval.content_hash == campaign.content_hash
        )
    ).one()
    return int(count)


def approve(
    *,
    session: Session,
    campaign: Campaign,
    actor: User,
    content_hash: str,
    signature: str | None,
) -> Campaign:
    """Approve the exact content named by `content_hash`; enough approvals make it approved."""
    _require_authority_approver(campaign, actor)
    # Two approvers at once: the second waits here, then counts the first one's approval.
    locked(session=session, campaign=campaign)
    _require(campaign, S.SUBMITTED)
    if content_hash != campaign.content_hash:
        raise InvalidState(
            f"campaign {campaign.id} content changed: its hash is {campaign.content_hash}, "
            f"not {content_hash}"
        )
    authority = _require_confirmed_authority(session, campaign)
    assert campaign.id is not None
    if authority.public_key and not approval.signature_is_valid(
        public_key=authority.public_key,
        campaign_id=campaign.id,
        digest=content_hash,
        approver=actor.username,
        signature=signature,
    ):
        raise PermissionDenied("the approval needs a valid signature by the authority's key")
    already = session.exec(
        select(Approval).where(
            Approval.campaign_id == campaign.id,
            Approval.approver_id == actor.id,
            Approval.content_hash == content_hash,
        )
    ).first()
    if already is not None:
        raise InvalidState(f"{actor.username} already approved this content")
    assert actor.id is not None
    session.add(
        Approval(
            campaign_id=campaign.id,
            approver_id=actor.id,
            content_hash=content_hash,
            signature=signature,
        )
    )
    session.flush()
    have, need = (
        current_approvals(session=session, campaign=campaign),
        approvals_needed(session=session, campaign=campaign),
    )
    if have >= need:
        start = campaign.send_start
        campaign.status = S.SCHEDULED if start and start > utcnow() else S.APPROVED
        campaign.approved_at = utcnow()
        campaign.approved_hash = content_hash
        session.add(campaign)
        session.flush()
    record_event(
        session,
        actor,
        "campaign.approve",
        campaign,
        content_hash=content_hash,
        approvals=have,
        required=need,
        signed=bool(signature),
    )
    return campaign


def reject(*, session: Session, campaign: Campaign, actor: User, reason: str) -> Campaign:
    """Refuse a submitted campaign, with the reason."""
    _require_authority_approver(campaign, actor)
    locked(session=session, campaign=campaign)
    _require(campaign, S.SUBMITTED)
    campaign.status = S.REJECTED
    campaign.reject_reason = reason
    session.add(campaign)
    session.flush()
    record_event(session, actor, "campaign.reject", campaign, reason=reason)
    return campaign


def cancel(*, session: Session, campaign: Campaign, actor: User) -> Campaign:
    """Stop a campaign for good; every message not yet submitted ends `cancelled`."""
    if actor.role not in (*AUTHORITY_ROLES, Role.OPERATOR):
        raise PermissionDenied("only the authority's people or an operator cancel a campaign")
    locked(session=session, campaign=campaign)
    _require(campaign, *CANCELLABLE)
    campaign.status = S.CANCELLED
    campaign.completed_at = utcnow()
    session.add(campaign)
    stopped = end_queued(session=session, campaign=campaign, status=MessageStatus.CANCELLED)
    record_event(session, actor, "campaign.cancel", campaign, messages_cancelled=stopped)
    return campaign


def pause(*, session: Session, campaign: Campaign, actor: User) -> Campaign:
    """Hold a sending campaign; its queued messages wait."""
    _require_role(actor, Role.OPERATOR)
    locked(session=session, campaign=campaign)
    _require(campaign, S.SENDING)
    campaign.status = S.PAUSED
    session.add(campaign)
    session.flush()
    record_event(session, actor, "campaign.pause", campaign)
    return campaign


def resume(*, session: Session, campaign: Campaign, actor: User) -> Campaign:
    """Send a paused campaign's queued messages again."""
    _require_role(actor, Role.OPERATOR)
    locked(session=session, campaign=campaign)
    _require(campaign, S.PAUSED)
    campaign.status = S.SENDING
    campaign.generation += 1
    session.add(campaign)
    session.flush()
    record_event(session, actor, "campaign.resume", campaign)
    return campaign


def end_queued(*, session: Session, campaign: Campaign, status: MessageStatus) -> int:
    """Give every still-queued message of the campaign a final `status`; return how many."""
    result = session.connection().execute(
        update(Message)
        .where(col(Message.campaign_id) == campaign.id, col(Message.status) == MessageStatus.QUEUED)
        .values(status=status, done_at=utcnow())
    )
    session.flush()
    return int(result.rowcount)


def record_event(
    session: Session, actor: User | str, action: str, campaign: Campaign, **details: object
) -> None:
    """Append a campaign event to the audit log, with the campaign's status and mode."""
    details = {"status": str(campaign.status), "mode": str(campaign.mode), **details}
    audit.record(
        session=session,
        actor=actor,
        action=action,
        subject=f"campaign:{campaign.id}",
        campaign_id=campaign.id,
        details=details,
    )


def _require_role(actor: User, role: Role) -> None:
    if actor.role != role:
        raise PermissionDenied(f"this needs the {role} role")


def _require_confirmed_authority(session: Session, campaign: Campaign) -> Authority:
    authority = session.get(Authority, campaign.authority_id)
    assert authority is not None
    custody.require_confirmed(authority)
    return authority


def _require_authority_approver(campaign: Campaign, actor: User) -> None:
    if actor.role != Role.APPROVER or actor.authority_id != campaign.authority_id:
        raise PermissionDenied("only an approver of the campaign's authority decides on it")
    if actor.id == campaign.created_by_id:
        raise PermissionDenied("the approver must be another person than the submitter")


def _require(campaign: Campaign, *allowed: CampaignStatus) -> None:
    if campaign.status not in allowed:
        raise InvalidState(f"campaign {campaign.id} is {campaign.status}")
