"""What a campaign's messages came to: counts by status, area, hour and error, delivery times.

Every figure is read with index range scans (migration 0004), never a sort of the campaign's
messages, so a report of 2,000,000 messages stays under two seconds on SQLite and PostgreSQL:

- ended messages by area, status and error: one GROUP BY along `ix_message_final` (campaign,
  area, status, last command_status, error code; ended messages only), whose order is the
  grouping; recipients by area along `ix_message_campaign_area`; pending messages by status
  along `ix_message_campaign_status_id`;
- by hour: one count per hour of a range of `ix_message_campaign_submitted` (submitted) and
  `ix_message_delivered_done` (delivered), but for the hour that overlaps the sending
  most, which is what is left of the total;
- reach times: the k-th delivered message in `done_at` order, an OFFSET along the same index;
- delivery times: the k-th delivered message in order of its delay, an OFFSET along
  `ix_message_delivered_delay`, an index on the delay itself. Both index delivered messages
  only, so the sending engine's many status changes before delivery never touch them.

Percentiles are nearest-rank: p50 of n values is the ceil(0.5·n)-th smallest. Delivery times
run from the stored submit answer to the stored receipt (`submitted_at` to `done_at`).
"""

import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, col, select

from campaigns.models import Area, MessageStatus, UtcDateTime

M = MessageStatus
PENDING = (M.QUEUED, M.SUBMITTING, M.SUBMITTED)
FAILED = (M.UNDELIVERABLE, M.EXPIRED, M.REJECTED, M.FAILED)
PERCENTILES = (0.50, 0.90, 0.99)
_HOUR = timedelta(hours=1)
T = TypeVar("T")


def delay_expression(dialect: str) -> str:
    """SQL for a message's seconds from submit to receipt; the same text indexes it (0004)."""
    if dialect == "postgresql":
        return "(date_part('epoch', done_at - submitted_at))"
    return "((julianday(done_at) - julianday(submitted_at)) * 86400.0)"


@dataclass(frozen=True)
class AreaCounts:
    """A registered area's recipients by outcome; code None for numbers outside the registry."""

    code: str | None
    name: str | None
    recipients: int
    delivered: int
    failed: int
    pending: int
    unknown: int
    cancelled: int


@dataclass(frozen=True)
class HourCounts:
    """Messages submitted, and messages delivered, in one UTC hour starting at `hour`."""

    hour: datetime
    submitted: int
    delivered: int


@dataclass(frozen=True)
class ErrorCount:
    """Messages whose last command_status (kind `command_status`) or receipt ended in `code`."""

    kind: str  # "command_status" or "receipt"
    code: int | None
    status: str  # the message's status: what the error came to
    messages: int


@dataclass(frozen=True)
class Percentiles(Generic[T]):
    """p50, p90 and p99, None where there are too few values."""

    p50: T | None
    p90: T | None
    p99: T | None


@dataclass(frozen=True)
class Figures:
    """Everything the report says about a campaign's messages."""

    messages: int
    by_status: dict[str, int]
    by_area: list[AreaCounts]
    by_hour: list[HourCounts]
    by_error: list[ErrorCount]
    delivery_seconds: Percentiles[float]
    reached: Percentiles[datetime]


def compute(*, session: Session, campaign_id: int, on: date | None = None) -> Figures:
    """The report's figures for one campaign (area names as they were `on` a day)."""
    with _index_scans(session):
        final = _final_groups(session, campaign_id)
        by_status: Counter[str] = _pending_by_status(session, campaign_id)
        for (_, status, _, _), count in final.items():
            by_status[status] += count
        messages = sum(by_status.values())
        delivered = by_status[M.DELIVERED]
        return Figures(
            messages=messages,
            by_status=dict(sorted((status, n) for status, n in by_status.items() if n)),
            by_area=_by_area(session, campaign_id, final, on),
            by_hour=_by_hour(session, campaign_id, messages, delivered),
            by_error=_by_error(final),
            delivery_seconds=_delays(session, campaign_id, delivered),
            reached=_reached(session, campaign_id, delivered, messages),
        )


_PLANNER = ("enable_seqscan", "enable_bitmapscan")


@contextmanager
def _index_scans(session: Session) -> Iterator[None]:
    """On PostgreSQL, index-only range scans rather than a scan of the whole table.

    A range that holds most of a campaign looks to the planner like a case for reading the
    table, in parallel; along the narrow index it is several times cheaper. The settings are
    put back as they were, within the transaction, when the report is done.
    """
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    connection = session.connection()
    before = {name: connection.exec_driver_sql(f"SHOW {name}").scalar_one() for name in _PLANNER}
    for name in _PLANNER:
        connection.execute(sa.text("SELECT set_config(:name, 'off', true)"), {"name": name})
    # Not in a `finally`: after a failure the transaction is lost anyway, and with it these
    # transaction-local settings; putting them back would only hide the error (a database
    # restarting would then answer 500 instead of 503).
    yield
    for name, value in before.items():
        connection.execute(
            sa.text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value}
        )


