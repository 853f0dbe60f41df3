"""The leader's periodic work: dead workers, expiry, completion, receipt timeout, lost jobs.

Every worker competes for one Redis lock each second; only the holder does the work, so the
database sees one set of these queries however many workers run.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

import redis
from arq.connections import ArqRedis
from sqlalchemy import Engine, literal_column, select, update
from sqlmodel import col
from sqlmodel import select as select_rows

from campaigns import execution
from campaigns.models import Campaign, CampaignStatus, Message, MessagePart, MessageStatus, utcnow
from dispatcher import queue as jobs
from dispatcher.db import session_scope
from dispatcher.sending import halts, wirelog, workers
from dispatcher.sending.accounts import LeaderLock
from dispatcher.sending.matching import expire_pending
from dispatcher.settings import Settings

log = logging.getLogger("dispatcher.housekeeping")

INTERVAL = 1.0
SLOW_EVERY = 10  # receipt timeout and lost jobs: every this many ticks
S = CampaignStatus
_message = Message.__table__  # type: ignore[attr-defined]
_part = MessagePart.__table__  # type: ignore[attr-defined]


@dataclass
class Housekeeper:
    """What the leader does; `tick` runs on a worker thread."""

    engine: Engine
    settings: Settings
    redis: redis.Redis
    beats_ok_since: float = field(default_factory=time.monotonic)  # set by the heartbeat
    ticks: int = 0

    def tick(self) -> list[tuple[int, int]]:
        """One round; returns the expansions to queue again (campaign, generation)."""
        self.ticks += 1
        self._recover_dead_workers()
        lost = self._campaigns(slow=self.ticks % SLOW_EVERY == 1)
        if self.ticks % SLOW_EVERY == 1:
            expire_unanswered(self.engine, self.settings.receipt_timeout)
            expire_pending(self.engine, self.settings.unmatched_receipt_ttl)
        return lost

    def _recover_dead_workers(self) -> None:
        # Only once this worker's own heartbeats have gone through for a while: after a database
        # outage every worker's heartbeat is old, and none of them is dead.
        if time.monotonic() - self.beats_ok_since < self.settings.worker_dead_after:
            return
        namespace = self.settings.queue_name
        for worker_id in workers.needing_recovery(self.engine, self.settings.worker_dead_after):
            written = wirelog.written(self.redis, namespace, worker_id)
            heard = wirelog.heard(self.redis, namespace, worker_id) if written is not None else None
            answered, queued, in_doubt = workers.recover(self.engine, worker_id, written, heard)
            wirelog.drop(self.redis, namespace, worker_id)
            log.warning(
                "worker %d is gone: %d answers stored for it, %d messages queued again, "
                "%d in doubt%s",
                worker_id,
                answered,
                queued,
                in_doubt,
                "" if written is not None else " (its write-ahead log was lost)",
            )

    def _campaigns(self, *, slow: bool) -> list[tuple[int, int]]:
        lost: list[tuple[int, int]] = []
        with session_scope(self.engine) as session:
            active = session.exec(
                select_rows(Campaign).where(
                    col(Campaign.status).in_([S.APPROVED, S.SCHEDULED, S.SENDING, S.PAUSED])
                )
            ).all()
            self._release_stale_halts({c.id for c in active if c.status == S.SENDING})
            for campaign in active:
                if execution.expire_if_due(session=session, campaign=campaign, now=utcnow()):
                    log.info("campaign %d expired", campaign.id)
                elif campaign.status == S.SENDING:
                    if execution.complete_if_done(session=session, campaign=campaign):
                        log.info("campaign %d completed", campaign.id)
                elif slow and self._waits_for_expansion(campaign):
                    assert campaign.id is not None
                    lost.append((campaign.id, campaign.generation))
        return lost

    def _release_stale_halts(self, sending: set[int | None]) -> None:
        """A resume whose halt release was lost with Redis: the database says it is sending."""
        key = halts.key(self.settings.queue_name)
        try:
            halted = cast(dict[bytes, bytes], self.redis.hgetall(key))
            stale = [k.decode() for k, v in halted.items() if v == b"paused" and int(k) in sending]
            if stale:
                self.redis.hdel(key, *stale)
                log.warning("released %d stale pauses", len(stale))
        except redis.RedisError:
            pass

    def _waits_for_expansion(self, campaign: Campaign) -> bool:
        """Approved (or due) for a while and not expanded: its job was lost or failed."""
        quiet = timedelta(seconds=self.settings.requeue_after)
        now = utcnow()
        due = campaign.status == S.APPROVED or (
            campaign.status == S.SCHEDULED
            and campaign.send_start is not None
            and campaign.send_start < now - quiet
        )
        approved = campaign.approved_at
        return due and approved is not None and approved < now - quiet


def expire_unanswered(engine: Engine, timeout: float) -> int:
    """Messages still without a receipt `timeout` seconds after their submit end `unknown`."""
    cutoff = utcnow() - timedelta(seconds=timeout)
    now = utcnow()
    # The status as a literal: on SQLite only that selects the partial ix_message_submitted_at.
    submitted = _message.c.status == literal_column("'submitted'")
    late = select(_message.c.id).where(submitted, _message.c.submitted_at < cutoff)
    with engine.begin() as connection:
        connection.execute(
            update(_part)
            .where(_part.c.message_id.in_(late), _part.c.status == MessageStatus.SUBMITTED)
            .values(status=MessageStatus.UNKNOWN, done_at=now)
        )
        result = connection.execute(
            update(_message)
            .where(submitted, _message.c.submitted_at < cutoff)
            .values(status=MessageStatus.UNKNOWN, done_at=now)
        )
    return int(result.rowcount)


async def lead(keeper: Housekeeper, lock: LeaderLock, owner: str, pool: ArqRedis) -> None:
    """Compete for the leader's lock every second; do the work while holding it."""
    leading = False
    while True:
        await asyncio.sleep(INTERVAL)
        try:
            now_leading = await lock.hold(owner)
        except redis.RedisError:
            now_leading = False
        if now_leading != leading:
            log.info("%s housekeeping leader", "became" if now_leading else "is no longer")
            leading = now_leading
        if not leading:
            continue
        try:
            lost = await asyncio.to_thread(keeper.tick)
            for campaign_id, generation in lost:
                await jobs.enqueue_expansion(pool, campaign_id, generation, again=True)
            if lost:
                log.warning("queued again: %d expansions without a job", len(lost))
        except Exception as error:
            # Not the message: a failed statement's text carries its parameters (numbers).
            log.warning("housekeeping failed: %s", type(error).__name__)
