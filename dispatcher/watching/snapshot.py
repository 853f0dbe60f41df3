"""One snapshot of what an operator watches, read from the database and from Redis.

The operator page, its live updates, the API's /metrics and `dispatcher status` all show what
`Watcher.take` returns, so they agree. Each source is read on its own: when one is away the
snapshot keeps that source's last figures with their time and names the problem, so whatever
shows it can say how old each part is instead of freezing silently.
"""

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from redis import Redis
from sqlalchemy import Connection, Engine, func, select

from campaigns.models import Authority, Campaign, CampaignStatus, Message, MessageStatus, Mode
from dispatcher.api.errors import summary
from dispatcher.db import reading
from dispatcher.sending.accounts import session_key
from dispatcher.settings import AccountSettings, Settings
from dispatcher.watching import live

S, M = CampaignStatus, MessageStatus
FINAL = (S.COMPLETED, S.REJECTED, S.CANCELLED, S.EXPIRED)
_ORDER = [S.SENDING, S.PAUSED, S.SCHEDULED, S.APPROVED, S.SUBMITTED, S.DRAFT]
MAX_CAMPAIGNS = 100
RATE_SECONDS = 10  # rates are averaged over this long
STALE_AFTER = 3.0  # seconds after which figures are called stale
LANES = ("urgent", "normal")
_FAILED = (M.UNDELIVERABLE, M.EXPIRED, M.REJECTED, M.FAILED, M.UNKNOWN, M.CANCELLED)
_campaign = Campaign.__table__  # type: ignore[attr-defined]
_message = Message.__table__  # type: ignore[attr-defined]
_authority = Authority.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class CampaignView:
    """A campaign not yet final, and how far along it is."""

    id: int
    title: str
    authority: str
    priority: str
    exercise: bool
    status: str
    recipients: int
    counts: dict[str, int]
    in_doubt: int
    rate: float | None = None  # messages answered or ended per second, lately
    eta_seconds: float | None = None

    @property
    def delivered(self) -> int:
        """Messages the network delivered."""
        return self.counts.get(M.DELIVERED, 0)

    @property
    def failed(self) -> int:
        """Messages that ended otherwise (including unknown and cancelled)."""
        return sum(self.counts.get(status, 0) for status in _FAILED)

    @property
    def waiting(self) -> int:
        """Messages not yet written to the SMSC (queued, or held by a bind)."""
        return self.counts.get(M.QUEUED, 0) + self.counts.get(M.SUBMITTING, 0)

    @property
    def pending(self) -> int:
        """Messages not final: waiting, or submitted and awaiting their receipt."""
        return self.waiting + self.counts.get(M.SUBMITTED, 0)

    def percent(self, part: int) -> float:
        """`part` as a percentage of the recipients."""
        return 100.0 * part / self.recipients if self.recipients else 0.0


@dataclass(frozen=True)
class DatabaseFigures:
    """What the database says, at `at` (epoch seconds)."""

    at: float
    campaigns: list[CampaignView]
    lanes: dict[str, int]
    in_doubt: int  # messages ended `unknown` for a doubt, all campaigns


@dataclass(frozen=True)
class BindView:
    """One of an account's session slots: who holds it and how its bind is doing."""

    name: str
    holder: str | None  # the worker's lease, e.g. "3:0"
    state: str  # up, down, refused, or "not held" / "silent" when no worker reports it
    window_in_use: int
    window: int
    rate: float  # accepted submits/s over the last RATE_SECONDS
    answers: dict[str, int]  # other than accepted, by code name, last minute


@dataclass(frozen=True)
class AccountView:
    """An SMSC account: contract, achieved rate, binds, and answers of the last minute."""

    name: str
    contracted: float  # submits/s, 0 = none
    achieved: float
    binds: list[BindView]
    answers: dict[str, int]  # other than accepted, by code name, last minute
    receipts: float  # receipts/s

    @property
    def up(self) -> int:
        """Binds that are bound."""
        return sum(1 for bind in self.binds if bind.state == "up")


