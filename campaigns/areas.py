"""Administrative units as dated records, and which registered units a target reaches.

A subscriber keeps the code of the unit it was registered under, even after that unit has been
merged away. A target therefore reaches the units below it (at any date) and the units that were
merged into it, so that one alert to the province of 2025 still reaches a subscriber registered
under a district abolished on 1 July 2025.

Codes are those of the General Statistics Office (GSO) list of administrative units.
"""

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import NamedTuple

import sqlalchemy as sa
from sqlmodel import Session, col, select

from campaigns.models import Area, AreaSuccession

# Records here start at the reference date of the 2019 census, the date of the populations below.
# The 17 units existed then (the last of them, Chư Pưh, was formed in 2009); earlier boundary
# changes are not modelled, so a listing `on` an earlier date is empty.
RECORDS_FROM = date(2019, 4, 1)
# National Assembly Resolution 202/2025/QH15: Gia Lai and Bình Định form the new Gia Lai
# province (centre: Quy Nhơn), and the district level ends, both from 1 July 2025.
MERGED_ON = date(2025, 7, 1)

GIA_LAI = "64"  # the province until 30 June 2025
BINH_DINH = "52"  # the province until 30 June 2025
# The code of the merged province in the list of provincial units in force from 1 July 2025
# (Prime Minister's Decision 19/2025/QĐ-TTg), as we understand it: 52, Bình Định's code, kept
# by the province whose centre (Quy Nhơn) lay in Bình Định. Not checked against the published
# decision itself; if it is wrong, correct this one constant (and the rows already seeded).
GIA_LAI_2025 = "52"

# Gia Lai's 17 district-level units from 2009 to 30 June 2025 (GSO codes; 636 is unused), with
# their 2019 census populations (rounded), used to spread synthetic subscribers realistically.
# Names are spelled as in the GSO list ("KBang", "Đăk Đoa", "Đăk Pơ"); the province itself
# writes "Kbang", "Đak Đoa", "Đak Pơ".
GIA_LAI_DISTRICTS: tuple[tuple[str, str, str, int], ...] = (
    ("622", "Thành phố Pleiku", "city", 254_800),
    ("623", "Thị xã An Khê", "town", 65_300),
    ("624", "Thị xã Ayun Pa", "town", 39_400),
    ("625", "Huyện KBang", "district", 67_400),
    ("626", "Huyện Đăk Đoa", "district", 126_100),
    ("627", "Huyện Chư Păh", "district", 75_000),
    ("628", "Huyện Ia Grai", "district", 99_500),
    ("629", "Huyện Mang Yang", "district", 63_500),
    ("630", "Huyện Kông Chro", "district", 47_100),
    ("631", "Huyện Đức Cơ", "district", 72_800),
    ("632", "Huyện Chư Prông", "district", 116_800),
    ("633", "Huyện Chư Sê", "district", 121_300),
    ("634", "Huyện Đăk Pơ", "district", 42_700),
    ("635", "Huyện Ia Pa", "district", 55_500),
    ("637", "Huyện Krông Pa", "district", 83_400),
    ("638", "Huyện Phú Thiện", "district", 80_200),
    ("639", "Huyện Chư Pưh", "district", 70_300),
)

_VIETNAM = timezone(timedelta(hours=7))  # no daylight saving time


class Listing(NamedTuple):
    """One area record and the codes of the units it merged into."""

    area: Area
    successors: list[str]


def _until_merger(code: str, name: str, level: str, parent_code: str | None = None) -> Area:
    return Area(
        code=code,
        name=name,
        level=level,
        parent_code=parent_code,
        valid_from=RECORDS_FROM,
        valid_to=MERGED_ON - timedelta(days=1),
    )


def _areas() -> list[Area]:
    return [
        _until_merger(GIA_LAI, "Tỉnh Gia Lai", "province"),
        _until_merger(BINH_DINH, "Tỉnh Bình Định", "province"),
        *(_until_merger(code, name, level, GIA_LAI) for code, name, level, _ in GIA_LAI_DISTRICTS),
        Area(code=GIA_LAI_2025, name="Tỉnh Gia Lai", level="province", valid_from=MERGED_ON),
    ]


