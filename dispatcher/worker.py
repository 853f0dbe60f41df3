"""The arq worker: expands campaigns, sends batches over its SMPP binds, records receipts."""

import asyncio
import logging
import queue
from typing import Any

from arq import Worker
from arq.connections import ArqRedis
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from campaigns import content, service
from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus
from dispatcher import delivery
from dispatcher import queue as jobs
from dispatcher.db import get_engine, session_scope
from dispatcher.settings import BindSettings, Settings, get_settings
from dispatcher.smpp.bind import BindSession, Content, Submission, SubmitResult, Ticket
from dispatcher.smpp.receipts import Receipt

log = logging.getLogger("dispatcher.worker")

HOUSEKEEPING_INTERVAL = 1.0
RECEIPT_FLUSH_INTERVAL = 0.2


class Sending:
    """This process's SMPP binds and the receipts they bring back."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.receipts: queue.SimpleQueue[Receipt] = queue.SimpleQueue()
        self.matcher = delivery.ReceiptMatcher(engine, patience=settings.receipt_timeout)
        self.binds = [BindSession(bind, self.receipts.put) for bind in settings.binds]

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

    def drain_receipts(self) -> list[Receipt]:
        """Receipts that arrived since the last call."""
        drained: list[Receipt] = []
        while True:
            try:
                drained.append(self.receipts.get_nowait())
            except queue.Empty:
                return drained


def content_for(campaign: Campaign, bind: BindSettings) -> Content:
    """The submit_sm fields every message of the campaign shares."""
    (part,) = content.split(campaign.text, reference=0, max_parts=1)
    alphanumeric = not campaign.sender.isdigit()
    return Content(
        source_addr=campaign.sender,
        source_addr_ton=5 if alphanumeric else bind.source_addr_ton,
        source_addr_npi=0 if alphanumeric else bind.source_addr_npi,
        data_coding=part.data_coding,
        esm_class=0x00,
        short_message=part.short_message,
    )


async def expand_campaign(ctx: dict[str, Any], campaign_id: int) -> int:
    """Expand an approved campaign into queued messages, then queue its batches."""
    settings: Settings = ctx["settings"]

    def expand() -> int:
        with session_scope(ctx["engine"]) as session:
            campaign = session.get(Campaign, campaign_id)
            if campaign is None:
                return 0
            if campaign.status == CampaignStatus.APPROVED:
                service.start_sending(
                    session=session, campaign=campaign, batch_size=settings.batch_size
                )
                log.info("campaign %d: %d recipients", campaign_id, campaign.recipients)
            return campaign.batches if campaign.status == CampaignStatus.SENDING else 0

    batches = await asyncio.to_thread(expand)
    redis: ArqRedis = ctx["redis"]
    await jobs.enqueue_batches(redis, campaign_id, batches)
    return batches


async def send_batch(ctx: dict[str, Any], campaign_id: int, batch_no: int) -> int:
    """Submit the still-queued messages of one batch and store the SMSC's answers."""
    sending: Sending = ctx["sending"]
    engine: Engine = ctx["engine"]

    def load() -> tuple[Campaign | None, list[tuple[int, str]]]:
        with Session(engine) as session:
            campaign = session.get(Campaign, campaign_id)
            if campaign is None or campaign.status != CampaignStatus.SENDING:
                return None, []
            rows = session.exec(
                select(Message.id, Message.msisdn)
                .where(Message.campaign_id == campaign_id, Message.batch_no == batch_no)
                .where(Message.status == MessageStatus.QUEUED)
                .order_by(col(Message.id))
            ).all()
            return campaign, [(int(mid), msisdn) for mid, msisdn in rows if mid is not None]

    campaign, rows = await asyncio.to_thread(load)
    if campaign is None or not rows:
        return 0
    results = await sending.submit(content_for(campaign, sending.settings.binds[0]), rows)
    await asyncio.to_thread(delivery.store_submit_results, engine, results)
    return len(results)


async def record_receipts(sending: Sending) -> None:
    """Apply delivery receipts in bulk, a few times a second."""
    while True:
        await asyncio.sleep(RECEIPT_FLUSH_INTERVAL)
        new = sending.drain_receipts()
        if new or sending.matcher.waiting:
            await asyncio.to_thread(sending.matcher.apply, new)


async def housekeeping(engine: Engine, settings: Settings) -> None:
    """Close campaigns whose messages are all final; give up on receipts that never came."""

    def tick() -> None:
        with Session(engine) as session:
            sending = session.exec(
                select(Campaign.id).where(Campaign.status == CampaignStatus.SENDING)
            ).all()
        for campaign_id in sending:
            assert campaign_id is not None
            delivery.expire_unanswered(engine, campaign_id, settings.receipt_timeout)
            with session_scope(engine) as session:
                campaign = session.get(Campaign, campaign_id)
                if campaign is None or campaign.status != CampaignStatus.SENDING:
                    continue
                if service.complete_if_done(session=session, campaign=campaign):
                    log.info("campaign %d completed", campaign_id)

    while True:
        await asyncio.sleep(HOUSEKEEPING_INTERVAL)
        try:
            await asyncio.to_thread(tick)
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
        asyncio.create_task(record_receipts(sending)),
        asyncio.create_task(housekeeping(engine, settings)),
    ]


async def shutdown(ctx: dict[str, Any]) -> None:
    """Stop the loops, flush the last receipts and unbind."""
    for task in ctx.get("loops", []):
        task.cancel()
    sending: Sending | None = ctx.get("sending")
    if sending is not None:
        await asyncio.to_thread(sending.stop)
        await asyncio.to_thread(sending.matcher.apply, sending.drain_receipts())


def make_worker(settings: Settings, **overrides: Any) -> Worker:
    """An arq worker for the dispatcher's jobs."""
    options: dict[str, Any] = {
        "functions": [expand_campaign, send_batch],
        "redis_settings": jobs.redis_settings(settings),
        "queue_name": settings.queue_name,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "max_jobs": 4 * len(settings.binds),
        "job_timeout": 3600,
        "keep_result": 3600,
    }
    options.update(overrides)
    return Worker(**options)
