"""Once a second, a worker's bind figures become its Prometheus metrics and the page's live counts.

Binds count on their own threads (`BindSession.counters`); this loop, on the worker's event
loop, takes what changed since its last look, adds it to the Prometheus counters, sets the bind
gauges, and writes the second's counts and the binds' states to Redis (`watching.live`). While
Redis is away the counts are kept and written with the next second that works.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable

from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

from dispatcher.sending import metrics
from dispatcher.sending.bind import BindSession
from dispatcher.sending.matching import ReceiptMatcher
from dispatcher.watching import live

PUBLISH_SECONDS = 1.0
log = logging.getLogger("dispatcher.watching")


class Publisher:
    """Turns this worker's bind counters into metrics and Redis figures."""

    def __init__(
        self,
        *,
        redis: AsyncRedis,
        namespace: str,
        binds: Callable[[], Iterable[BindSession]],
        matcher: ReceiptMatcher,
        worker_id: Callable[[], int],
    ) -> None:
        self._redis = redis
        self._namespace = namespace
        self._binds = binds
        self._matcher = matcher
        self._worker_id = worker_id
        self._seen: dict[str, tuple[BindSession, dict[str, int]]] = {}
        self._unwritten: Counter[str] = Counter()
        self._redis_down = False

    def tick(self) -> tuple[Counter[str], list[live.BindState]]:
        """Metrics updated from what the binds counted since the last tick; Redis figures."""
        counts: Counter[str] = Counter()
        states = []
        for bind in list(self._binds()):
            name, account = bind.name_, bind.account.name
            now = dict(bind.counters)  # one C-level copy: safe against the bind's thread
            before_bind, before = self._seen.get(name, (None, {}))
            previous = before if before_bind is bind else {}
            self._seen[name] = (bind, now)
            for key, value in now.items():
                if (delta := value - previous.get(key, 0)) > 0:
                    _count(account, name, key, delta, counts)
            in_use = bind.window_in_use
            metrics.BIND_UP.labels(account, name).set(1 if bind.state == "up" else 0)
            metrics.WINDOW_IN_USE.labels(account, name).set(in_use)
            metrics.WINDOW_SIZE.labels(account, name).set(bind.account.window)
            states.append(
                live.BindState(
                    account=account,
                    bind=name,
                    worker=self._worker_id(),
                    state=bind.state,
                    window_in_use=in_use,
                    window=bind.account.window,
                    held=bind.held(),
                )
            )
        self._forget_gone({state.bind for state in states})
        metrics.UNMATCHED.set(self._matcher.waiting)
        metrics.ABANDONED.set(self._matcher.abandoned)
        return counts, states

    def _forget_gone(self, held: set[str]) -> None:
        """A bind this worker no longer holds leaves its gauges (another worker may hold it)."""
        for name in set(self._seen) - held:
            bind, _ = self._seen.pop(name)
            for gauge in (metrics.BIND_UP, metrics.WINDOW_IN_USE, metrics.WINDOW_SIZE):
                try:
                    gauge.remove(bind.account.name, name)
                except KeyError:
                    pass

    async def publish(self) -> None:
        """One tick, written to Redis."""
        counts, states = self.tick()
        self._unwritten.update(counts)
        worker = live.WorkerState(
            worker=self._worker_id(),
            unmatched=self._matcher.waiting,
            abandoned=self._matcher.abandoned,
        )
        try:
            await live.publish(
                self._redis, self._namespace, counts=self._unwritten, binds=states, worker=worker
            )
        except RedisError as error:
            if not self._redis_down:
                log.warning("cannot publish live figures (%s); keeping them", error)
            self._redis_down = True
            return
        self._redis_down = False
        self._unwritten.clear()

    async def run(self) -> None:
        """Publish every second until cancelled."""
        while True:
            await asyncio.sleep(PUBLISH_SECONDS)
            await self.publish()


def _count(account: str, bind: str, key: str, delta: int, counts: Counter[str]) -> None:
    kind, _, detail = key.partition(":")
    if kind == "status":
        metrics.SUBMITS.labels(account, bind, detail).inc(delta)
        accepted = detail == "ESME_ROK"
        counts[f"{live.ACCEPTED}|{bind}" if accepted else f"{live.ANSWERED}|{bind}|{detail}"] += (
            delta
        )
    elif kind == "throttled":
        metrics.THROTTLED.labels(account).inc(delta)
    elif kind == "retry":
        metrics.RETRIES.labels(account, detail).inc(delta)
    elif kind == "receipt":
        metrics.RECEIPTS.labels(account, detail).inc(delta)
        counts[f"{live.RECEIVED}|{bind}"] += delta
