"""What each bind sends next: claims just in time, urgent campaigns first, normal ones in turn."""

import asyncio
import logging
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from datetime import UTC
from functools import partial

from sqlalchemy import Engine, select
from sqlmodel import Session, col
from sqlmodel import select as select_rows

from campaigns import approval, content
from campaigns.models import Campaign, CampaignStatus, Priority
from campaigns.service import sent_text
from dispatcher.db import reading
from dispatcher.sending import claims
from dispatcher.sending.bind import BindSession
from dispatcher.sending.submissions import Content, Part, Submission
from dispatcher.settings import AccountSettings, Settings

log = logging.getLogger("dispatcher.sending.feeder")

REFRESH_SECONDS = 0.1  # how soon a newly sending campaign (an urgent one) is seen
EMPTY_SECONDS = 0.5  # a campaign found with nothing queued is not asked again for this long
IDLE_SECONDS = 0.05
_campaign = Campaign.__table__  # type: ignore[attr-defined]


def content_for(campaign: Campaign, account: AccountSettings, settings: Settings) -> Content:
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
        source_addr_ton=5 if alphanumeric else account.source_addr_ton,
        source_addr_npi=0 if alphanumeric else account.source_addr_npi,
        parts=tuple(
            Part(p.data_coding, content.ESM_CLASS_UDHI if p.udhi else 0, p.short_message)
            for p in parts
        ),
        validity_period=expiry.astimezone(UTC).strftime("%y%m%d%H%M%S000+") if expiry else "",
        expires_at=expiry.timestamp() if expiry else float("inf"),
        urgent=campaign.priority == Priority.URGENT,
    )


def _key(campaign: Campaign) -> tuple[object, ...]:
    return (campaign.id, campaign.content_hash, campaign.approved_hash)


def _sends_what_was_approved(campaign: Campaign) -> bool:
    """The guard at feed time: the content built from this row is the content approved."""
    if campaign.approved_hash is not None and (
        approval.content_hash(campaign) == campaign.content_hash == campaign.approved_hash
    ):
        return True
    log.error("campaign %d is sending content that was not approved: not sent", campaign.id)
    return False


class Sending:
    """The campaigns now sending, as this worker last read them, in the order to serve them."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._urgent: list[Campaign] = []
        self._normal: list[Campaign] = []
        self._turn = 0
        self._empty_until: dict[int, float] = {}
        self._refused: set[tuple[object, ...]] = set()  # rows whose content was not approved

    def refresh(self) -> None:
        """Read the sending campaigns (on a worker thread); load only those new or changed."""
        with reading(self._engine).connect() as connection:
            rows = connection.execute(
                select(_campaign.c.id, _campaign.c.content_hash, _campaign.c.approved_hash)
                .where(_campaign.c.status == CampaignStatus.SENDING)
                .order_by(_campaign.c.id)
            ).all()
        known = {_key(c): c for c in (*self._urgent, *self._normal)}
        seen = known.keys() | self._refused
        missing = [row.id for row in rows if tuple(row) not in seen]
        if missing:
            with Session(reading(self._engine)) as session:
                for campaign in session.exec(
                    select_rows(Campaign).where(col(Campaign.id).in_(missing))
                ).all():
                    if _sends_what_was_approved(campaign):
                        known[_key(campaign)] = campaign
                    else:
                        self._refused.add(_key(campaign))
        campaigns = [known[key] for key in map(tuple, rows) if key in known]
        self._urgent = [c for c in campaigns if c.priority == Priority.URGENT]
        self._normal = [c for c in campaigns if c.priority != Priority.URGENT]
        live = {c.id for c in campaigns}
        self._empty_until = {k: v for k, v in self._empty_until.items() if k in live}

    def candidates(self) -> Iterator[Campaign]:
        """Urgent campaigns oldest first; then normal ones, from the one after the last served."""
        now = time.monotonic()
        normal = self._normal
        if normal:
            turn = self._turn % len(normal)
            normal = normal[turn:] + normal[:turn]
        for campaign in (*self._urgent, *normal):
            if self._empty_until.get(campaign.id or 0, 0.0) <= now:
                yield campaign

    def served(self, campaign: Campaign) -> None:
        """A normal campaign was given a claim: the next claim starts with the one after it.

        The turn moves only with claims, not with each look for room, so that two normal
        campaigns alternate claim by claim whatever the timing.
        """
        ids = [c.id for c in self._normal]
        if campaign.id in ids:
            self._turn = ids.index(campaign.id) + 1

    @property
    def normal_count(self) -> int:
        """Normal campaigns sending now."""
        return len(self._normal)

    def empty(self, campaign_id: int) -> None:
        """Nothing was queued: skip the campaign for a moment."""
        self._empty_until[campaign_id] = time.monotonic() + EMPTY_SECONDS

    async def follow(self) -> None:
        """Refresh a few times a second until cancelled."""
        while True:
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as error:  # the database may be away for a while
                log.warning("could not read the sending campaigns: %s", type(error).__name__)
            await asyncio.sleep(REFRESH_SECONDS)


class Feeder:
    """Keeps one bind's hands full, never beyond its window."""

    def __init__(
        self,
        bind: BindSession,
        sending: Sending,
        *,
        engine: Engine,
        worker_id: int,
        settings: Settings,
        writer: Executor | None = None,
    ) -> None:
        self.bind = bind
        self._writer = writer  # the worker's one database-writing thread, if it has one
        self.wake = asyncio.Event()
        self._sending = sending
        self._engine = engine
        self._worker_id = worker_id
        self._settings = settings
        self._contents: dict[tuple[int, str], Content] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Claim for the bind whenever it has room, until `stop` is set."""
        while not stop.is_set():
            if self.bind.is_up:
                try:
                    if await self._feed():
                        continue
                except Exception as error:
                    log.warning("claim failed (%s); trying again", type(error).__name__)
                    await asyncio.sleep(1.0)
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), IDLE_SECONDS)
            except TimeoutError:
                pass

    async def _feed(self) -> bool:
        """One claim for the first campaign in line that has room and queued messages."""
        # Claims of a window or half what the bind holds, whichever is less: few transactions.
        low_water = max(1, min(self.bind.account.window, self.bind.hold_limit // 2))
        # Several normal campaigns at once: each claim takes a share of the room, so that
        # the bind's hands (and the SMSC's stream) alternate between them in small blocks.
        sharing = max(1, self._sending.normal_count)
        for campaign in self._sending.candidates():
            assert campaign.id is not None
            urgent = campaign.priority == Priority.URGENT
            room = self.bind.room(urgent=urgent)
            if room < low_water:
                if urgent:
                    return False  # normal ones wait while urgent ones are held
                continue
            claim = partial(
                claims.claim,
                self._engine,
                campaign_id=campaign.id,
                worker_id=self._worker_id,
                limit=room if urgent else max(low_water, room // sharing),
            )
            rows = await asyncio.get_running_loop().run_in_executor(self._writer, claim)
            if rows:
                if not urgent:
                    self._sending.served(campaign)
                message_content = self._content(campaign)
                self.bind.submit(
                    [Submission(message_id, msisdn, message_content) for message_id, msisdn in rows]
                )
                return True
            self._sending.empty(campaign.id)
        return False

    def _content(self, campaign: Campaign) -> Content:
        assert campaign.id is not None
        key = (campaign.id, campaign.content_hash)
        found = self._contents.get(key)
        if found is None:
            found = self._contents[key] = content_for(campaign, self.bind.account, self._settings)
        return found
