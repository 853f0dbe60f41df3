"""What workers publish in Redis for the operator page: bind states and per-second counts.

Each worker writes, once a second, one key per bind it holds (its state, window use; expires
after `STATE_TTL` seconds without a refresh, so a dead worker's binds vanish), one key for
itself (receipts waiting for a match), and its answers and receipts of that second into a hash
per minute kept for `KEEP_MINUTES`. Series in those hashes are named `kind|bind[|code]`:
`ok` accepted submits, `st` other answers by code name, `rc` receipts. Nothing here carries a
subscriber number.
"""

import json
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

STATE_TTL = 5  # seconds
KEEP_MINUTES = 17
CHART_SECONDS = 15 * 60
ACCEPTED, ANSWERED, RECEIVED = "ok", "st", "rc"


def _minute_key(namespace: str, minute: int) -> str:
    return f"{namespace}:watch:minute:{minute}"


def _bind_key(namespace: str, bind: str) -> str:
    return f"{namespace}:watch:bind:{bind}"


def _worker_key(namespace: str, worker_id: int) -> str:
    return f"{namespace}:watch:worker:{worker_id}"


@dataclass(frozen=True, slots=True)
class BindState:
    """One bind as its worker last saw it."""

    account: str
    bind: str
    worker: int
    state: str  # up, down, refused
    window_in_use: int
    window: int
    held: int


@dataclass(frozen=True, slots=True)
class WorkerState:
    """One worker's receipts still looking for their message."""

    worker: int
    unmatched: int
    abandoned: int


@dataclass
class Live:
    """Everything the workers published, read at one time."""

    binds: dict[str, BindState] = field(default_factory=dict)
    workers: list[WorkerState] = field(default_factory=list)
    # epoch second → series → count
    seconds: dict[int, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))

    def total(self, kind: str, *, since: int, until: int, bind: str | None = None) -> int:
        """The sum of a kind of series over seconds [since, until), for one bind or all."""
        count = 0
        for second, series in self.seconds.items():
            if since <= second < until:
                for name, value in series.items():
                    parts = name.split("|")
                    if parts[0] == kind and (bind is None or parts[1] == bind):
                        count += value
        return count

    def by_code(self, binds: Iterable[str], *, since: int, until: int) -> dict[str, int]:
        """Answers other than accepted, by code name, of these binds over [since, until)."""
        wanted = set(binds)
        codes: dict[str, int] = defaultdict(int)
        for second, series in self.seconds.items():
            if since <= second < until:
                for name, value in series.items():
                    parts = name.split("|")
                    if parts[0] == ANSWERED and parts[1] in wanted:
                        codes[parts[2]] += value
        return dict(sorted(codes.items()))


async def publish(
    redis: AsyncRedis,
    namespace: str,
    *,
    counts: Mapping[str, int],
    binds: Iterable[BindState],
    worker: WorkerState,
    now: float | None = None,
) -> None:
    """Write one second's counts and the current states in one round trip."""
    minute, second = divmod(int(time.time() if now is None else now), 60)
    key = _minute_key(namespace, minute)
    pipe = redis.pipeline(transaction=False)
    for series, count in counts.items():
        if count:
            pipe.hincrby(key, f"{second}|{series}", count)
    pipe.expire(key, KEEP_MINUTES * 60)
    for bind in binds:
        pipe.set(_bind_key(namespace, bind.bind), json.dumps(asdict(bind)), ex=STATE_TTL)
    pipe.set(_worker_key(namespace, worker.worker), json.dumps(asdict(worker)), ex=STATE_TTL)
    await pipe.execute()


def read(redis: Redis, namespace: str, *, now: float | None = None) -> Live:
    """Read the binds, the workers and the last `KEEP_MINUTES` of counts."""
    live = Live()
    last = int(time.time() if now is None else now) // 60
    minutes = list(range(last - KEEP_MINUTES + 1, last + 1))
    pipe = redis.pipeline(transaction=False)
    for minute in minutes:
        pipe.hgetall(_minute_key(namespace, minute))
    hashes = pipe.execute()
    for minute, fields in zip(minutes, hashes, strict=True):
        for name, value in fields.items():
            second, series = _text(name).split("|", 1)
            live.seconds[minute * 60 + int(second)][series] = int(value)
    bind_keys = _scan(redis, namespace, "bind")
    worker_keys = _scan(redis, namespace, "worker")
    keys = [*bind_keys, *worker_keys]
    values: list[Any] = cast(list[Any], redis.mget(keys)) if keys else []
    for value in values[: len(bind_keys)]:
        if value is not None:
            state = BindState(**_json(value))
            live.binds[state.bind] = state
    for value in values[len(bind_keys) :]:
        if value is not None:
            live.workers.append(WorkerState(**_json(value)))
    return live


def _scan(redis: Redis, namespace: str, kind: str) -> list[str]:
    return sorted(
        _text(k) for k in redis.scan_iter(match=f"{namespace}:watch:{kind}:*", count=1000)
    )


def _json(value: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(value)
    return loaded


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
