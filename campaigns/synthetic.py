"""Synthetic subscribers for demos and benchmarks: valid Vietnamese mobiles spread over Gia Lai."""

import random
from collections.abc import Iterator

from sqlalchemy import insert
from sqlmodel import Session

from campaigns.areas import GIA_LAI_DISTRICTS
from campaigns.models import Subscriber
from campaigns.numbers import try_normalise

# Current mobile prefixes (after the 2018 renumbering), weighted roughly by market share.
_PREFIXES = (
    ("86", 4),
    ("96", 8),
    ("97", 8),
    ("98", 8),
    ("32", 5),
    ("33", 5),
    ("34", 5),
    ("35", 4),
    ("36", 4),
    ("37", 4),
    ("38", 4),
    ("39", 4),  # Viettel
    ("89", 3),
    ("90", 5),
    ("93", 4),
    ("70", 2),
    ("76", 2),
    ("77", 2),
    ("78", 2),
    ("79", 2),
    ("88", 3),
    ("91", 6),
    ("94", 5),
    ("83", 2),
    ("84", 2),
    ("85", 2),
    ("81", 2),
    ("82", 2),
    ("92", 2),
    ("56", 1),
    ("58", 1),
    ("99", 1),
    ("59", 1),
)


def numbers(count: int, seed: int = 2020) -> Iterator[tuple[str, str]]:
    """`count` distinct (E.164 number, district code) pairs, spread by population."""
    rng = random.Random(seed)
    prefixes = [p for p, _ in _PREFIXES]
    prefix_weights = [w for _, w in _PREFIXES]
    districts = [code for code, _, _, _ in GIA_LAI_DISTRICTS]
    populations = [people for _, _, _, people in GIA_LAI_DISTRICTS]
    seen: set[str] = set()
    while len(seen) < count:
        drawn = f"0{rng.choices(prefixes, prefix_weights)[0]}{rng.randrange(10**7):07d}"
        msisdn, _ = try_normalise(drawn)  # some blocks of a prefix are not allocated
        if msisdn is not None and msisdn not in seen:
            seen.add(msisdn)
            yield msisdn, rng.choices(districts, populations)[0]


def insert_subscribers(*, session: Session, count: int, seed: int = 2020) -> int:
    """Bulk-insert `count` synthetic active subscribers; return how many."""
    table = Subscriber.__table__  # type: ignore[attr-defined]
    rows: list[dict[str, str]] = []
    for msisdn, area_code in numbers(count, seed):
        rows.append({"msisdn": msisdn, "area_code": area_code, "status": "active"})
        if len(rows) == 20_000:
            session.connection().execute(insert(table), rows)
            rows.clear()
    if rows:
        session.connection().execute(insert(table), rows)
    return count
