"""An SMPP 3.4 SMSC simulator: binds, pipelined submit_sm, delivery receipts, throttling."""

import asyncio
import functools
import itertools
import logging
import random
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, Self, TypeVar

from dispatcher.smsc import pdu
from dispatcher.smsc.pdu import ShortMessage, Status
from dispatcher.smsc.session import SMSC_SYSTEM_ID, _Receipt, _Session, mask
from dispatcher.smsc.threaded import ThreadedSimulator, serve_in_thread

__all__ = [
    "OUTCOMES",
    "SMSC_SYSTEM_ID",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "ThreadedSimulator",
    "mask",
    "serve_in_thread",
]

log = logging.getLogger("dispatcher.smsc")

OUTCOMES = tuple(pdu.MESSAGE_STATES)
_MAX_PENDING_RECEIPTS = 100_000  # per system_id, kept while no receiver is bound
_T = TypeVar("_T")


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulated SMSC listens, authenticates and answers."""

    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str | None = None
    password: str | None = None
    receipt_delay: float = 0.0
    outcomes: Mapping[str, float] = field(default_factory=lambda: {"DELIVRD": 1.0})
    max_rate: float | None = None
    latency: float = 0.0
    answer_unbind: bool = True
    seed: int | None = None
    keep_messages: int = 0  # how many accepted submit_sm to keep in `Simulator.accepted`

    def __post_init__(self) -> None:
        unknown = set(self.outcomes) - set(OUTCOMES)
        if unknown:
            raise ValueError(f"unknown outcomes {sorted(unknown)}; use {', '.join(OUTCOMES)}")
        if any(weight < 0 for weight in self.outcomes.values()) or not any(
            weight > 0 for weight in self.outcomes.values()
        ):
            raise ValueError("outcome weights must be >= 0 with at least one > 0")
        if self.receipt_delay < 0 or self.latency < 0:
            raise ValueError("receipt_delay and latency must be >= 0")
        if self.max_rate is not None and self.max_rate <= 0:
            raise ValueError("max_rate must be > 0 (or None for no limit)")


@dataclass
class SimulatorStats:
    """Counters since the simulator was created; `submits` counts accepted submit_sm only."""

    binds: int = 0
    bind_failures: int = 0
    submits: int = 0
    rejected: int = 0
    throttled: int = 0
    receipts_sent: int = 0
    receipts_acked: int = 0
    receipts_nacked: int = 0
    enquire_links: int = 0
    unbinds: int = 0
    generic_nacks: int = 0
    last_submit: float = 0.0  # time.monotonic() of the last accepted submit_sm


@functools.lru_cache(maxsize=8)
def _minute_stamp(minute: int) -> str:
    return time.strftime("%y%m%d%H%M", time.gmtime(minute * 60))


def _stamp(now: float) -> str:
    return _minute_stamp(int(now // 60))


class _FifoTimer(Generic[_T]):
    """Releases items a fixed delay after they were pushed, in order, on one timer handle."""

    def __init__(
        self,
        delay: float,
        release: Callable[[_T], None],
        after: Callable[[], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._delay = delay
        self._release = release
        self._after = after
        self._items: deque[tuple[float, _T]] = deque()
        self._handle: asyncio.TimerHandle | None = None

    def push(self, item: _T) -> None:
        due = self._loop.time() + self._delay
        self._items.append((due, item))
        if self._handle is None:
            self._handle = self._loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._handle = None
        limit = self._loop.time() + 0.001
        items = self._items
        while items and items[0][0] <= limit:
            self._release(items.popleft()[1])
        self._after()
        if items:
            self._handle = self._loop.call_at(items[0][0], self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._items.clear()


class Simulator:
    """An SMSC on asyncio: create, `await start()`, read `port` and `stats`, `await stop()`."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.stats = SimulatorStats()
        self.accepted: deque[ShortMessage] = deque(maxlen=config.keep_messages or 1)
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._dirty: list[_Session] = []
        self._pending: defaultdict[str, deque[_Receipt]] = defaultdict(deque)
        # Ids start from the clock so that a restarted simulator does not reuse them.
        self._ids = itertools.count(time.time_ns() // 1_000_000 * 1000)
        self._rng = random.Random(config.seed)
        weighted = [(stat, weight) for stat, weight in config.outcomes.items() if weight > 0]
        self._stats_choice = [stat for stat, _ in weighted]
        self._cum_weights = list(itertools.accumulate(weight for _, weight in weighted))
        self._responses: _FifoTimer[tuple[_Session, bytes, _Receipt | None]] | None = None
        self._receipts: _FifoTimer[tuple[_Session, _Receipt]] | None = None

    async def start(self) -> None:
        """Bind the listening socket and start accepting ESMEs."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._responses = _FifoTimer(self.config.latency, self._release_response, self.flush)
        self._receipts = _FifoTimer(self.config.receipt_delay, self._route_receipt, self.flush)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Session(self), self.config.host, self.config.port, reuse_address=True
        )
        log.info("SMSC simulator listening on %s:%d", self.config.host, self.port)

    @property
    def port(self) -> int:
        """The port actually listened on."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("simulator not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and close every session."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for timer in (self._responses, self._receipts):
            if timer is not None:
                timer.cancel()
        sessions = list(self._sessions)
        for session in sessions:
            session.close()
        if sessions:
            _, stuck = await asyncio.wait([s.closed for s in sessions], timeout=2.0)
            for session in sessions:
                if session.closed in stuck:
                    session.close(abort=True)
            await asyncio.wait([s.closed for s in sessions], timeout=1.0)
        await server.wait_closed()
        log.info("SMSC simulator stopped: %s", self.stats)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def session_opened(self, session: _Session) -> None:
        """Track a new connection."""
        log.info("connection from %s", session.peer)
        self._sessions.add(session)

    def session_closed(self, session: _Session) -> None:
        """Forget a connection; route its unacknowledged receipts elsewhere or keep them."""
        self._sessions.discard(session)
        unacked = [session.unacked.pop(seq) for seq in sorted(session.unacked)]
        for receipt in unacked:  # an SMSC redelivers what was never acknowledged
            self._route_receipt((session, receipt))
        self.flush()

    def mark_dirty(self, session: _Session) -> None:
        """Note that `session` has output queued for the next flush."""
        self._dirty.append(session)

    def flush(self) -> None:
        """Write out everything queued on every session, one write each."""
        for session in self._dirty:
            session.write_out()
        self._dirty.clear()

    def check_credentials(self, request: pdu.BindRequest) -> Status:
        """The bind_*_resp status for `request` under the configured credentials."""
        if self.config.system_id is not None and request.system_id != self.config.system_id:
            return Status.BIND_FAILED
        if self.config.password is not None and request.password != self.config.password:
            return Status.INVALID_PASSWORD
        return Status.OK

    def accept(self, system_id: str, message: ShortMessage) -> tuple[str, _Receipt | None]:
        """A new message id for an accepted submit, and its receipt if one is due."""
        self.stats.submits += 1
        self.stats.last_submit = time.monotonic()
        message_id = str(next(self._ids))
        if self.config.keep_messages:
            self.accepted.append(message)
        if len(self._stats_choice) == 1:
            stat = self._stats_choice[0]
        else:
            stat = self._rng.choices(self._stats_choice, cum_weights=self._cum_weights)[0]
        wanted = message.registered_delivery & 0x03
        if not (wanted & 0x01 or (wanted == 0x02 and stat != "DELIVRD")):
            return message_id, None
        return message_id, _Receipt(system_id, message_id, stat, message, _stamp(time.time()))

    def respond(self, session: _Session, resp: bytes, receipt: _Receipt | None = None) -> None:
        """Send a submit_sm_resp after the configured latency, then its receipt."""
        if self._responses is not None and self.config.latency > 0:
            self._responses.push((session, resp, receipt))
        else:
            self._release_response((session, resp, receipt))

    def _release_response(self, item: tuple[_Session, bytes, _Receipt | None]) -> None:
        session, resp, receipt = item
        if session.is_closed:
            return
        session.queue(resp)
        if receipt is None:
            return
        if self._receipts is not None and self.config.receipt_delay > 0:
            self._receipts.push((session, receipt))
        else:
            self._route_receipt((session, receipt))

    def _route_receipt(self, item: tuple[_Session, _Receipt]) -> None:
        origin, receipt = item
        target = origin if origin.can_receive and not origin.is_closed else None
        if target is None:
            target = next(
                (s for s in self._sessions if s.can_receive and s.system_id == receipt.system_id),
                None,
            )
        if target is not None:
            target.send_receipt(receipt)
            return
        pending = self._pending[receipt.system_id]
        if len(pending) >= _MAX_PENDING_RECEIPTS:
            log.warning(
                "no receiver for %r: receipt %s dropped", receipt.system_id, receipt.message_id
            )
            return
        pending.append(receipt)

    def deliver_pending(self, session: _Session) -> None:
        """Hand a newly bound receiver the receipts kept while none was bound."""
        pending = self._pending.pop(session.system_id, None)
        while pending:
            session.send_receipt(pending.popleft())

    def receipt_message(self, receipt: _Receipt) -> ShortMessage:
        """The deliver_sm body that reports `receipt` back to the submitter."""
        return pdu.receipt_for(
            receipt.submit,
            message_id=receipt.message_id,
            stat=receipt.stat,
            submit_date=receipt.submit_date,
            done_date=_stamp(time.time()),
        )