@dataclass(frozen=True)
class RedisFigures:
    """What the workers published, at `at`."""

    at: float
    accounts: list[AccountView]
    unmatched: int
    abandoned: int
    chart: list[tuple[int, int, int]]  # (epoch second, accepted submits, receipts)


@dataclass
class Snapshot:
    """The figures, with how old each part is and what could not be read."""

    taken_at: float
    database: DatabaseFigures | None
    redis: RedisFigures | None
    problems: dict[str, str] = field(default_factory=dict)

    def age(self, now: float | None = None) -> float:
        """Seconds since the older of the two parts was read (infinite if one never was)."""
        now = time.time() if now is None else now
        parts = [self.database, self.redis]
        if any(part is None for part in parts):
            return float("inf")
        return max(now - part.at for part in parts if part is not None)

    def stale(self, now: float | None = None) -> bool:
        """Whether the figures cannot be trusted as current."""
        return bool(self.problems) or self.age(now) > STALE_AFTER


class Watcher:
    """Takes snapshots; keeps the last good part of each source and recent campaign progress."""

    def __init__(self, settings: Settings, engine: Engine, redis: Redis) -> None:
        self.settings = settings
        self.engine = engine
        self.redis = redis
        self.last = Snapshot(time.time(), None, None)
        self._progress: deque[tuple[float, dict[int, int]]] = deque()

    def take(self) -> Snapshot:
        """Read both sources now; a source that fails keeps its previous figures."""
        now = time.time()
        snapshot = Snapshot(now, self.last.database, self.last.redis)
        try:
            snapshot.database = self._read_database(now)
        except Exception as error:
            snapshot.problems["database"] = summary(error)
        try:
            snapshot.redis = read_redis(self.redis, self.settings, now)
        except Exception as error:
            snapshot.problems["redis"] = summary(error)
        self.last = snapshot
        return snapshot

    def _read_database(self, now: float) -> DatabaseFigures:
        figures = read_database(self.engine)
        processed = {c.id: c.recipients - c.waiting for c in figures.campaigns}
        self._progress.append((now, processed))
        while self._progress and now - self._progress[0][0] > RATE_SECONDS:
            self._progress.popleft()
        then, before = self._progress[0]
        campaigns = []
        for view in figures.campaigns:
            rate = eta = None
            if now - then >= 0.5 and view.id in before:
                rate = max(0.0, (processed[view.id] - before[view.id]) / (now - then))
                sending = view.status == S.SENDING
                eta = view.waiting / rate if rate > 0 and sending else None
            campaigns.append(replace(view, rate=rate, eta_seconds=eta))
        return DatabaseFigures(now, campaigns, figures.lanes, figures.in_doubt)


def read_database(engine: Engine) -> DatabaseFigures:
    """Campaigns not yet final with their counts, queue depth per lane, messages in doubt."""
    with reading(engine).connect() as connection:
        campaigns = connection.execute(
            select(
                _campaign.c.id,
                _campaign.c.title,
                _authority.c.code,
                _campaign.c.priority,
                _campaign.c.mode,
                _campaign.c.status,
                _campaign.c.recipients,
            )
            .join(_authority, _authority.c.id == _campaign.c.authority_id)
            .where(_campaign.c.status.not_in(FINAL))
        ).all()
        campaigns = sorted(campaigns, key=lambda row: (_ORDER.index(row.status), row.id))
        campaigns = campaigns[:MAX_CAMPAIGNS]
        counts = _counts(connection, campaigns)
        doubts = _doubts(connection)
    lanes = dict.fromkeys(LANES, 0)
    views = []
    for row in campaigns:
        view = CampaignView(
            id=row.id,
            title=row.title,
            authority=row.code,
            priority=row.priority,
            exercise=row.mode == Mode.EXERCISE,
            status=row.status,
            recipients=row.recipients,
            counts=counts[row.id],
            in_doubt=doubts.get(row.id, 0),
        )
        if row.status == S.SENDING:
            lane = row.priority if row.priority in LANES else "normal"
            lanes[lane] += view.counts.get(M.QUEUED, 0)
        views.append(view)
    return DatabaseFigures(time.time(), views, lanes, sum(doubts.values()))


