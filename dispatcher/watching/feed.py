"""The API's current snapshot: taken on demand, at most once a second, one taking at a time.

Every viewer of the page, its live updates and every /metrics scrape share it, so watching
costs the database the same whatever the number of viewers. A source that hangs (a database
behind a dropped network) does not hang the page: after `WAIT` seconds the last snapshot is
answered, marked as not refreshed.
"""

import asyncio
import time
from dataclasses import replace

import redis

from dispatcher import embedded_redis, queue
from dispatcher.db import get_engine
from dispatcher.settings import Settings
from dispatcher.watching.snapshot import Snapshot, Watcher

MAX_AGE = 0.9  # seconds a snapshot is answered again without reading anew
WAIT = 1.5  # seconds a request waits for a snapshot being taken


def _redis(settings: Settings) -> redis.Redis:
    try:
        url = queue.redis_url(settings)
    except Exception:  # the embedded Redis did not start: look for it later all the same
        url = embedded_redis.url(settings.var_dir)
    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


def watcher_for(settings: Settings) -> Watcher:
    """A watcher of the configured database and Redis."""
    return Watcher(settings, get_engine(), _redis(settings))


class SnapshotFeed:
    """Hands out the current snapshot to whoever asks."""

    def __init__(self, settings: Settings) -> None:
        self.watcher = watcher_for(settings)
        self._taking: asyncio.Future[Snapshot] | None = None

    async def current(self) -> Snapshot:
        """A snapshot at most MAX_AGE old, or the last one if taking a new one hangs."""
        last = self.watcher.last
        if time.time() - last.taken_at < MAX_AGE and last.database is not None:
            return last
        taking = self._taking
        if taking is None or taking.done():
            taking = self._taking = asyncio.ensure_future(asyncio.to_thread(self.watcher.take))
        try:
            return await asyncio.wait_for(asyncio.shield(taking), WAIT)
        except TimeoutError:
            problem = f"no answer within {WAIT:g} s"
            return replace(last, problems={**last.problems, "database": problem})

    def close(self) -> None:
        """Close the Redis connections."""
        self.watcher.redis.close()
