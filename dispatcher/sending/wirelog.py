"""Which messages a bind may have written, and what it heard back: kept in Redis for a death.

A bind adds the ids of a burst to its set before it writes the burst, and notes every answer it
hears (the trail of each message: parts accepted with their SMSC ids, refusals, doubts) before
handing it to the worker to store; the worker removes both once the answers are stored. When a
worker dies (kill -9, a host lost), the housekeeping leader stores the answers it had heard and
not stored, then splits its messages still `submitting`: those in a set were written and never
answered (at most a window per bind) and end `unknown`, in doubt; the others were never written
and go back to the queue, to be sent once by another worker. A marker key, set when the worker
starts, tells whether Redis lost its data meanwhile; if it did, every one of the dead worker's
messages is in doubt.
"""

import json
import logging
from collections.abc import Iterable, Mapping
from typing import cast

import redis

from dispatcher.sending.submissions import Answer, Outcome

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
        self._answers_key = f"{_prefix(namespace, worker_id)}:answers:{bind}"
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

    def heard(self, trails: Mapping[int, list[Answer]]) -> None:
        """Note what was heard of messages, before it goes to be stored; raises redis.RedisError."""
        if trails:
            pipe = self._client.pipeline(transaction=False)
            pipe.hset(self._answers_key, mapping={k: _encode(v) for k, v in trails.items()})
            pipe.expire(self._answers_key, TTL_SECONDS)
            pipe.execute()

    def forget(self, message_ids: list[int]) -> None:
        """Drop messages whose answers are stored (from the worker's writer thread)."""
        if message_ids:
            pipe = self._client.pipeline(transaction=False)
            pipe.srem(self._key, *message_ids)
            pipe.hdel(self._answers_key, *map(str, message_ids))
            pipe.execute()


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


def heard(client: redis.Redis, namespace: str, worker_id: int) -> dict[int, list[Answer]]:
    """What the worker's binds heard and the worker may not have stored, by message."""
    trails: dict[int, list[Answer]] = {}
    for key in client.scan_iter(match=f"{_prefix(namespace, worker_id)}:answers:*", count=100):
        for field, value in cast(dict[bytes, bytes], client.hgetall(key)).items():
            trails[int(field)] = _decode(int(field), value)
    return trails


def _encode(trail: list[Answer]) -> str:
    return json.dumps(
        [
            [a.outcome.value, a.part_no, a.smsc_message_id, a.command_status, a.attempts]
            + [a.final, a.reason, a.at, a.account]
            for a in trail
        ]
    )


def _decode(message_id: int, value: bytes) -> list[Answer]:
    return [
        Answer(message_id, Outcome(o), p, smsc, status, attempts, final, reason, at, account)
        for o, p, smsc, status, attempts, final, reason, at, account in json.loads(value)
    ]


def drop(client: redis.Redis, namespace: str, worker_id: int) -> None:
    """Delete a settled worker's sets and marker."""
    keys = list(client.scan_iter(match=f"{_prefix(namespace, worker_id)}:*", count=100))
    if keys:
        client.delete(*keys)