def rank(fraction: float, count: int) -> int:
    """The 1-based nearest rank of a percentile among `count` values."""
    return max(1, math.ceil(round(fraction * count, 9)))


Group = tuple[str | None, str, int | None, int | None]


def _table(session: Session, index: str) -> str:
    # SQLite's planner, without statistics (no ANALYZE), can take the wrong one of two indexes
    # that start alike and then sort two million rows: it is told which one to use.
    if session.get_bind().dialect.name == "sqlite":
        return f"message INDEXED BY {index}"
    return "message"


def _rows(session: Session, sql: str, **parameters: Any) -> list[Any]:
    statement = sa.text(sql).bindparams(
        *(
            sa.bindparam(name, type_=UtcDateTime())
            for name, value in parameters.items()
            if isinstance(value, datetime)
        )
    )
    return list(session.connection().execute(statement, parameters).all())


# Final messages only (a partial index), so that claims and submit answers, which change a
# message's status many times a second, never touch it; pending messages are counted apart.
FINAL_ONLY = "status NOT IN ('queued', 'submitting', 'submitted')"


def _final_groups(session: Session, campaign_id: int) -> dict[Group, int]:
    rows = _rows(
        session,
        "SELECT area_code, status, last_status, error_code, COUNT(*) "
        f"FROM {_table(session, 'ix_message_final')} WHERE campaign_id = :campaign "
        f"AND {FINAL_ONLY} GROUP BY area_code, status, last_status, error_code",
        campaign=campaign_id,
    )
    return {(area, str(status), last, error): count for area, status, last, error, count in rows}


def _pending_by_status(session: Session, campaign_id: int) -> Counter[str]:
    table = _table(session, "ix_message_campaign_status_id")
    return Counter(
        {
            status.value: _rows(
                session,
                f"SELECT COUNT(*) FROM {table} WHERE campaign_id = :campaign AND status = :status",
                campaign=campaign_id,
                status=status.value,
            )[0][0]
            for status in PENDING
        }
    )


def _by_area(
    session: Session, campaign_id: int, final: dict[Group, int], on: date | None
) -> list[AreaCounts]:
    recipients = dict(
        _rows(
            session,
            f"SELECT area_code, COUNT(*) FROM {_table(session, 'ix_message_campaign_area')} "
            "WHERE campaign_id = :campaign GROUP BY area_code",
            campaign=campaign_id,
        )
    )
    counts: dict[str | None, Counter[str]] = defaultdict(Counter)
    for (area, status, _, _), count in final.items():
        counts[area][status] += count
    names = _area_names(session, [code for code in recipients if code is not None], on)
    return [
        AreaCounts(
            code=code,
            name=names.get(code) if code is not None else None,
            recipients=total,
            delivered=counts[code][M.DELIVERED],
            failed=sum(counts[code][s] for s in FAILED),
            # What has not ended yet; read apart from the rest while sending, so kept >= 0.
            pending=max(0, total - sum(counts[code].values())),
            unknown=counts[code][M.UNKNOWN],
            cancelled=counts[code][M.CANCELLED],
        )
        for code, total in sorted(
            recipients.items(), key=lambda item: (item[0] is None, item[0] or "")
        )
    ]


def _area_names(session: Session, codes: list[str], on: date | None) -> dict[str, str]:
    # The record in force `on` the day wins; otherwise the latest record of the code.
    records = session.exec(
        select(Area).where(col(Area.code).in_(codes)).order_by(col(Area.valid_from))
    ).all()
    names: dict[str, str] = {}
    for area in records:
        current = on is None or (
            area.valid_from <= on and (area.valid_to is None or on <= area.valid_to)
        )
        if current or area.code not in names:
            names[area.code] = area.name
    return names


def _by_error(groups: dict[Group, int]) -> list[ErrorCount]:
    counts: Counter[tuple[str, int | None, str]] = Counter()
    for (_, status, last, error), count in groups.items():
        if last not in (None, 0):
            counts["command_status", last, status] += count
        elif status in FAILED:
            counts["receipt", error, status] += count
    return [
        ErrorCount(kind=kind, code=code, status=status, messages=count)
        for (kind, code, status), count in sorted(
            counts.items(), key=lambda item: (item[0][0], -item[1], item[0][1] or -1)
        )
    ]


_SENT = "ix_message_campaign_submitted"
_DONE = "ix_message_delivered_done"
_DELAY = "ix_message_delivered_delay"
# Both hold delivered messages only (partial indexes), so that claims and submit answers, which
# change a message's status many times a second, never touch them. The condition is written
# as a constant, as the planners need it to use a partial index.
DELIVERED_ONLY = "status = 'delivered'"


