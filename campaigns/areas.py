"""Administrative units the campaigns target: Gia Lai province and its 2020 district-level units."""

from sqlmodel import Session, select

from campaigns.models import Area

GIA_LAI = "64"

# General Statistics Office codes of Gia Lai's 17 district-level units in 2020, with their
# 2019 census populations (rounded), used to spread synthetic subscribers realistically.
GIA_LAI_DISTRICTS: tuple[tuple[str, str, str, int], ...] = (
    ("622", "Thành phố Pleiku", "city", 254_800),
    ("623", "Thị xã An Khê", "town", 65_300),
    ("624", "Thị xã Ayun Pa", "town", 39_400),
    ("625", "Huyện Kbang", "district", 67_400),
    ("626", "Huyện Đak Đoa", "district", 126_100),
    ("627", "Huyện Chư Păh", "district", 75_000),
    ("628", "Huyện Ia Grai", "district", 99_500),
    ("629", "Huyện Mang Yang", "district", 63_500),
    ("630", "Huyện Kông Chro", "district", 47_100),
    ("631", "Huyện Đức Cơ", "district", 72_800),
    ("632", "Huyện Chư Prông", "district", 116_800),
    ("633", "Huyện Chư Sê", "district", 121_300),
    ("634", "Huyện Đak Pơ", "district", 42_700),
    ("635", "Huyện Ia Pa", "district", 55_500),
    ("637", "Huyện Krông Pa", "district", 83_400),
    ("638", "Huyện Phú Thiện", "district", 80_200),
    ("639", "Huyện Chư Pưh", "district", 70_300),
)


def seed_gia_lai(session: Session) -> None:
    """Insert Gia Lai and its district-level units where they are missing."""
    known = set(session.exec(select(Area.code)).all())
    wanted = [Area(code=GIA_LAI, name="Tỉnh Gia Lai", level="province")]
    wanted += [
        Area(code=code, name=name, level=level, parent_code=GIA_LAI)
        for code, name, level, _ in GIA_LAI_DISTRICTS
    ]
    session.add_all(area for area in wanted if area.code not in known)
    session.flush()


def resolve(session: Session, codes: list[str]) -> list[str]:
    """The unit codes a target reaches: each code itself and every unit below it."""
    areas = session.exec(select(Area)).all()
    children: dict[str, list[str]] = {}
    for area in areas:
        if area.parent_code:
            children.setdefault(area.parent_code, []).append(area.code)
    reached: set[str] = set()
    pending = list(codes)
    while pending:
        code = pending.pop()
        if code not in reached:
            reached.add(code)
            pending.extend(children.get(code, []))
    return sorted(reached)
