"""Which messages a bind may have written: a write-ahead set in Redis, read when a worker dies.

A bind adds the ids of a burst to its set before it writes the burst; the worker removes them
once their answers are stored. When a worker dies (kill -9, a host lost), the housekeeping
leader splits its `submitting` messages: those in a set may have reached the SMSC and end
`unknown`, in doubt; the others were never written and go back to the queue, to be sent once by
another worker. A marker key, set when the worker starts, tells whether Redis lost its data
meanwhile; if it did, every one of the dead worker's messages is in doubt.
"""

import logging
from collections.abc import Iterable
from typing import cast

import redis

log = logging.getLogger("dispatcher.sending.wirelog")
TTL_SECONDS = 7 * 24 * 3600  # a dead worker's sets outlive any housekeeping delay


def _prefix(namespace: str, worker_id: int) -> str:
    return f"{namespace}:wire:{worker_id}"


def marker_key(namespace: str, worker_id: int) -> str:
    """The key that proves a worker's sets are complete."""
    return f"{_prefix(namespace, worker_id)}:marker"


class WireLog:
    """One bind's write-ahead set: recorded from its thread, forgotten after storing."""

    def __init__(self, client: redis.Redis, namespace: str, worker_id: int, bind: str) -> None:
        self._client = client
        self._key = f"{_prefix(namespace, worker_id)}:bind:{bind}"
        self._marker = marker_key(namespace, worker_id)

    def record(self, message_ids: Iterable[int], unanswered: Iterable[int] = ()) -> None:
        """Note messages about to be written; raises redis.RedisError if that cannot be noted."""
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self._marker, 1, nx=True)
        pipe.sadd(self._key, *message_ids)
        pipe.expire(self._key, TTL_SECONDS)
        marker_was_missing = pipe.execute()[0]
        if marker_was_missing:
            # Redis lost its data since the worker started: note again what is on the wire.
            log.warning("write-ahead log was lost with Redis' data; recording it again")
            again = list(unanswered)
            if again:
                self._client.sadd(self._key, *again)

    def forget(self, message_ids: list[int]) -> None:
        """Drop messages whose answers are stored (from the worker's writer thread)."""
        if message_ids:
            self._client.srem(self._key, *message_ids)


def start(client: redis.Redis, namespace: str, worker_id: int) -> None:
    """Mark a new worker's sets as complete."""
    client.set(marker_key(namespace, worker_id), 1, ex=TTL_SECONDS)


def written(client: redis.Redis, namespace: str, worker_id: int) -> set[int] | None:
    """Every message the worker's binds may have written; None if Redis lost that knowledge."""
    if not client.exists(marker_key(namespace, worker_id)):
        return None
    ids: set[int] = set()
    for key in client.scan_iter(match=f"{_prefix(namespace, worker_id)}:bind:*", count=100):
        members = cast(set[bytes], client.smembers(key))
        ids.update(int(member) for member in members)
    return ids


def drop(client: redis.Redis, namespace: str, worker_id: int) -> None:
    """Delete a settled worker's sets and marker."""
    keys = list(client.scan_iter(match=f"{_prefix(namespace, worker_id)}:*", count=100))
    if keys:
        client.delete(*keys)
