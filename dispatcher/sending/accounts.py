"""SMSC accounts shared by every worker on every host: the contracted rate and the session slots, leased through Redis."""  # noqa: E501

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from redis import Redis, RedisError
from redis.asyncio import Redis as AsyncRedis

log = logging.getLogger("dispatcher.sending.accounts")

MAX_WAIT = 0.5  # the longest a bind's select() waits on the pacer, in seconds
FIRST_BACKOFF = 0.05  # the first pause after a Redis error; it doubles up to MAX_WAIT
LINGER_MS = 3000  # how long an idle rate schedule outlives its last slot

# A theoretical-arrival-time schedule (GCRA) in one key: the Redis-clock time, in µs, at which
# the account's next free send slot begins. A grant is `count` slots from there on, spaced
# `interval` µs apart; the schedule moves past them, so no two grants ever overlap.
_RESERVE = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
-- Slots unused for less than the tolerance may still be taken (GCRA's burst tolerance): a
-- session that asks a little late does not lose the account's capacity meanwhile.
local floor = now - tonumber(ARGV[5])
if tat < floor then tat = floor end
local ahead = tat - now
if ahead > horizon then
    return {0, ahead - horizon}
end
local after = tat + count * interval
local expire = math.max(1, math.ceil((after - now) / 1000)) + tonumber(ARGV[4])
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', expire)
return {count, ahead}
"""

# A lease held by one owner: renewed if the owner holds it, taken if nobody does.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
if not holder then
    redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
    return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# The slot the owner already holds (renewed), else the first free one, else -1.
_ACQUIRE = """
for slot, key in ipairs(KEYS) do
    if redis.call('GET', key) == ARGV[1] then
        redis.call('PEXPIRE', key, ARGV[2])
        return slot - 1
    end
end
for slot, key in ipairs(KEYS) do
    if redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then
        return slot - 1
    end
end
return -1
"""


def rate_key(prefix: str, account: str) -> str:
    """The Redis key of an account's shared send schedule."""
    return f"{prefix}:account:{account}:rate"


def session_key(prefix: str, account: str, slot: int) -> str:
    """The Redis key of one of an account's session slots."""
    return f"{prefix}:account:{account}:session:{slot}"


def _millis(seconds: float) -> int:
    if seconds <= 0:
        raise ValueError(f"a lease needs a positive TTL, not {seconds}")
    return max(1, round(seconds * 1000))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class Grant:
    """Consecutive send slots: `count` of them, the first `delay` s from now, `interval` apart."""

    count: int
    delay: float
    interval: float


class SharedRate:
    """An account's contracted rate, shared by every session of every host through one key."""

    def __init__(
        self,
        redis: Redis,
        key: str,
        rate: float,
        *,
        grant: int | None = None,
        horizon: float = 0.2,
        tolerance: float = 0.0,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"a shared rate must be positive, not {rate}")
        if grant is not None and grant < 1:
            raise ValueError(f"a grant is at least one slot, not {grant}")
        if horizon < 0:
            raise ValueError(f"the horizon cannot be negative: {horizon}")
        self.key = key
        self.rate = rate
        self.interval = 1 / rate
        self.grant = grant if grant is not None else max(1, round(rate * 0.02))
        self.horizon = horizon
        # At most this much of the account's unused time may still be taken, late: a burst of
        # rate × tolerance submits at most (GCRA's burst tolerance).
        self.tolerance = tolerance
        self._script = redis.register_script(_RESERVE)

    def reserve(self, *, at_most: int | None = None) -> Grant:
        """Lease the next `grant` slots (fewer if `at_most` says so), or none beyond the horizon."""
        count = self.grant if at_most is None else max(1, min(self.grant, at_most))
        args = (
            1_000_000 / self.rate,
            count,
            round(self.horizon * 1_000_000),
            LINGER_MS,
            round(self.tolerance * 1_000_000),
        )
        granted, delay = self._script(keys=[self.key], args=args)
        return Grant(int(granted), int(delay) / 1_000_000, self.interval)


class Pacer:
    """One bind's share of a SharedRate: which submit_sm may go now. One per thread."""

    def __init__(
        self,
        rate: SharedRate | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        late_drop: float = 0.05,
    ) -> None:
        self._rate = rate
        self._clock = clock
        self._late_drop = late_drop
        self._next = 0.0  # this thread's clock time of the next leased slot
        self._left = 0  # leased slots not yet spent
        self._interval = 1.0
        self._ask_at = -math.inf  # no Redis call before this time (refused, or Redis down)
        self._backoff = 0.0
        self._outage = False

    def take(self, wanted: int) -> int:
        """How many of `wanted` (all that are ready) submit_sm may go now; they count as sent."""
        if self._rate is None:
            return wanted
        if wanted <= 0:
            return 0
        now = self._clock()
        if self._left:
            self._drop_late(now)
        if not self._left:
            if now < self._ask_at:
                return 0
            now = self._reserve(self._rate, wanted)
            if not self._left:
                return 0
        if now < self._next:
            return 0
        due = min(self._left, wanted, math.floor((now - self._next) / self._interval) + 1)
        self._left -= due
        self._next += due * self._interval
        return due

    def wait(self) -> float:
        """Seconds until `take` could give something (0.0 if a slot is due), at most 0.5."""
        if self._rate is None:
            return 0.0
        until = self._next if self._left else self._ask_at
        return min(MAX_WAIT, max(0.0, until - self._clock()))

    def _drop_late(self, now: float) -> None:
        """Forget slots too far in the past: a thread that was late must not burst."""
        late = now - self._late_drop - self._next
        if late > 0:
            dropped = min(self._left, math.ceil(late / self._interval))
            self._left -= dropped
            self._next += dropped * self._interval

    def _reserve(self, rate: SharedRate, wanted: int) -> float:
        """Lease a new grant; return this thread's clock time once Redis answered."""
        try:
            grant = rate.reserve(at_most=wanted)
        except RedisError as error:
            if not self._outage:
                self._outage = True
                log.warning("rate %s: Redis unreachable, sending nothing: %s", rate.key, error)
            self._backoff = min(MAX_WAIT, max(FIRST_BACKOFF, self._backoff * 2))
            now = self._clock()
            self._ask_at = now + self._backoff
            return now
        now = self._clock()
        if self._outage:
            self._outage = False
            log.info("rate %s: Redis is back, sending again", rate.key)
        self._backoff = 0.0
        if grant.count:
            self._left = grant.count
            self._next = now + grant.delay
            self._interval = grant.interval
        else:
            self._ask_at = now + min(grant.delay, MAX_WAIT)
        return now


class SessionSlots:
    """An account's `max_sessions` bind slots, each a lease with a short TTL."""

    def __init__(
        self, redis: AsyncRedis, prefix: str, account: str, max_sessions: int, ttl: float = 10.0
    ) -> None:
        if max_sessions < 1:
            raise ValueError(f"an account has at least one session slot, not {max_sessions}")
        self._redis = redis
        self._keys = [session_key(prefix, account, slot) for slot in range(max_sessions)]
        self._ttl_ms = _millis(ttl)
        self._acquire = redis.register_script(_ACQUIRE)
        self._hold = redis.register_script(_HOLD)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, owner: str) -> int | None:
        """Take a free slot for `owner` (or the one it holds already); None if all are held."""
        slot = int(await self._acquire(keys=self._keys, args=[owner, self._ttl_ms]))
        return None if slot < 0 else slot

    async def renew(self, slot: int, owner: str) -> bool:
        """Extend `owner`'s lease, re-taking the slot if it vanished; False if another holds it."""
        return bool(await self._hold(keys=[self._key(slot)], args=[owner, self._ttl_ms]))

    async def release(self, slot: int, owner: str) -> None:
        """Free the slot, unless someone other than `owner` holds it by now."""
        await self._release(keys=[self._key(slot)], args=[owner])

    async def holders(self) -> dict[int, str]:
        """Who holds which slot now."""
        values = await cast(Awaitable[list[bytes | str | None]], self._redis.mget(self._keys))
        return {slot: _text(value) for slot, value in enumerate(values) if value is not None}

    def _key(self, slot: int) -> str:
        if not 0 <= slot < len(self._keys):
            raise ValueError(f"no session slot {slot}: the account has {len(self._keys)}")
        return self._keys[slot]


class LeaderLock:
    """One leader among contenders: a lease its holder keeps renewing."""

    def __init__(self, redis: AsyncRedis, key: str, ttl: float = 5.0) -> None:
        self.key = key
        self._ttl_ms = _millis(ttl)
        self._hold = redis.register_script(_HOLD)
        self._release = redis.register_script(_RELEASE)

    async def hold(self, owner: str) -> bool:
        """Take or renew the lead; True while `owner` leads."""
        return bool(await self._hold(keys=[self.key], args=[owner, self._ttl_ms]))

    async def release(self, owner: str) -> None:
        """Step down, if `owner` still leads."""
        await self._release(keys=[self.key], args=[owner])
