"""An SMPP 3.4 SMSC simulator: binds, pipelined submit_sm, receipts, throttling and faults."""

import asyncio
import itertools
import logging
import os
import random
import time
from collections import Counter, defaultdict, deque
from pathlib import Path
from types import TracebackType
from typing import Self

from dispatcher.smsc.config import (
    NO_ANSWER,
    OUTCOMES,
    Faults,
    SimulatorConfig,
    SimulatorStats,
    read_stats,
)
from dispatcher.smsc.pdu import BindRequest, ShortMessage, Status
from dispatcher.smsc.receipt_styles import REPEAT_GAP, ReceiptStyle, stamp
from dispatcher.smsc.record import read_record, read_record_parts, record_line
from dispatcher.smsc.session import (
    SMSC_SYSTEM_ID,
    VENDOR_COMMAND_ID,
    _Receipt,
    _Session,
    _TokenBucket,
    mask,
)
from dispatcher.smsc.timer import FifoTimer

__all__ = [
    "NO_ANSWER",
    "OUTCOMES",
    "SMSC_SYSTEM_ID",
    "VENDOR_COMMAND_ID",
    "Faults",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "mask",
    "read_record",
    "read_record_parts",
    "read_stats",
]

log = logging.getLogger("dispatcher.smsc")

_MAX_PENDING_RECEIPTS = 100_000  # per system_id, kept while no receiver is bound
STATS_INTERVAL = 0.5  # seconds between rewrites of the stats file


