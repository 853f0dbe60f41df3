"""Recipient endpoints: opt-outs (operators) and uploaded recipient lists (authorities).

No number is logged here; rejected values are shown to the list's authority, operators and
admins as uploaded (they fix the data), and masked for auditors.
"""

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from campaigns import characters, optouts, recipient_lists, spreadsheet
from campaigns.errors import InvalidInput
from campaigns.models import OptOut, RecipientList, RecipientListRejection, Role, User
from campaigns.numbers import mask
from dispatcher.api.bounds import MAX_ID, MAX_PAGE, IdPath
from dispatcher.api.deps import CurrentUser, SessionDep, SettingsDep
from dispatcher.api.limits import TooManyRows
from dispatcher.db import get_engine

opt_out_router = APIRouter(prefix="/v1/opt-outs", tags=["opt-outs"])
list_router = APIRouter(prefix="/v1/recipient-lists", tags=["recipient lists"])


class OptOutIn(BaseModel):
    """A number (any written form) that wants no more non-urgent messages."""

    model_config = ConfigDict(extra="forbid")

    msisdn: str = Field(min_length=1, max_length=64)
    source: str = Field(default="api", max_length=64)


class OptOutPublic(BaseModel):
    """An opt-out as the API shows it, the number in E.164."""

    msisdn: str
    source: str
    created_at: datetime


class RecipientListPublic(BaseModel):
    """An uploaded list: how many numbers it holds and how many rows were refused."""

    id: int
    name: str
    authority_id: int
    accepted: int
    rejected: int
    created_at: datetime
    rejections_url: str


class RecipientListCreated(RecipientListPublic):
    """The answer to an upload; `duplicates`: rows repeating a number already in the list."""

    duplicates: int


class RejectionPublic(BaseModel):
    """One refused row of an upload."""

    line: int
    raw: str
    reason: str


Msisdn = Annotated[str, Path(min_length=1, max_length=64)]


def _opt_out(opt_out: OptOut) -> OptOutPublic:
    return OptOutPublic(msisdn=opt_out.msisdn, source=opt_out.source, created_at=opt_out.created_at)


@opt_out_router.post("", status_code=201, response_model=OptOutPublic)
def add_opt_out(
    body: OptOutIn, session: SessionDep, actor: CurrentUser, response: Response
) -> OptOutPublic:
    """Leave a number out of non-urgent campaigns: 201 when new, 200 when it already was."""
    opt_out, added = optouts.add_opt_out(
        session=session, msisdn=body.msisdn, source=body.source, actor=actor
    )
    if not added:
        response.status_code = 200
    return _opt_out(opt_out)


@opt_out_router.get("/{msisdn}", response_model=OptOutPublic)
def get_opt_out(msisdn: Msisdn, session: SessionDep, actor: CurrentUser) -> OptOutPublic:
    """The opt-out of a number (any written form; "+" as %2B); 404 if it has none."""
    return _opt_out(optouts.get_opt_out(session=session, msisdn=msisdn, actor=actor))


@opt_out_router.delete("/{msisdn}", status_code=204)
def remove_opt_out(msisdn: Msisdn, session: SessionDep, actor: CurrentUser) -> None:
    """Let a number receive non-urgent campaigns again; 404 if it had not opted out."""
    optouts.remove_opt_out(session=session, msisdn=msisdn, actor=actor)


def _list(recipients: RecipientList) -> RecipientListPublic:
    assert recipients.id is not None
    return RecipientListPublic(
        id=recipients.id,
        name=recipients.name,
        authority_id=recipients.authority_id,
        accepted=recipients.accepted,
        rejected=recipients.rejected,
        created_at=recipients.created_at,
        rejections_url=f"{list_router.prefix}/{recipients.id}/rejections",
    )


UPLOAD_FIELDS = frozenset({"name", "file"})


