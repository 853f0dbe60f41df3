"""Area endpoints: the administrative units a campaign may target, with their history."""

from datetime import date

from fastapi import APIRouter
from pydantic import BaseModel

from campaigns import areas
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
    session: SessionDep, _: CurrentUser, on: date | None = None, parent: str | None = None
) -> list[AreaPublic]:
    """Area records, only those valid `on` a date and directly below `parent` if given."""
    return [
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
    ]
