"""Synthetic subscribers for demos and benchmarks: valid Vietnamese mobiles spread over Gia Lai."""

import csv
import itertools
import random
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final, TextIO

from sqlalchemy import insert
from sqlmodel import Session

from campaigns.areas import GIA_LAI_DISTRICTS
from campaigns.models import Subscriber
from campaigns.numbers import MOBILE_PREFIXES, OLD_PREFIXES, try_normalise

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


# --- A synthetic registry file, as an operator's export might look -------------------------------

# Approximate shares of Vietnam's mobile subscriptions around 2020, rounded: a realistic mix,
# not a statistic. Each operator's share is spread evenly over its prefixes.
MARKET_SHARES: Final[Mapping[str, float]] = MappingProxyType(
    {
        "Viettel": 54.0,
        "VinaPhone": 22.0,
        "MobiFone": 19.0,
        "Vietnamobile": 3.5,
        "Gmobile": 1.0,
        "Itelecom": 0.4,
        "Reddi": 0.1,
    }
)
# `subscription` is there as real exports carry more than the importer reads.
REGISTRY_COLUMNS: Final = ("msisdn", "area_code", "status", "subscription")
MESSY_SHARE: Final = 0.01
DUPLICATE_SHARE: Final = 0.001
UNKNOWN_AREA: Final = "999"
# One of each mistake seen in real exports; the importer rejects every one.
_MESSY_NUMBERS: Final = (
    "0912ab5678",  # letters
    "091234",  # too short
    "0269 3823 456",  # a Gia Lai fixed line
    "+66 81 234 5678",  # Thailand
    "+855 12 345 678",  # Cambodia
    "",  # empty
)
_NEW_TO_OLD: Final = {new: old for old, new in OLD_PREFIXES.items()}
_BLOCK: Final = 10**7  # the subscriber numbers behind one prefix
# Odd and not a multiple of 5, so i -> i * _STRIDE mod 10^7 permutes a block: no number repeats
# by chance, and none has to be remembered to make sure of it.
_STRIDE: Final = 7_654_321
_SUB_BLOCK: Final = 10**5
_DRAWS: Final = 4096


class RowKind(StrEnum):
    """What a generated row is meant to test."""

    VALID = "valid"
    MESSY = "messy"
    DUPLICATE = "duplicate"


@dataclass
class RegistryStats:
    """What a generated registry holds: rows by kind."""

    rows: int = 0
    messy: int = 0
    duplicates: int = 0


class _Numbers:
    # Distinct valid mobiles: each prefix walks its own permutation of its block.
    def __init__(self, rng: random.Random) -> None:
        per_operator = Counter(MOBILE_PREFIXES.values())
        self.prefixes = list(MOBILE_PREFIXES)
        weights = (MARKET_SHARES[op] / per_operator[op] for op in MOBILE_PREFIXES.values())
        self.cum_weights = list(itertools.accumulate(weights))
        self.offsets = {prefix: rng.randrange(_BLOCK) for prefix in self.prefixes}
        self.used = dict.fromkeys(self.prefixes, 0)
        # Whether a sub-block of 10^5 numbers is allocated (try_normalise on its first number).
        # Allocation goes by the first digits after the prefix (0896-0899, 0522…), so this
        # answers for every number of the sub-block at a fraction of the cost.
        self.allocated: dict[tuple[str, int], bool] = {}

    def next(self, prefix: str) -> str:
        while (i := self.used[prefix]) < _BLOCK:
            self.used[prefix] = i + 1
            suffix = (i * _STRIDE + self.offsets[prefix]) % _BLOCK
            if self._allocated(prefix, suffix // _SUB_BLOCK):
                return f"+84{prefix[1:]}{suffix:07d}"
        raise ValueError(f"prefix {prefix} has no numbers left")

    def _allocated(self, prefix: str, sub_block: int) -> bool:
        key = (prefix, sub_block)
        if key not in self.allocated:
            msisdn, _ = try_normalise(f"{prefix}{sub_block * _SUB_BLOCK:07d}")
            self.allocated[key] = msisdn is not None
        return self.allocated[key]


def written(msisdn: str, draw: float) -> str:
    """An E.164 number in one of the forms people type it, chosen by `draw` in [0, 1)."""
    nsn = msisdn[3:]
    old = _NEW_TO_OLD.get("0" + nsn[:2])
    if old is not None and draw < 0.15:
        return old + nsn[2:]  # never renumbered since 2018
    forms = (
        (0.55, "0" + nsn),
        (0.65, f"0{nsn[:3]} {nsn[3:6]} {nsn[6:]}"),
        (0.75, msisdn),
        (0.80, f"+84 {nsn[:2]} {nsn[2:5]} {nsn[5:]}"),
        (0.95, msisdn[1:]),
    )
    return next((form for bound, form in forms if draw < bound), nsn)  # else: "0" lost


def registry_rows(count: int, seed: int = 2020) -> Iterator[tuple[tuple[str, ...], RowKind]]:
    """`count` rows of a synthetic registry (REGISTRY_COLUMNS) and their kinds, lazily."""
    rng = random.Random(seed)
    numbers_ = _Numbers(rng)
    districts = [code for code, _, _, _ in GIA_LAI_DISTRICTS]
    district_weights = list(itertools.accumulate(p for _, _, _, p in GIA_LAI_DISTRICTS))
    recent: deque[tuple[str, str]] = deque(maxlen=1000)
    for start in range(0, count, _DRAWS):
        k = min(count - start, _DRAWS)
        prefixes = rng.choices(numbers_.prefixes, cum_weights=numbers_.cum_weights, k=k)
        areas = rng.choices(districts, cum_weights=district_weights, k=k)
        for prefix, area in zip(prefixes, areas, strict=True):
            kind, form, state = rng.random(), rng.random(), rng.random()
            status = "active" if state < 0.96 else "inactive" if state < 0.99 else "suspended"
            plan = "prepaid" if state < 0.9 else "postpaid"
            if kind < MESSY_SHARE / 8:  # a valid number with a code no unit has
                yield (
                    (written(numbers_.next(prefix), form), UNKNOWN_AREA, status, plan),
                    (RowKind.MESSY),
                )
            elif kind < MESSY_SHARE:
                yield (rng.choice(_MESSY_NUMBERS), area, status, plan), RowKind.MESSY
            elif kind < MESSY_SHARE + DUPLICATE_SHARE and recent:
                msisdn, first_area = rng.choice(recent)  # written again; moved half the time
                area = first_area if state < 0.5 else area
                yield (written(msisdn, form), area, status, plan), RowKind.DUPLICATE
            else:
                msisdn = numbers_.next(prefix)
                recent.append((msisdn, area))
                yield (written(msisdn, form), area, status, plan), RowKind.VALID


def write_registry(*, out: TextIO, count: int, seed: int = 2020) -> RegistryStats:
    """Write a synthetic registry CSV of `count` rows to `out`, streaming; say what it holds."""
    stats = RegistryStats()
    kinds: Counter[RowKind] = Counter()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REGISTRY_COLUMNS)
    for row, kind in registry_rows(count, seed):
        writer.writerow(row)
        kinds[kind] += 1
    stats.rows = count
    stats.messy = kinds[RowKind.MESSY]
    stats.duplicates = kinds[RowKind.DUPLICATE]
    return stats
