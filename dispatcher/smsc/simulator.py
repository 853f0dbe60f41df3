"""An SMPP 3.4 SMSC simulator: binds, pipelined submit_sm, delivery receipts, throttling."""

import asyncio
import functools
import itertools
import logging
import random
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, Self, TypeVar

from dispatcher.smsc import pdu
from dispatcher.smsc.pdu import CommandId, ShortMessage, Status

log = logging.getLogger("dispatcher.smsc")

OUTCOMES = tuple(pdu.MESSAGE_STATES)
SMSC_SYSTEM_ID = "SMSCSIM"
_MAX_PENDING_RECEIPTS = 100_000  # per system_id, kept while no receiver is bound
_MAX_SEQUENCE = 0x7FFFFFFF
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


@dataclass(slots=True)
class _Receipt:
    system_id: str
    message_id: str
    stat: str
    submit: ShortMessage
    submit_date: str


def mask(address: str) -> str:
    """An address fit for logs: only its last three digits."""
    return "***" + address[-3:] if len(address) > 3 else "***"


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


class _TokenBucket:
    """`rate` tokens a second, holding at most one second's worth."""

    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class _Session(asyncio.Protocol):
    """One ESME connection: parses PDUs in bulk and queues answers for one write per turn."""

    def __init__(self, simulator: "Simulator") -> None:
        self._sim = simulator
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._sequence = 0
        self._bucket: _TokenBucket | None = None
        self.peer = "?"
        self.system_id = ""
        self.can_transmit = False
        self.can_receive = False
        self.unacked: dict[int, _Receipt] = {}
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._handlers: dict[int, Callable[[int, int, bytes], None]] = {
            CommandId.SUBMIT_SM: self._on_submit_sm,
            CommandId.DELIVER_SM_RESP: self._on_deliver_sm_resp,
            CommandId.ENQUIRE_LINK: self._on_enquire_link,
            CommandId.ENQUIRE_LINK_RESP: lambda _sequence, _status, _body: None,
            CommandId.UNBIND: self._on_unbind,
        }
        for bind in (
            CommandId.BIND_TRANSCEIVER,
            CommandId.BIND_TRANSMITTER,
            CommandId.BIND_RECEIVER,
        ):
            self._handlers[bind] = functools.partial(self._on_bind, bind)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host, port = transport.get_extra_info("peername", ("?", "?"))[:2]
        self.peer = f"{host}:{port}"
        self._sim.session_opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        log.info("connection from %s closed%s", self.peer, f": {exc}" if exc else "")
        self._transport = None
        self.can_transmit = self.can_receive = False
        self._sim.session_closed(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()  # a peer that does not read gets no new answers

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    @property
    def is_closed(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def close(self, *, abort: bool = False) -> None:
        self.can_transmit = self.can_receive = False
        if self._transport is not None:
            self._transport.abort() if abort else self._transport.close()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        size, offset = len(buffer), 0
        handlers = self._handlers
        while size - offset >= pdu.HEADER_SIZE and not self.is_closed:
            length, command_id, status, sequence = pdu.HEADER.unpack_from(buffer, offset)
            if not pdu.HEADER_SIZE <= length <= pdu.MAX_PDU_SIZE:
                log.warning("bad command_length %d from %s; closing", length, self.peer)
                self.queue(pdu.build_generic_nack(sequence, Status.INVALID_COMMAND_LENGTH))
                self._sim.flush()
                self.close()
                return
            end = offset + length
            if end > size:
                break
            body = bytes(buffer[offset + pdu.HEADER_SIZE : end])
            offset = end
            handler = handlers.get(command_id)
            if handler is None:
                self._on_other(command_id, sequence)
            else:
                handler(sequence, status, body)
        del buffer[:offset]
        self._sim.flush()

    def queue(self, data: bytes) -> None:
        if not self._out:
            self._sim.mark_dirty(self)
        self._out.append(data)

    def write_out(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(self._out))
        self._out.clear()

    def send_receipt(self, receipt: _Receipt) -> None:
        self._sequence = self._sequence % _MAX_SEQUENCE + 1
        self.unacked[self._sequence] = receipt
        self.queue(pdu.build_deliver_sm(self._sequence, self._sim.receipt_message(receipt)))
        self._sim.stats.receipts_sent += 1

    def _nack(self, sequence: int, status: int) -> None:
        self._sim.stats.generic_nacks += 1
        self.queue(pdu.build_generic_nack(sequence, status))

    def _on_bind(self, command_id: int, sequence: int, _status: int, body: bytes) -> None:
        sim = self._sim
        try:
            request = pdu.parse_bind(body)
        except pdu.PduError as error:
            log.warning("malformed bind from %s: %s", self.peer, error)
            self._nack(sequence, Status.INVALID_COMMAND_LENGTH)
            return
        status = Status.ALREADY_BOUND if self.system_id else sim.check_credentials(request)
        self.queue(pdu.build_bind_resp(command_id, sequence, SMSC_SYSTEM_ID, status))
        name = CommandId(command_id).name.lower()
        if status != Status.OK:
            sim.stats.bind_failures += 1
            log.info("%s from %s as %r: %s", name, self.peer, request.system_id, status.name)
            return
        sim.stats.binds += 1
        log.info("%s from %s as %r accepted", name, self.peer, request.system_id)
        self.system_id = request.system_id
        self.can_transmit = command_id != CommandId.BIND_RECEIVER
        self.can_receive = command_id != CommandId.BIND_TRANSMITTER
        if sim.config.max_rate is not None:
            self._bucket = _TokenBucket(sim.config.max_rate)
        if self.can_receive:
            sim.deliver_pending(self)

    def _on_submit_sm(self, sequence: int, _status: int, body: bytes) -> None:
        sim = self._sim
        if not self.can_transmit:
            sim.respond(self, pdu.build_submit_sm_resp(sequence, "", Status.INVALID_BIND_STATUS))
            return
        try:
            message = pdu.parse_short_message(body)
        except pdu.PduError as error:
            log.warning("malformed submit_sm from %s: %s", self.peer, error)
            self._nack(sequence, Status.INVALID_COMMAND_LENGTH)
            return
        if not message.destination_addr:
            sim.stats.rejected += 1
            status = Status.INVALID_DESTINATION
        elif self._bucket is not None and not self._bucket.take():
            sim.stats.throttled += 1
            status = Status.THROTTLED
        else:
            message_id, receipt = sim.accept(self.system_id, message)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("submit_sm to %s: id %s", mask(message.destination_addr), message_id)
            sim.respond(self, pdu.build_submit_sm_resp(sequence, message_id), receipt)
            return
        log.debug("submit_sm to %s: %s", mask(message.destination_addr), status.name)
        sim.respond(self, pdu.build_submit_sm_resp(sequence, "", status))

    def _on_deliver_sm_resp(self, sequence: int, status: int, _body: bytes) -> None:
        receipt = self.unacked.pop(sequence, None)
        if receipt is None:
            log.warning("deliver_sm_resp from %s for unknown sequence %d", self.peer, sequence)
        elif status == Status.OK:
            self._sim.stats.receipts_acked += 1
        else:
            self._sim.stats.receipts_nacked += 1
            log.info("receipt %s refused by %s: 0x%02x", receipt.message_id, self.peer, status)

    def _on_enquire_link(self, sequence: int, _status: int, _body: bytes) -> None:
        self._sim.stats.enquire_links += 1
        self.queue(pdu.build_enquire_link_resp(sequence))

    def _on_unbind(self, sequence: int, _status: int, _body: bytes) -> None:
        self._sim.stats.unbinds += 1
        self.can_transmit = self.can_receive = False
        answer = self._sim.config.answer_unbind
        log.info("unbind from %s%s", self.peer, "" if answer else " (not answered)")
        if answer:
            self.queue(pdu.build_unbind_resp(sequence))

    def _on_other(self, command_id: int, sequence: int) -> None:
        if command_id & pdu.RESPONSE_BIT:  # never answer a response
            log.info("ignoring response 0x%08x from %s", command_id, self.peer)
        else:
            log.info("unsupported command 0x%08x from %s", command_id, self.peer)
            self._nack(sequence, Status.INVALID_COMMAND_ID)


class Simulator:
    """An SMSC on asyncio: create, `await start()`, read `port` and `stats`, `await stop()`."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.stats = SimulatorStats()
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
        message_id = str(next(self._ids))
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


class ThreadedSimulator:
    """A simulator on its own event loop in a daemon thread, for tests of sync code."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.simulator = Simulator(config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="smsc-simulator", daemon=True)
        self._port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def start(self) -> None:
        """Start the thread and the simulator on it; raise what the simulator's start raised."""
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.simulator.start(), self._loop).result(10.0)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
            raise
        self._port = self.simulator.port

    @property
    def port(self) -> int:
        """The port actually listened on."""
        return self._port

    @property
    def stats(self) -> SimulatorStats:
        """The live counters (updated by the simulator thread)."""
        return self.simulator.stats

    def stop(self) -> None:
        """Stop the simulator and its thread; safe to call twice."""
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self.simulator.stop(), self._loop)
        try:
            future.result(10.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve_in_thread(config: SimulatorConfig) -> ThreadedSimulator:
    """Start a simulator in a daemon thread; call `.stop()` (or use `with`) when done."""
    threaded = ThreadedSimulator(config)
    threaded.start()
    return threaded
