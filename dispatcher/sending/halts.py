"""Campaigns whose sending must stop now (cancelled, paused), shared through Redis.

The database says what a campaign's status is; this board only makes every worker's binds
see a cancel or a pause within a fraction of a second, without a query per message.
"""

import asyncio
import logging
from collections.abc import Awaitable
from typing import cast

from redis.asyncio import Redis

log = logging.getLogger("dispatcher.halts")

REFRESH_SECONDS = 0.2


def key(queue_name: str) -> str:
    """The Redis hash of halted campaigns: campaign id → reason."""
    return f"{queue_name}:halted"


async def halt(redis: Redis, queue_name: str, campaign_id: int, reason: str) -> None:
    """Tell every worker to stop submitting the campaign's messages."""
    # redis-py types its commands for both clients; this is the asyncio one.
    await cast(Awaitable[int], redis.hset(key(queue_name), str(campaign_id), reason))


async def release(redis: Redis, queue_name: str, campaign_id: int) -> None:
    """Let the campaign's messages go again."""
    await cast(Awaitable[int], redis.hdel(key(queue_name), str(campaign_id)))


class HaltBoard:
    """This process's copy of the halted campaigns, refreshed a few times a second."""

    def __init__(self) -> None:
        self._halted: dict[int, str] = {}

    def reason(self, campaign_id: int) -> str | None:
        """Why the campaign is halted, or None; safe to call from any thread."""
        return self._halted.get(campaign_id)

    async def follow(self, redis: Redis, queue_name: str) -> None:
        """Refresh from Redis until cancelled."""
        while True:
            try:
                raw = await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(key(queue_name)))
                # One reference swap: readers on other threads see the old or the new dict.
                self._halted = {int(k): v.decode() for k, v in raw.items()}
            except Exception:
                log.exception("could not refresh halted campaigns")
            await asyncio.sleep(REFRESH_SECONDS)
