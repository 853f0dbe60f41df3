"""The arq jobs: expanding an approved campaign into queued messages. Ids travel, never numbers.

Sending itself is not a job: each bind pulls what it can send from the database (see
`feeder.py`), so that urgent campaigns overtake normal ones at once, only workers holding an
account's session send for it, and a Redis that loses its data loses no message.
"""

import asyncio
import logging
from typing import Any

from sqlalchemy.exc import IntegrityError

from campaigns import execution
from campaigns.models import Campaign
from dispatcher.db import session_scope
from dispatcher.settings import Settings

log = logging.getLogger("dispatcher.sending.jobs")


async def expand_campaign(ctx: dict[str, Any], campaign_id: int, generation: int) -> int:
    """Expand a due campaign into queued messages; return how many."""
    settings: Settings = ctx["settings"]

    def expand() -> int:
        try:
            with session_scope(ctx["engine"]) as session:
                campaign = session.get(Campaign, campaign_id)
                if campaign is None:
                    return 0
                return execution.start_sending(
                    session=session,
                    campaign=campaign,
                    generation=generation,
                    batch_size=settings.batch_size,
                    policy=settings.policy,
                )
        except execution.Superseded as error:  # edited, cancelled or expired meanwhile
            log.info("expansion rolled back: %s", error)
        except IntegrityError:  # a second job for the same campaign: the first one expanded it
            log.info("campaign %d was expanded by another job", campaign_id)
        return 0

    return await asyncio.to_thread(expand)
