"""An SMSC account shared through a real Redis: the contracted rate, session slots, the leader."""

import asyncio
import bisect
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import cast

import pytest
import redis
import redis.asyncio

from dispatcher import embedded_redis
from dispatcher.sending.accounts import (
    Grant,
    LeaderLock,
    Pacer,
    SessionSlots,
    SharedRate,
    rate_key,
    session_key,
)
from dispatcher.sending.worker import RATE_TOLERANCE

KEY = rate_key("test", "gialai")


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def aclient(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def send_flat_out(pacer: Pacer, seconds: float) -> list[float]:
    """Take every slot the pacer gives for `seconds`; the time each one was taken."""
    taken: list[float] = []
    end = time.monotonic() + seconds
    while (now := time.monotonic()) < end:
        taken.extend([now] * pacer.take(1000))
        time.sleep(pacer.wait())
    return taken


def rate_between(times: list[float], start: float, end: float) -> float:
    return (bisect.bisect_left(times, end) - bisect.bisect_left(times, start)) / (end - start)


def busiest_window(times: list[float], width: float) -> int:
    return max(bisect.bisect_left(times, t + width) - i for i, t in enumerate(times))


def test_sessions_on_three_threads_share_the_contracted_rate(client: redis.Redis) -> None:
    rate = SharedRate(client, KEY, 500)
    results: list[list[float]] = []
    threads = [
        threading.Thread(target=lambda: results.append(send_flat_out(Pacer(rate), 3.0)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 3 and all(results), "every session sends"
    times = sorted(t for result in results for t in result)
    start, end = times[0] + 0.5, times[-1] - 0.5
    measured = rate_between(times, start, end)
    worst = busiest_window(times, 0.1)
    print(f"aggregate {measured:.1f}/s over {end - start:.2f} s, busiest 100 ms: {worst}")
    assert measured == pytest.approx(500, rel=0.02)
    assert worst <= 500 / 10 + rate.grant


def test_a_session_alone_gets_the_whole_rate(client: redis.Redis) -> None:
    # With the workers' tolerance for an ask that comes a little late. The benchmark holds the
    # rate to 2 %; here, on a machine that may be busy, a sender starved of CPU may lose slots.
    rate = SharedRate(client, KEY, 500, tolerance=RATE_TOLERANCE)
    times = send_flat_out(Pacer(rate), 1.5)
    measured = rate_between(times, times[0] + 0.25, times[-1] - 0.25)
    print(f"alone: {measured:.1f}/s")
    assert measured == pytest.approx(500, rel=0.05)


def test_an_idle_account_grants_at_once(client: redis.Redis) -> None:
    rate = SharedRate(client, KEY, 300)
    assert rate.reserve() == Grant(count=6, delay=0.0, interval=1 / 300)  # 20 ms worth
    expires_in = cast(int, client.pttl(KEY))
    assert 0 < expires_in <= 3020 + 20  # the schedule expires a little while after its end
    pacer = Pacer(SharedRate(client, rate_key("test", "idle"), 300))
    assert pacer.take(4) == 1  # the first at once, the next ones 1/300 s apart
    assert 0 < pacer.wait() <= 1 / 300


def test_a_late_ask_may_take_the_slots_missed_within_the_tolerance(client: redis.Redis) -> None:
    rate = SharedRate(client, KEY, 1000, grant=10, tolerance=0.01)
    first = rate.reserve()
    assert first.count == 10 and first.delay == pytest.approx(-0.01, abs=0.001)
    time.sleep(0.05)  # 40 ms past the end of that grant: only the last 10 ms are still free
    late = rate.reserve()
    assert late.count == 10 and late.delay == pytest.approx(-0.01, abs=0.002)


def test_two_hosts_get_consecutive_slots_never_overlapping(redis_url: str) -> None:
    first, second = redis.Redis.from_url(redis_url), redis.Redis.from_url(redis_url)
    try:
        rates = [SharedRate(first, KEY, 100, grant=5), SharedRate(second, KEY, 100, grant=5)]
        starts = []
        for i in range(4):
            asked = time.monotonic()
            grant = rates[i % 2].reserve()
            assert grant.count == 5
            starts.append(asked + grant.delay)
        gaps = [b - a for a, b in pairwise(starts)]
        assert gaps == pytest.approx([0.05] * 3, abs=0.005)  # 5 slots of 10 ms each
    finally:
        first.close()
        second.close()


def test_nothing_is_granted_beyond_the_horizon(client: redis.Redis) -> None:
    rate = SharedRate(client, KEY, 100, grant=10, horizon=0.2)  # a grant is 100 ms
    grants = [rate.reserve() for _ in range(4)]
    assert [g.count for g in grants] == [10, 10, 10, 0]
    assert grants[0].delay == 0.0
    assert 0.09 < grants[1].delay <= 0.1
    refused = grants[3]
    assert 0.0 < refused.delay <= 0.1  # the schedule is 300 ms ahead, 100 ms past the horizon
    time.sleep(refused.delay)
    again = rate.reserve()
    assert again.count == 10 and again.delay == pytest.approx(0.2, abs=0.01)


def test_a_late_session_drops_its_stale_slots_instead_of_bursting(client: redis.Redis) -> None:
    now = [100.0]
    pacer = Pacer(SharedRate(client, KEY, 100, grant=10), clock=lambda: now[0], late_drop=0.05)
    assert pacer.take(100) == 1  # a grant of 10 slots, 10 ms apart: the first is due
    now[0] += 0.085  # slots 1..8 are due by now; those before 35 ms ago are stale
    assert pacer.take(100) == 5  # slots 4..8, at 40, 50, 60, 70, 80 ms
    now[0] += 0.01
    assert pacer.take(100) == 1


def test_without_a_shared_rate_everything_goes() -> None:
    pacer = Pacer(None)
    assert pacer.take(10_000) == 10_000
    assert pacer.wait() == 0.0


def levels(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.levelname for r in caplog.records if r.name == "dispatcher.sending.accounts"]


def test_no_redis_means_nothing_sent_and_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    nowhere = redis.Redis.from_url("redis://127.0.0.1:1")
    pacer = Pacer(SharedRate(nowhere, KEY, 500), clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="dispatcher.sending.accounts"):
        for _ in range(10):
            assert pacer.take(100) == 0
            assert 0 < pacer.wait() <= 0.5
            now[0] += 1.0  # long enough that every take tries Redis again
    assert levels(caplog) == ["WARNING"]
    nowhere.close()


def wait_for(check: Callable[[], bool], timeout: float) -> float:
    """Seconds it took `check` to pass; fail after `timeout`."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "condition not met in time"
        time.sleep(0.01)
    return time.monotonic() - start


def test_a_session_sends_again_once_redis_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    var_dir = tmp_path / "own-redis"  # a server of its own, to stop and start again
    embedded_redis.ensure_running(var_dir)
    client = redis.Redis.from_url(embedded_redis.url(var_dir), socket_timeout=1)
    pacer = Pacer(SharedRate(client, KEY, 200, grant=1))  # no slot left in hand at the outage
    try:
        with caplog.at_level(logging.INFO, logger="dispatcher.sending.accounts"):
            wait_for(lambda: pacer.take(1) > 0, timeout=1)
            embedded_redis.stop(var_dir)
            assert send_flat_out(pacer, 0.6) == [], "nothing goes while Redis is down"
            assert pacer.take(1) == 0 and 0 < pacer.wait() <= 0.5
            embedded_redis.ensure_running(var_dir)
            wait_for(lambda: pacer.take(1) > 0, timeout=2)
        assert levels(caplog) == ["WARNING", "INFO"]
    finally:
        client.close()
        embedded_redis.stop(var_dir)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float) -> float:
    """Seconds it took `check` to pass; fail after `timeout`."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < timeout, "condition not met in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def test_no_more_sessions_than_the_contract(aclient: redis.asyncio.Redis) -> None:
    slots = SessionSlots(aclient, "test", "gialai", 2)
    assert await slots.acquire("host-a/1") == 0
    assert await slots.acquire("host-b/1") == 1
    assert await slots.acquire("host-c/1") is None
    assert await slots.acquire("host-a/1") == 0  # the slot it holds already
    assert await slots.holders() == {0: "host-a/1", 1: "host-b/1"}
    assert await aclient.get(session_key("test", "gialai", 1)) == b"host-b/1"


async def test_a_slot_nobody_renews_goes_to_a_new_owner(aclient: redis.asyncio.Redis) -> None:
    slots = SessionSlots(aclient, "test", "gialai", 1, ttl=0.3)
    assert await slots.acquire("host-a/1") == 0
    started = time.monotonic()
    while time.monotonic() - started < 0.6:  # renewed: never lost
        assert await slots.renew(0, "host-a/1")
        assert await slots.acquire("host-b/1") is None
        await asyncio.sleep(0.1)
    took = await eventually(lambda: has_slot(slots, "host-b/1"), timeout=0.3 + 0.2)
    assert took > 0.15  # not before host-a's lease ran out
    assert not await slots.renew(0, "host-a/1")
    assert await slots.holders() == {0: "host-b/1"}


async def has_slot(slots: SessionSlots, owner: str) -> bool:
    return await slots.acquire(owner) is not None


async def test_renewing_after_redis_restarted_empty_takes_the_slot_again(
    aclient: redis.asyncio.Redis,
) -> None:
    slots = SessionSlots(aclient, "test", "gialai", 2, ttl=5)
    assert await slots.acquire("host-a/1") == 0
    assert await slots.acquire("host-b/1") == 1
    await aclient.flushdb()
    assert await slots.renew(1, "host-b/1")
    assert await slots.holders() == {1: "host-b/1"}
    assert 0 < await aclient.pttl(session_key("test", "gialai", 1)) <= 5000


async def test_only_the_holder_renews_or_releases(aclient: redis.asyncio.Redis) -> None:
    slots = SessionSlots(aclient, "test", "gialai", 1)
    assert await slots.acquire("host-a/1") == 0
    assert not await slots.renew(0, "host-b/1")
    await slots.release(0, "host-b/1")
    assert await slots.holders() == {0: "host-a/1"}
    await slots.release(0, "host-a/1")
    assert await slots.holders() == {}
    assert await slots.acquire("host-b/1") == 0
    with pytest.raises(ValueError):
        await slots.renew(1, "host-b/1")


async def test_one_leader_and_a_takeover_when_it_stops(aclient: redis.asyncio.Redis) -> None:
    lock = LeaderLock(aclient, "test:leader", ttl=0.3)
    assert await lock.hold("host-a")
    started = time.monotonic()
    while time.monotonic() - started < 0.6:
        assert await lock.hold("host-a")
        assert not await lock.hold("host-b")
        await asyncio.sleep(0.1)
    took = await eventually(lambda: lock.hold("host-b"), timeout=0.3 + 0.2)
    assert took > 0.15
    assert not await lock.hold("host-a")
    await lock.release("host-a")  # no longer its lead to give up
    assert not await lock.hold("host-a")
    await lock.release("host-b")
    assert await lock.hold("host-a")