def _counts(connection: Connection, campaigns: Sequence[Any]) -> dict[int, dict[str, int]]:
    """Messages by status of each campaign (only sending and paused ones have messages)."""
    counts: dict[int, dict[str, int]] = {row.id: {} for row in campaigns}
    with_messages = [row.id for row in campaigns if row.status in (S.SENDING, S.PAUSED)]
    if with_messages:
        for campaign_id, status, count in connection.execute(
            select(_message.c.campaign_id, _message.c.status, func.count())
            .where(_message.c.campaign_id.in_(with_messages))
            .group_by(_message.c.campaign_id, _message.c.status)
        ):
            counts[campaign_id][status] = count
    return counts


def _doubts(connection: Connection) -> dict[int, int]:
    """Messages ended `unknown` for a doubt, by campaign, all campaigns (index per campaign)."""
    rows = connection.execute(
        select(_message.c.campaign_id, func.count())
        .where(
            _message.c.campaign_id.in_(select(_campaign.c.id)),
            _message.c.status == M.UNKNOWN,
            _message.c.doubt.is_not(None),
        )
        .group_by(_message.c.campaign_id)
    ).all()
    return {int(campaign_id): int(count) for campaign_id, count in rows}


def read_redis(redis: Redis, settings: Settings, now: float | None = None) -> RedisFigures:
    """Accounts and binds as the workers published them, with their session leases."""
    now = time.time() if now is None else now
    figures = live.read(redis, settings.queue_name, now=now)
    until = int(now)
    accounts = [
        _account(redis, settings.queue_name, account, figures, until) for account in settings.binds
    ]
    chart = [
        (
            second,
            sum(v for k, v in figures.seconds.get(second, {}).items() if k.startswith("ok|")),
            sum(v for k, v in figures.seconds.get(second, {}).items() if k.startswith("rc|")),
        )
        for second in range(until - live.CHART_SECONDS, until)
    ]
    return RedisFigures(
        at=now,
        accounts=accounts,
        # Read from the database by every worker: the same figure, not one to add up.
        unmatched=max((worker.unmatched for worker in figures.workers), default=0),
        abandoned=max((worker.abandoned for worker in figures.workers), default=0),
        chart=chart,
    )


def _account(
    redis: Redis, namespace: str, account: AccountSettings, figures: live.Live, until: int
) -> AccountView:
    """One account: each session slot's holder and bind, the account's rates and answers."""
    since, minute = until - RATE_SECONDS, until - 60
    keys = [session_key(namespace, account.name, slot) for slot in range(account.max_sessions)]
    holders = cast(list[bytes | None], redis.mget(keys))
    binds = []
    for slot, holder in enumerate(holders):
        name = f"{account.name}#{slot}"
        state = figures.binds.get(name)
        accepted = figures.total(live.ACCEPTED, since=since, until=until, bind=name)
        binds.append(
            BindView(
                name=name,
                holder=holder.decode() if isinstance(holder, bytes) else holder,
                state=state.state if state else ("silent" if holder else "not held"),
                window_in_use=state.window_in_use if state else 0,
                window=state.window if state else account.window,
                rate=accepted / RATE_SECONDS,
                answers=figures.by_code([name], since=minute, until=until),
            )
        )
    mine = [bind.name for bind in binds]
    received = sum(figures.total(live.RECEIVED, since=since, until=until, bind=b) for b in mine)
    return AccountView(
        name=account.name,
        contracted=account.rate,
        achieved=sum(bind.rate for bind in binds),
        binds=binds,
        answers=figures.by_code(mine, since=minute, until=until),
        receipts=received / RATE_SECONDS,
    )
