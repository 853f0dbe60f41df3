"""The arq worker: expands campaigns, sends batches over its SMPP binds, records receipts."""

import asyncio
import logging
import queue
import time
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

from arq import Worker
from arq.connections import ArqRedis
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from campaigns import audit, content, execution
from campaigns.models import Campaign, CampaignStatus, utcnow
from campaigns.service import sent_text
from dispatcher import delivery
from dispatcher import queue as jobs
from dispatcher.db import get_engine, session_scope
from dispatcher.halts import HaltBoard
from dispatcher.settings import BindSettings, Settings, get_settings
from dispatcher.smpp.bind import (
    Ack,
    BindSession,
    Content,
    Part,
    Submission,
    SubmitResult,
    Ticket,
)
from dispatcher.smpp.receipts import Receipt

log = logging.getLogger("dispatcher.worker")

HOUSEKEEPING_INTERVAL = 1.0
RECEIPT_FLUSH_INTERVAL = 0.2
CLAIM_SIZE = 100  # messages a send job takes at a time: at most this many per job in doubt
STALE_MARGIN = 10.0  # seconds past the job timeout before a claim counts as abandoned
LOST_JOB_CHECK_TICKS = 10  # look for lost jobs every this many housekeeping ticks
S = CampaignStatus


class Sending:
    """This process's SMPP binds and the receipts and bind events they bring back."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.halts = HaltBoard()
        self.receipts: queue.SimpleQueue[tuple[Receipt, Ack]] = queue.SimpleQueue()
        self.bind_events: queue.SimpleQueue[tuple[str, bool]] = queue.SimpleQueue()
        self.matcher = delivery.ReceiptMatcher(engine)
        self.binds = [
            BindSession(
                bind,
                lambda receipt, ack: self.receipts.put((receipt, ack)),
                on_state=lambda name, up: self.bind_events.put((name, up)),
                halted=self.halts.reason,
            )
            for bind in settings.binds
        ]

    def start(self) -> None:
        """Start every bind's thread."""
        for bind in self.binds:
            bind.start()

    def stop(self) -> None:
        """Unbind cleanly."""
        for bind in self.binds:
            bind.stop()

    async def submit(self, content: Content, rows: list[tuple[int, str]]) -> list[SubmitResult]:
        """Submit messages on the least busy bind and wait for every answer."""
        ticket = Ticket(asyncio.get_running_loop(), content, len(rows))
        bind = min(self.binds, key=lambda b: (not b.bound.is_set(), b.backlog()))
        bind.submit([Submission(message_id, msisdn, ticket) for message_id, msisdn in rows])
        return await ticket.future

    def drain_receipts(self) -> list[tuple[Receipt, Ack]]:
        """Receipts that arrived since the last call, with their acknowledgements."""
        return _drain(self.receipts)

    def record_receipts(self) -> None:
        """Store the receipts that came in; then, and only then, acknowledge them."""
        for ack in self.matcher.apply(self.drain_receipts()):
            ack()


def _drain(source: "queue.SimpleQueue[Any]") -> list[Any]:
    drained = []
    while True:
        try:
            drained.append(source.get_nowait())
        except queue.Empty:
            return drained


def content_for(campaign: Campaign, bind: BindSettings, settings: Settings) -> Content:
    """The submit_sm fields every message of the campaign shares."""
    assert campaign.id is not None
    parts = content.split(
        sent_text(campaign, settings.policy),
        reference=campaign.id % 255 + 1,
        max_parts=settings.max_parts,
    )
    alphanumeric = not campaign.sender.isdigit()
    expiry = campaign.send_expiry
    return Content(
        campaign_id=campaign.id,
        source_addr=campaign.sender,
        source_addr_ton=5 if alphanumeric else bind.source_addr_ton,
        source_addr_npi=0 if alphanumeric else bind.source_addr_npi,
        parts=tuple(
            Part(p.data_coding, content.ESM_CLASS_UDHI if p.udhi else 0, p.short_message)
            for p in parts
        ),
        validity_period=expiry.astimezone(UTC).strftime("%y%m%d%H%M%S000+") if expiry else "",
        expires_at=expiry.timestamp() if expiry else float("inf"),
    )


