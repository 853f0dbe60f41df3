"""Audit endpoints, for auditors: read the log, verify its chain."""

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel
from sqlmodel import col, select

from campaigns import audit
from campaigns.errors import PermissionDenied
from campaigns.models import AuditEntry, Role, User
from dispatcher.api.bounds import MAX_ID, IdQuery, Key, Moment, PageLimit, link_next
from dispatcher.api.deps import CurrentUser, SessionDep

router = APIRouter(prefix="/v1/audit", tags=["audit"])

READERS = (Role.AUDITOR, Role.ADMIN)


def auditor(user: CurrentUser) -> User:
    """The caller, who must be an auditor or an admin."""
    if user.role not in READERS:
        raise PermissionDenied("only an auditor or an admin may read the audit log")
    return user


Auditor = Annotated[User, Depends(auditor)]


class AuditEntryPublic(BaseModel):
    """One entry of the log as the API shows it, with its chain hashes."""

    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    campaign_id: int | None
    details: Any
    prev_hash: str
    hash: str


class VerificationPublic(BaseModel):
    """Whether the chain is intact and, if not, the first entry where it breaks."""

    ok: bool
    entries: int
    first_bad_id: int | None
    problem: str | None


@router.get("", response_model=list[AuditEntryPublic])
def list_entries(
    request: Request,
    response: Response,
    session: SessionDep,
    _: Auditor,
    campaign_id: IdQuery | None = None,
    actor: Key | None = None,
    action: Key | None = None,
    since: Annotated[Moment | None, Query(description="at or after (ISO 8601)")] = None,
    until: Annotated[Moment | None, Query(description="before (ISO 8601)")] = None,
    after_id: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="entries after this id, to page")
    ] = None,
    limit: PageLimit = 100,
) -> list[AuditEntryPublic]:
    """Entries in id order, filtered; page with `after_id` = the last id received (see `Link`)."""
    statement = select(AuditEntry).order_by(col(AuditEntry.id)).limit(limit)
    if campaign_id is not None:
        statement = statement.where(AuditEntry.campaign_id == campaign_id)
    if actor is not None:
        statement = statement.where(AuditEntry.actor == actor)
    if action is not None:
        statement = statement.where(AuditEntry.action == action)
    if since is not None:
        statement = statement.where(col(AuditEntry.at) >= since)
    if until is not None:
        statement = statement.where(col(AuditEntry.at) < until)
    if after_id is not None:
        statement = statement.where(col(AuditEntry.id) > after_id)
    entries = [_public(entry) for entry in session.exec(statement)]
    if entries:
        link_next(request, response, len(entries), limit, after_id=entries[-1].id)
    return entries


@router.get("/verify", response_model=VerificationPublic)
def verify_chain(session: SessionDep, _: Auditor) -> VerificationPublic:
    """Recompute the whole chain and say whether it is intact."""
    result = audit.verify(session=session)
    return VerificationPublic(
        ok=result.ok,
        entries=result.entries,
        first_bad_id=result.first_bad_id,
        problem=result.problem,
    )


def _utc(moment: datetime) -> datetime:
    # Times without a zone are taken as UTC; SQLite compares the stored UTC text.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _public(entry: AuditEntry) -> AuditEntryPublic:
    assert entry.id is not None
    try:
        details: Any = json.loads(entry.details)
    except json.JSONDecodeError:  # an altered entry: show what is stored
        details = entry.details
    return AuditEntryPublic(
        id=entry.id,
        at=_utc(entry.at),
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        campaign_id=entry.campaign_id,
        details=details,
        prev_hash=entry.prev_hash,
        hash=entry.hash,
    )
