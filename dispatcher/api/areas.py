"""Area endpoints: the administrative units a campaign may target, with their history."""

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from campaigns import areas
from dispatcher.api.bounds import MAX_PAGE, Day, Key, PageLimit, link_next
from dispatcher.api.deps import CurrentUser, SessionDep

router = APIRouter(prefix="/v1/areas", tags=["areas"])


class AreaPublic(BaseModel):
    """An administrative unit as it was between two dates, and the units it merged into."""

    code: str
    name: str
    level: str
    parent_code: str | None
    valid_from: date
    valid_to: date | None
    successors: list[str]


@router.get("", response_model=list[AreaPublic])
def list_areas(
    request: Request,
    response: Response,
    session: SessionDep,
    _: CurrentUser,
    on: Day | None = None,
    parent: Key | None = None,
    after: Annotated[
        str | None,
        Query(max_length=40, description="the next page: after this `code@valid_from`"),
    ] = None,
    limit: PageLimit = MAX_PAGE,
) -> list[AreaPublic]:
    """Area records by code and date, only those valid `on` a date and below `parent` if given."""
    found = sorted(
        (
            AreaPublic(
                code=area.code,
                name=area.name,
                level=area.level,
                parent_code=area.parent_code,
                valid_from=area.valid_from,
                valid_to=area.valid_to,
                successors=successors,
            )
            for area, successors in areas.listing(session=session, on=on, parent=parent)
        ),
        key=_key,  # here, not by the database's collation, so the cursor compares the same way
    )
    # A few dozen records: the page is cut here rather than in the query.
    cursor = tuple(after.rsplit("@", 1)) if after is not None else None
    page = [area for area in found if cursor is None or _key(area) > cursor][:limit]
    if page:
        link_next(request, response, len(page), limit, after="@".join(_key(page[-1])))
    return page


def _key(area: AreaPublic) -> tuple[str, str]:
    return area.code, area.valid_from.isoformat()
