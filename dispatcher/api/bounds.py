"""Bounds on what a caller may name: ids within their columns, dates in a sane range, pages.

An id beyond a 32-bit column, a date in year 9999 or a page of a million rows is refused with
422 before any query runs. Lists are pages of at most `MAX_PAGE` items; when a page is full the
answer carries a `Link: <…>; rel="next"` header with the cursor of the next page.
"""

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import Path, Query, Request, Response
from pydantic import AfterValidator

from campaigns.models import EARLIEST_YEAR, LATEST_YEAR

MAX_ID = 2**31 - 1
"""The largest id of a 32-bit integer column (campaigns, lists, audit entries)."""
MAX_PAGE = 500
MAX_OFFSET = 100_000


def _sane_day(value: date) -> date:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
    return value


def _sane_moment(value: datetime) -> datetime:
    _sane_day(value.date())
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int, Query(ge=1, le=MAX_ID)]
Day = Annotated[date, AfterValidator(_sane_day)]
Moment = Annotated[datetime, AfterValidator(_sane_moment)]
"""A time within the sane range, as UTC (a time without a zone is taken as UTC)."""
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="items at most")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip (prefer the cursor)")]
Key = Annotated[str, Query(min_length=1, max_length=64)]
"""A cursor or filter that is a name or code."""


def link_next(
    request: Request, response: Response, count: int, limit: int, **cursor: object
) -> None:
    """Add the `Link` header of the next page when this one is full."""
    if count < limit:
        return
    url = request.url.remove_query_params("offset").include_query_params(**cursor)
    response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