async def _only_upload_fields(request: Request) -> None:
    """Unknown form fields are refused, as unknown JSON fields are (the form is read already)."""
    if unknown := sorted(set((await request.form()).keys()) - UPLOAD_FIELDS):
        raise InvalidInput(f"unknown fields: {', '.join(repr(name) for name in unknown)}")


@list_router.post(
    "",
    status_code=201,
    response_model=RecipientListCreated,
    dependencies=[Depends(_only_upload_fields)],
)
def upload_list(
    name: Annotated[str, Form(min_length=1, max_length=200)],
    file: Annotated[UploadFile, File(description="CSV: one number a row, or an msisdn column")],
    session: SessionDep,
    actor: CurrentUser,
    settings: SettingsDep,
) -> RecipientListCreated:
    """Upload a list of numbers for the caller's authority (submitters).

    At most `max_upload_bytes` and `max_upload_rows` rows (413 beyond either, nothing stored).
    """
    if (wrong := characters.problem(name)) is not None:
        raise InvalidInput(f"name: {wrong}")
    text = io.TextIOWrapper(file.file, encoding="utf-8-sig", errors="replace", newline="")
    try:
        recipients, duplicates = recipient_lists.create_recipient_list(
            session=session,
            name=name,
            lines=_at_most(text, settings.max_upload_rows + 1),  # the header row
            actor=actor,
        )
    finally:
        text.detach()  # the upload closes its own file
    return RecipientListCreated(**_list(recipients).model_dump(), duplicates=duplicates)


def _at_most(lines: Iterable[str], most: int) -> Iterator[str]:
    for count, line in enumerate(lines, 1):
        if count > most:
            raise TooManyRows(most - 1)
        yield line


@list_router.get("/{list_id}", response_model=RecipientListPublic)
def get_list(list_id: IdPath, session: SessionDep, actor: CurrentUser) -> RecipientListPublic:
    """One list: its authority's people, operators, auditors and admins see it."""
    return _list(recipient_lists.get_recipient_list(session=session, list_id=list_id, actor=actor))


@list_router.get(
    "/{list_id}/rejections",
    response_model=list[RejectionPublic],
    responses={200: {"content": {"text/csv": {}}}},
)
def get_rejections(
    list_id: IdPath,
    session: SessionDep,
    actor: CurrentUser,
    format: Annotated[Literal["json", "csv"], Query(description="csv: every row, streamed")] = (
        "json"
    ),
    after_line: Annotated[
        int, Query(ge=0, le=MAX_ID, description="JSON: rows after this line (the cursor)")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="JSON: rows at most")] = MAX_PAGE,
) -> list[RejectionPublic] | StreamingResponse:
    """The rows of an upload that were refused, with line, raw value and reason."""
    recipients = recipient_lists.get_recipient_list(session=session, list_id=list_id, actor=actor)
    if format == "csv":
        filename = f"recipient-list-{list_id}-rejections.csv"
        return StreamingResponse(
            _csv(recipients, actor),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    rows = recipient_lists.list_rejections(
        session=session, recipients=recipients, after_line=after_line, limit=limit
    )
    return [_rejection(row, actor) for row in rows]


def _rejection(row: RecipientListRejection, actor: User) -> RejectionPublic:
    raw = mask(row.raw.strip()) if actor.role == Role.AUDITOR else row.raw
    return RejectionPublic(line=row.line, raw=raw, reason=row.reason)


_PAGE = 5000


def _csv(recipients: RecipientList, actor: User) -> Iterator[str]:
    # The body streams after the request's session has closed. Each page is read in a short
    # transaction of its own, so a slow download never holds SQLite's lock against the workers.
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("line", "raw", "reason"))  # every cell through spreadsheet.row
    after_line = 0
    while True:
        with Session(get_engine()) as session:
            page = list(
                recipient_lists.list_rejections(
                    session=session, recipients=recipients, after_line=after_line, limit=_PAGE
                )
            )
        for row in page:
            public = _rejection(row, actor)
            writer.writerow(spreadsheet.row((public.line, public.raw, public.reason)))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(page) < _PAGE:
            return
        after_line = page[-1].line
