"""The arq queue on Redis: which Redis, and the jobs the API and the worker enqueue."""

from datetime import datetime

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings

from dispatcher import embedded_redis
from dispatcher.settings import Settings


def redis_url(settings: Settings) -> str:
    """The configured Redis URL, or the embedded Redis (started on demand)."""
    if settings.redis_url:
        return settings.redis_url
    embedded_redis.ensure_running(settings.var_dir)
    return embedded_redis.url(settings.var_dir)


def redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings for the configured Redis."""
    return RedisSettings.from_dsn(redis_url(settings))


async def connect(settings: Settings) -> ArqRedis:
    """A connection pool to the queue."""
    return await create_pool(redis_settings(settings), default_queue_name=settings.queue_name)


async def enqueue_expansion(
    pool: ArqRedis,
    campaign_id: int,
    generation: int,
    at: datetime | None = None,
    *,
    again: bool = False,
) -> None:
    """Ask a worker to expand a campaign (at its start time) into queued messages.

    The job id makes a repeated request harmless while the job waits; `again` (housekeeping
    finding a lost or failed expansion) uses a fresh id, and the expansion's row lock and
    status check make a second run do nothing.
    """
    await pool.enqueue_job(
        "expand_campaign",
        campaign_id,
        generation,
        _job_id=None if again else f"expand:{campaign_id}:{generation}",
        _defer_until=at,
    )
