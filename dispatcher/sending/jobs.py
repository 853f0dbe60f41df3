"""The arq jobs: expanding an approved campaign into queued messages. Ids travel, never numbers.

Sending itself is not a job: each bind pulls what it can send from the database (see
`feeder.py`), so that urgent campaigns overtake normal ones at once, only workers holding an
account's session send for it, and a Redis that loses its data loses no message.
"""

import asyncio
from typing import Any

from sqlmodel import select

from campaigns import execution
from campaigns.models import Campaign, CampaignStatus
from dispatcher.db import session_scope
from dispatcher.settings import Settings


async def expand_campaign(ctx: dict[str, Any], campaign_id: int, generation: int) -> int:
    """Expand a due campaign into queued messages; return how many."""
    settings: Settings = ctx["settings"]

    def expand() -> int:
        with session_scope(ctx["engine"]) as session:
            # The row lock makes a second expansion of the same campaign wait, then do nothing.
            campaign = session.exec(
                select(Campaign).where(Campaign.id == campaign_id).with_for_update()
            ).first()
            if campaign is None or campaign.generation != generation:
                return 0  # edited or resumed since: a newer job carries on
            execution.start_sending(
                session=session,
                campaign=campaign,
                batch_size=settings.batch_size,
                policy=settings.policy,
            )
            return campaign.recipients if campaign.status == CampaignStatus.SENDING else 0

    return await asyncio.to_thread(expand)