@dataclass(frozen=True)
class _Series:
    """Timestamps of one column read along one index, counted hour by hour."""

    session: Session
    index: str
    column: str
    where: str
    parameters: dict[str, Any]

    def _select(self, what: str, condition: str = "", tail: str = "", **more: Any) -> Any:
        sql = (
            f"SELECT {what} FROM {_table(self.session, self.index)} "
            f"WHERE campaign_id = :campaign {self.where} {condition} {tail}"
        )
        rows = _rows(self.session, sql, **self.parameters, **more)
        return rows[0][0] if rows else None

    def span(self) -> tuple[datetime, datetime] | None:
        """The first and the last timestamp, None if there is none."""
        c = self.column
        first = self._select(c, f"AND {c} IS NOT NULL", f"ORDER BY {c} LIMIT 1")
        last = self._select(c, f"AND {c} IS NOT NULL", f"ORDER BY {c} DESC LIMIT 1")
        return None if first is None else (_utc(first), _utc(last))

    def missing(self) -> int:
        """How many rows have no timestamp (a short walk: the index keeps them together)."""
        return int(self._select("COUNT(*)", f"AND {self.column} IS NULL"))

    def count(self, start: datetime, end: datetime) -> int:
        """How many timestamps fall in [start, end)."""
        c = self.column
        window = f"AND {c} >= :start AND {c} < :end"
        return int(self._select("COUNT(*)", window, start=start, end=end))

    def per_hour(
        self, hours: list[datetime], total: int, likely: list[int] | None = None
    ) -> list[int]:
        """Counts per hour, `total` in all: the hour likely the largest is what remains.

        The hour not walked is the largest of `likely` counts if given, else the one that
        overlaps the span of timestamps most (with sending at a steady rate, the fullest).
        """
        span = self.span()
        if span is None:
            return [0] * len(hours)
        weights: list[float] = (
            [*likely]
            if likely
            else [(min(h + _HOUR, span[1]) - max(h, span[0])) / _HOUR for h in hours]
        )
        skipped = weights.index(max(weights))
        counts = [0 if i == skipped else self.count(h, h + _HOUR) for i, h in enumerate(hours)]
        counts[skipped] = max(0, total - sum(counts))
        return counts


def _by_hour(session: Session, campaign_id: int, messages: int, delivered: int) -> list[HourCounts]:
    """Submitted and delivered per hour; the totals are known, so one hour each is derived.

    Read apart from the totals while messages are still sent, a derived hour may lag its true
    count by the moments between two reads; once sending is over the figures are exact.
    """
    sent = _Series(session, _SENT, "submitted_at", "", {"campaign": campaign_id})
    done = _Series(
        session,
        _DONE,
        "done_at",
        f"AND {DELIVERED_ONLY}",
        {"campaign": campaign_id},
    )
    sent_span = sent.span()
    if sent_span is None:
        return []
    done_span = done.span()
    start = sent_span[0].replace(minute=0, second=0, microsecond=0)
    end = max(sent_span[1], done_span[1] if done_span else sent_span[1])
    hours = [start + _HOUR * i for i in range(int((end - start) / _HOUR) + 1)]
    unsent = sent.missing()
    submitted = sent.per_hour(hours, messages - unsent)
    delivered_counts = done.per_hour(hours, delivered, likely=submitted)
    return [HourCounts(*row) for row in zip(hours, submitted, delivered_counts, strict=True)]


def _utc(value: Any) -> datetime:
    # Read through text(), SQLite's timestamps come back as the text they are stored as.
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _kth(session: Session, expression: str, index: str, campaign_id: int, k: int, n: int) -> Any:
    """The k-th smallest `expression` (1-based) among the campaign's n delivered messages.

    Walked from the nearer end of the index, so p99 of two million costs 20,000 steps.
    """
    ascending = k <= n - k + 1
    order, offset = ("ASC", k - 1) if ascending else ("DESC", n - k)
    rows = _rows(
        session,
        f"SELECT {expression} FROM {_table(session, index)} "
        f"WHERE campaign_id = :campaign AND {DELIVERED_ONLY} "
        f"ORDER BY {expression} {order} LIMIT 1 OFFSET {int(offset)}",
        campaign=campaign_id,
    )
    return rows[0][0]


def _reached(
    session: Session, campaign_id: int, delivered: int, messages: int
) -> Percentiles[datetime]:
    """When ceil(p · messages) of the campaign's messages had been delivered."""
    found: list[datetime | None] = []
    for fraction in PERCENTILES:
        k = rank(fraction, messages)
        if messages == 0 or k > delivered:
            found.append(None)
        else:
            found.append(_utc(_kth(session, "done_at", _DONE, campaign_id, k, delivered)))
    return Percentiles(*found)


def _delays(session: Session, campaign_id: int, delivered: int) -> Percentiles[float]:
    """Nearest-rank percentiles of the delivered messages' seconds from submit to receipt."""
    if delivered == 0:
        return Percentiles(None, None, None)
    delay = delay_expression(session.get_bind().dialect.name)
    found = []
    for fraction in PERCENTILES:
        value = _kth(session, delay, _DELAY, campaign_id, rank(fraction, delivered), delivered)
        found.append(round(float(value), 3))
    return Percentiles(*found)