async def expand_campaign(ctx: dict[str, Any], campaign_id: int, generation: int) -> int:
    """Expand a due campaign into queued messages, then queue its batches."""
    settings: Settings = ctx["settings"]

    def expand() -> int:
        with session_scope(ctx["engine"]) as session:
            campaign = session.get(Campaign, campaign_id)
            if campaign is None or campaign.generation != generation:
                return 0  # edited or resumed since: a newer job carries on
            execution.start_sending(
                session=session,
                campaign=campaign,
                batch_size=settings.batch_size,
                policy=settings.policy,
            )
            return campaign.batches if campaign.status == S.SENDING else 0

    batches = await asyncio.to_thread(expand)
    redis: ArqRedis = ctx["redis"]
    await jobs.enqueue_batches(redis, campaign_id, generation, batches)
    return batches


async def send_batch(ctx: dict[str, Any], campaign_id: int, batch_no: int) -> int:
    """Submit a batch's queued messages a claim at a time, storing the SMSC's answers as they come.

    Claiming a little at a time bounds what a crashed worker leaves in doubt, and stops a
    cancelled or paused campaign at the next claim even without the halt board.
    """
    sending: Sending = ctx["sending"]
    settings: Settings = ctx["settings"]
    engine: Engine = ctx["engine"]

    def claim() -> tuple[Campaign | None, list[tuple[int, str]]]:
        with Session(engine) as session:
            campaign = session.get(Campaign, campaign_id)
        if campaign is None or campaign.status != S.SENDING:
            return None, []
        return campaign, delivery.claim(engine, campaign_id, batch_no, limit=CLAIM_SIZE)

    sent, started = 0, time.monotonic()
    while True:
        campaign, rows = await asyncio.to_thread(claim)
        if campaign is None or not rows:
            return sent
        results = await sending.submit(content_for(campaign, settings.binds[0], settings), rows)
        await asyncio.to_thread(delivery.store_submit_results, engine, results)
        sent += len(rows)
        if time.monotonic() - started > settings.job_timeout / 2:
            # A slow bind: hand the rest to a new job rather than run into the job timeout.
            await jobs.enqueue_rest_of_batch(ctx["redis"], campaign_id, batch_no)
            return sent


async def record_receipts(sending: Sending) -> None:
    """Apply delivery receipts in bulk, a few times a second."""
    while True:
        await asyncio.sleep(RECEIPT_FLUSH_INTERVAL)
        await asyncio.to_thread(sending.record_receipts)


@dataclass
class Requeue:
    """Jobs that housekeeping found missing: expansions and batches to queue again."""

    expansions: list[tuple[int, int]] = field(default_factory=list)  # (campaign, generation)
    batches: list[tuple[int, int]] = field(default_factory=list)  # (campaign, batch)


def _tick(sending: Sending, look_for_lost_jobs: bool = False) -> Requeue:
    """Audit bind changes; expire, give up on late receipts, close campaigns, find lost jobs."""
    engine, settings = sending.engine, sending.settings
    events = _drain(sending.bind_events)
    if events:
        with session_scope(engine) as session:
            for name, up in events:
                action = "smpp.bind_up" if up else "smpp.bind_down"
                audit.record(session=session, actor="system", action=action, subject=f"bind:{name}")
    with Session(engine) as session:
        active = session.exec(
            select(Campaign.id).where(
                col(Campaign.status).in_([S.APPROVED, S.SCHEDULED, S.SENDING, S.PAUSED])
            )
        ).all()
    requeue, unfinished = Requeue(), []
    for campaign_id in active:
        assert campaign_id is not None
        delivery.expire_unanswered(engine, campaign_id, settings.receipt_timeout)
        delivery.abandon_stale_claims(engine, campaign_id, settings.job_timeout + STALE_MARGIN)
        with session_scope(engine) as session:
            campaign = session.get(Campaign, campaign_id)
            if campaign is None:
                continue
            if execution.expire_if_due(session=session, campaign=campaign, now=utcnow()):
                log.info("campaign %d expired", campaign_id)
            elif campaign.status == S.SENDING and execution.complete_if_done(
                session=session, campaign=campaign
            ):
                log.info("campaign %d completed", campaign_id)
            elif look_for_lost_jobs:
                unfinished.append(campaign)
    # Outside the transaction above: on SQLite a second connection would wait for it forever.
    for campaign in unfinished:
        _find_lost_jobs(campaign, sending, requeue)
    return requeue