def _successions() -> list[AreaSuccession]:
    old = [GIA_LAI, BINH_DINH, *(code for code, _, _, _ in GIA_LAI_DISTRICTS)]
    return [
        AreaSuccession(from_code=code, to_code=GIA_LAI_2025, effective=MERGED_ON) for code in old
    ]


def seed(session: Session) -> int:
    """Insert the areas and successions that are missing; return how many rows were added."""
    have_areas = set(session.exec(select(col(Area.code), col(Area.valid_from))).all())
    have_successions = set(
        session.exec(
            select(
                col(AreaSuccession.from_code),
                col(AreaSuccession.to_code),
                col(AreaSuccession.effective),
            )
        ).all()
    )
    rows: list[Area | AreaSuccession] = [
        a for a in _areas() if (a.code, a.valid_from) not in have_areas
    ]
    rows += [
        s for s in _successions() if (s.from_code, s.to_code, s.effective) not in have_successions
    ]
    session.add_all(rows)
    session.flush()
    return len(rows)


seed_gia_lai = seed


def _today() -> date:
    return datetime.now(UTC).astimezone(_VIETNAM).date()


def resolve(session: Session, codes: list[str], on: date | None = None) -> list[str]:
    """The codes a target reaches `on` a day (today): itself, units below or merged into it."""
    if not codes:
        return []
    day = on or _today()
    # container -> part: a unit and one directly below it, or a unit and one merged into it.
    # Units formed after `day`, and mergers after it, are not part of the target yet.
    edge = sa.union_all(
        sa.select(col(Area.parent_code).label("container"), col(Area.code).label("part")).where(
            col(Area.parent_code).is_not(None), col(Area.valid_from) <= day
        ),
        sa.select(col(AreaSuccession.to_code), col(AreaSuccession.from_code)).where(
            col(AreaSuccession.effective) <= day
        ),
    ).cte("edge")
    reach = (sa.select(edge.c.part.label("code")).where(edge.c.container.in_(codes))).cte(
        "reach", recursive=True
    )
    # UNION, not UNION ALL: it drops rows already found, so cycles (52 -> 52) end.
    reach = reach.union(sa.select(edge.c.part).join(reach, edge.c.container == reach.c.code))
    found = session.exec(select(reach.c.code)).all()
    return sorted(set(codes).union(found))


def unknown_codes(session: Session, codes: list[str]) -> list[str]:
    """The codes, in order and each once, that are no area's code."""
    if not codes:
        return []
    known = set(session.exec(select(Area.code).where(col(Area.code).in_(codes))).all())
    return [code for code in dict.fromkeys(codes) if code not in known]


def within(
    session: Session, codes: list[str], allowed: list[str], on: date | None = None
) -> list[str]:
    """The codes, in order and each once, that are NOT inside the allowed areas."""
    inside = set(resolve(session, allowed, on))
    return [code for code in dict.fromkeys(codes) if code not in inside]


def listing(
    *, session: Session, on: date | None = None, parent: str | None = None
) -> list[Listing]:
    """Area records by code and date, only those valid `on` a date or below `parent` if given."""
    conditions: list[sa.ColumnElement[bool]] = []
    if on is not None:
        conditions.append(col(Area.valid_from) <= on)
        conditions.append(sa.or_(col(Area.valid_to).is_(None), col(Area.valid_to) >= on))
    if parent is not None:
        conditions.append(col(Area.parent_code) == parent)
    records = session.exec(
        select(Area).where(*conditions).order_by(col(Area.code), col(Area.valid_from))
    ).all()
    by_code: dict[str, list[AreaSuccession]] = {}
    for succession in session.exec(
        select(AreaSuccession).where(
            col(AreaSuccession.from_code).in_(select(Area.code).where(*conditions))
        )
    ):
        by_code.setdefault(succession.from_code, []).append(succession)
    return [Listing(area, _successors(area, by_code.get(area.code, []))) for area in records]


def _successors(area: Area, successions: Iterable[AreaSuccession]) -> list[str]:
    # A succession belongs to the record that was valid the day before it took effect.
    return sorted(
        {
            s.to_code
            for s in successions
            if area.valid_from < s.effective
            and (area.valid_to is None or s.effective <= area.valid_to + timedelta(days=1))
        }
    )