class Simulator:
    """An SMSC on asyncio: create, `await start()`, read `port` and `stats`, `await stop()`.

    `faults` may be changed while it runs, on its event loop (`stall()`, `resume()` and
    `drop_connections()` too); `ThreadedSimulator` has thread-safe equivalents.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.stats = SimulatorStats()
        self.accepted: deque[ShortMessage] = deque(maxlen=config.keep_messages or 1)
        self.faults: Faults = config.faults()
        self.submit_faults = False
        self.stalled = False
        self._draws: tuple[tuple[float, int], ...] = ()
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._dirty: list[_Session] = []
        self._pending: defaultdict[str, deque[_Receipt]] = defaultdict(deque)
        self._buckets: dict[str, _TokenBucket] = {}
        self._bound: Counter[str] = Counter()
        # Ids start from the clock so that a restarted simulator does not reuse them.
        self._ids = itertools.count(time.time_ns() // 1_000_000 * 1000)
        self._rng = random.Random(config.seed)
        self._fault_rng = random.Random(config.seed)
        weighted = [(stat, weight) for stat, weight in config.outcomes.items() if weight > 0]
        self._stats_choice = [stat for stat, _ in weighted]
        self._cum_weights = list(itertools.accumulate(weight for _, weight in weighted))
        self.style = ReceiptStyle(config, self.stats)
        self._submit_id = self.style.submit_id
        self._receipt_id = self.style.receipt_id
        self._responses: FifoTimer[tuple[_Session, bytes, _Receipt | None]] | None = None
        self._receipts: FifoTimer[tuple[_Session, _Receipt]] | None = None
        self._late: FifoTimer[tuple[_Session, _Receipt]] | None = None
        self._copies: FifoTimer[tuple[_Session, _Receipt]] | None = None
        self._record_fd: int | None = None
        self._record: list[str] = []
        self._stats_handle: asyncio.TimerHandle | None = None
        self.faults.watch(self._faults_changed)
        self._faults_changed()

    async def start(self) -> None:
        """Bind the listening socket and start accepting ESMEs."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._responses = FifoTimer(self.config.latency, self._release_response, self.flush)
        self._receipts = FifoTimer(self.config.receipt_delay, self._release_receipt, self.flush)
        self._late = FifoTimer(self.style.late_delay, self._release_receipt, self.flush)
        self._copies = FifoTimer(REPEAT_GAP, self._route_receipt, self.flush)
        if self.config.record is not None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
            self._record_fd = os.open(self.config.record, flags, 0o644)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _Session(self), self.config.host, self.config.port, reuse_address=True
            )
        except BaseException:
            self._close_record()
            raise
        if self.config.stats_file is not None:
            self._write_stats_periodically()
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
        for timer in (self._responses, self._receipts, self._late, self._copies):
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
        self._close_record()
        if self._stats_handle is not None:
            self._stats_handle.cancel()
            self._stats_handle = None
            self._write_stats()
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

    # Faults changed at run time.

    def stall(self) -> None:
        """Read nothing and answer nothing on any session until `resume()`; keep them open."""
        self.faults.stalled = True

    def resume(self) -> None:
        """End a stall: read what the ESMEs sent meanwhile, write what was held back."""
        self.faults.stalled = False

    def drop_connections(self) -> int:
        """Abort every ESME connection, answering nothing in flight; keep listening."""
        sessions = list(self._sessions)
        for session in sessions:
            session.drop()
        self.stats.connections_dropped += len(sessions)
        log.info("dropped %d connection(s)", len(sessions))
        return len(sessions)

    def _faults_changed(self) -> None:
        faults = self.faults
        self._draws = faults.submit_draws
        self.submit_faults = bool(self._draws) or faults.vendor_pdu_every > 0
        if faults.stalled == self.stalled:
            return
        self.stalled = faults.stalled
        log.info("simulator %s", "stalled" if self.stalled else "resumed")
        for session in list(self._sessions):
            session.stall() if self.stalled else session.resume()
        self.flush()

    def submit_fault(self) -> int | None:
        """For one submit_sm: NO_ANSWER, an error status to answer, or None to accept it."""
        draw = self._fault_rng.random()
        for threshold, fault in self._draws:
            if draw < threshold:
                return fault
        return None

    # What sessions call.

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
        """Record what was accepted, then write out what every session has queued, one write each.

        While stalled the sessions' output is held back (and written on resume).
        """
        if self._record:
            self._write_record()
        if self.stalled:
            return
        for session in self._dirty:
            session.write_out()
        self._dirty.clear()

    def check_credentials(self, request: BindRequest) -> Status:
        """The bind_*_resp status for `request` under the configured credentials."""
        if self.config.system_id is not None and request.system_id != self.config.system_id:
            return Status.BIND_FAILED
        if self.config.password is not None and request.password != self.config.password:
            return Status.INVALID_PASSWORD
        return Status.OK

    def admit(self, session: _Session, request: BindRequest) -> Status:
        """The bind_*_resp status for `request`; when OK, the session holds a slot."""
        status = self.check_credentials(request)
        if status != Status.OK:
            return status
        limit = self.config.max_sessions
        if limit is not None and self._bound[request.system_id] >= limit:
            self.stats.sessions_refused += 1
            log.info("%r already has %d session(s) bound: bind refused", request.system_id, limit)
            return Status.BIND_FAILED
        self._bound[request.system_id] += 1
        self.stats.sessions_bound += 1
        session.holds_slot = True
        return Status.OK

    def release(self, session: _Session) -> None:
        """Free the slot of a session that unbound or closed (once)."""
        if session.holds_slot:
            session.holds_slot = False
            self._bound[session.system_id] -= 1
            self.stats.sessions_bound -= 1

    def bucket(self, system_id: str) -> _TokenBucket | None:
        """The rate bucket every session of `system_id` draws from (None: no limit)."""
        rate = self.config.max_rate
        if rate is None:
            return None
        bucket = self._buckets.get(system_id)
        if bucket is None:
            bucket = self._buckets[system_id] = _TokenBucket(rate, self.config.effective_burst)
        return bucket

    def accept(self, system_id: str, message: ShortMessage) -> tuple[str, _Receipt | None]:
        """A new message id for an accepted submit, and its receipt if one is due."""
        self.stats.submits += 1
        self.stats.last_submit = time.monotonic()
        number = next(self._ids)
        message_id = self._submit_id(number)
        if self.config.keep_messages:
            self.accepted.append(message)
        if self._record_fd is not None:
            self._record.append(record_line(message, message_id))
        if len(self._stats_choice) == 1:
            stat = self._stats_choice[0]
        else:
            stat = self._rng.choices(self._stats_choice, cum_weights=self._cum_weights)[0]
        wanted = message.registered_delivery & 0x03
        receipt = None
        if wanted & 0x01 or (wanted == 0x02 and stat != "DELIVRD"):
            receipt_id = message_id if self._receipt_id is None else self._receipt_id(number)
            receipt = _Receipt(system_id, receipt_id, stat, message, stamp(time.time()))
        if self.style.per_message is not None:
            receipt = self.style.one_per_message(system_id, message, receipt)
        return message_id, receipt

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
        if receipt is not None:
            self._schedule_receipt(session, receipt)

    def _schedule_receipt(self, session: _Session, receipt: _Receipt) -> None:
        timer = self._receipts
        if self.style.reorders and self.style.draw(receipt):
            timer = self._late
        if timer is not None and timer.delay > 0:
            timer.push((session, receipt))
        else:
            self._release_receipt((session, receipt))

    def _release_receipt(self, item: tuple[_Session, _Receipt]) -> None:
        receipt = item[1]
        if receipt.repeat and self._copies is not None:
            receipt.repeat = False  # one copy, even if the first is redelivered
            self._copies.push(item)
        self._route_receipt(item)

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
        return self.style.message(receipt)

    # The record and the stats file.

    def _write_record(self) -> None:
        data = "".join(self._record).encode("latin-1", "replace")
        self._record.clear()
        fd = self._record_fd
        if fd is None:
            return
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def _close_record(self) -> None:
        if self._record:
            self._write_record()
        fd, self._record_fd = self._record_fd, None
        if fd is not None:
            os.close(fd)

    def _write_stats(self) -> None:
        path = self.config.stats_file
        if path is None:
            return
        temporary = Path(f"{path}.{os.getpid()}.tmp")
        try:
            temporary.write_text(self.stats.to_json())
            os.replace(temporary, path)
        except OSError as error:
            log.warning("cannot write %s: %s", path, error)

    def _write_stats_periodically(self) -> None:
        self._write_stats()
        loop = asyncio.get_running_loop()
        self._stats_handle = loop.call_later(STATS_INTERVAL, self._write_stats_periodically)