def _find_lost_jobs(campaign: Campaign, sending: Sending, requeue: Requeue) -> None:
    """A Redis that lost its data loses the jobs: find what a campaign still waits for."""
    assert campaign.id is not None
    quiet = sending.settings.requeue_after
    due = campaign.status == S.APPROVED or (
        campaign.status == S.SCHEDULED
        and campaign.send_start is not None
        and campaign.send_start < utcnow() - timedelta(seconds=quiet)
    )
    approved = campaign.approved_at
    if due and approved is not None and approved < utcnow() - timedelta(seconds=quiet):
        requeue.expansions.append((campaign.id, campaign.generation))
    elif campaign.status == S.SENDING:
        stalled = delivery.stalled_batches(sending.engine, campaign.id, quiet)
        requeue.batches += [(campaign.id, batch_no) for batch_no in stalled]


async def housekeeping(sending: Sending, redis: ArqRedis) -> None:
    """Run `_tick` every second; every so often queue again the jobs found lost."""
    ticks = 0
    while True:
        await asyncio.sleep(HOUSEKEEPING_INTERVAL)
        ticks += 1
        try:
            requeue = await asyncio.to_thread(_tick, sending, ticks % LOST_JOB_CHECK_TICKS == 0)
            for campaign_id, generation in requeue.expansions:
                await jobs.enqueue_expansion(redis, campaign_id, generation)
            for campaign_id, batch_no in requeue.batches:
                await jobs.enqueue_rest_of_batch(redis, campaign_id, batch_no)
            if requeue.expansions or requeue.batches:
                log.warning(
                    "queued again: %d expansions, %d batches without a job",
                    len(requeue.expansions),
                    len(requeue.batches),
                )
        except Exception:
            log.exception("housekeeping failed")


async def startup(ctx: dict[str, Any]) -> None:
    """Bind to the SMSC and start the background loops."""
    settings = get_settings()
    engine = get_engine()
    sending = Sending(settings, engine)
    sending.start()
    ctx.update(settings=settings, engine=engine, sending=sending)
    ctx["loops"] = [
        asyncio.create_task(sending.halts.follow(ctx["redis"], settings.queue_name)),
        asyncio.create_task(record_receipts(sending)),
        asyncio.create_task(housekeeping(sending, ctx["redis"])),
    ]


async def shutdown(ctx: dict[str, Any]) -> None:
    """Stop the loops, store and acknowledge the last receipts, unbind."""
    for task in ctx.get("loops", []):
        task.cancel()
    sending: Sending | None = ctx.get("sending")
    if sending is not None:
        await asyncio.to_thread(sending.record_receipts)
        await asyncio.to_thread(sending.stop)
        await asyncio.to_thread(_tick, sending)


def make_worker(settings: Settings, **overrides: Any) -> Worker:
    """An arq worker for the dispatcher's jobs."""
    options: dict[str, Any] = {
        "functions": [expand_campaign, send_batch],
        "redis_settings": jobs.redis_settings(settings),
        "queue_name": settings.queue_name,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "max_jobs": 4 * len(settings.binds),
        "job_timeout": settings.job_timeout,
        "keep_result": 3600,
    }
    options.update(overrides)
    return Worker(**options)
