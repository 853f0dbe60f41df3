"""One SMPP bind, owned by one thread: windowed, throttled submit_sm and receipts back."""

import asyncio
import logging
import math
import queue
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.smpp

from campaigns.numbers import mask
from dispatcher.settings import BindSettings
from dispatcher.smpp import receipts
from dispatcher.smpp.throttle import TokenBucket

log = logging.getLogger("dispatcher.smpp")

ESME_ROK = 0x00
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
SLOWDOWN_STATUSES = (ESME_RMSGQFUL, ESME_RTHROTTLED)
DRAIN_SECONDS = 5.0
UNBIND_WAIT_SECONDS = 2.0
CONNECTION_ERRORS = (OSError, smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError)


@dataclass(frozen=True, slots=True)
class Part:
    """One submit_sm worth of a message."""

    data_coding: int
    esm_class: int
    short_message: bytes


@dataclass(frozen=True, slots=True)
class Content:
    """What every message of a batch carries."""

    campaign_id: int
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    parts: tuple[Part, ...]
    validity_period: str = ""  # SMPP absolute time; empty: the SMSC's default
    expires_at: float = math.inf  # epoch seconds after which nothing more is submitted


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """The SMSC's answer to one part, or why the message was not sent at all."""

    message_id: int
    part_no: int
    smsc_message_id: str | None
    command_status: int
    skipped: str | None = None  # "cancelled", "paused" or "expired": nothing was sent


class Ticket:
    """A batch handed to a bind; its future resolves once every part has an answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, content: Content, messages: int) -> None:
        self.content = content
        self.results: list[SubmitResult] = []
        self.future: asyncio.Future[list[SubmitResult]] = loop.create_future()
        self._loop = loop
        self._remaining = messages * len(content.parts)

    def record(self, result: SubmitResult, weight: int = 1) -> None:
        """Called on the bind's thread for each answer; `weight` parts are settled by it."""
        self.results.append(result)
        self._remaining -= weight
        if self._remaining <= 0:
            self._loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(self.results)


@dataclass(slots=True)
class Submission:
    """One message waiting to be submitted."""

    message_id: int
    msisdn: str
    ticket: Ticket
    throttled: int = field(default=0)


Pending = tuple[Submission, int]  # a message and the index of its next part to send
Ack = Callable[[], None]  # answers one receipt's deliver_sm


class BindSession(threading.Thread):
    """Owns one smpplib client and its socket; nothing else touches them."""

    def __init__(
        self,
        settings: BindSettings,
        on_receipt: Callable[[receipts.Receipt, Ack], None],
        on_state: Callable[[str, bool], None] = lambda name, up: None,
        halted: Callable[[int], str | None] = lambda campaign_id: None,
    ) -> None:
        super().__init__(name=f"smpp-{settings.name}", daemon=True)
        self.settings = settings
        self.bound = threading.Event()
        self._on_receipt = on_receipt
        self._on_state = on_state
        self._halted = halted
        self._inbox: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        self._retry: deque[Pending] = deque()
        self._inflight: dict[int, Pending] = {}
        self._bucket = TokenBucket(settings.rate)
        self._stopping = threading.Event()
        self._client: Any = None
        self._last_io = time.monotonic()
        self._slow_until = 0.0
        self._connection = 0  # counts connections, so an ack never crosses into a new one
        self._acks: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()

    # -- called from other threads -------------------------------------------------------

    def submit(self, submissions: list[Submission]) -> None:
        """Queue messages for this bind."""
        for submission in submissions:
            self._inbox.put((submission, 0))

    def backlog(self) -> int:
        """Roughly how many messages wait on this bind."""
        return self._inbox.qsize() + len(self._retry) + len(self._inflight)

    def acknowledge(self, connection: int, sequence: int) -> None:
        """Answer a receipt's deliver_sm, now that the receipt is stored."""
        self._acks.put((connection, sequence))

    def stop(self, timeout: float = 10.0) -> None:
        """Finish outstanding answers, unbind and close."""
        self._stopping.set()
        self.join(timeout)

    # -- the bind's own thread -----------------------------------------------------------

    def run(self) -> None:
        """Bind, pump until stopped, reconnecting with backoff on failure."""
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                self._connect()
                backoff = 0.5
                self._pump()
                self._unbind()
            except CONNECTION_ERRORS as error:
                log.warning("bind %s lost: %s", self.settings.name, error)
            finally:
                self._close()
            if not self._stopping.wait(backoff):
                backoff = min(backoff * 2, 30.0)

    def _connect(self) -> None:
        s = self.settings
        client = smpplib.client.Client(
            s.host,
            s.port,
            timeout=10,
            allow_unknown_opt_params=True,
            logger_name=f"dispatcher.smpp.{s.name}.wire",
        )
        client.connect()
        client._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client = client
        self._connection += 1
        client.bind_transceiver(
            system_id=s.system_id,
            password=s.password.get_secret_value(),
            system_type=s.system_type,
        )
        self._last_io = time.monotonic()
        self.bound.set()
        self._on_state(s.name, True)
        log.info("bind %s up (%s:%d as %s)", s.name, s.host, s.port, s.system_id)

    def _pump(self) -> None:
        drain_until = None
        while True:
            if self._stopping.is_set():
                # Wait a little for answers to what was sent; an SMSC may never give them.
                drain_until = drain_until or time.monotonic() + DRAIN_SECONDS
                if not self._inflight or time.monotonic() > drain_until:
                    return
            sent = 0 if self._stopping.is_set() else self._send_some()
            wait = 0.0 if sent else self._idle_wait()
            readable, _, _ = select.select([self._client._socket], [], [], wait)
            if readable:
                self._read_available()
            self._send_acks()
            self._keep_alive()

    def _idle_wait(self) -> float:
        if len(self._inflight) >= self.settings.window:
            return 0.05
        if self._retry or not self._inbox.empty():
            return max(0.001, self._bucket.wait_time(), self._slow_until - time.monotonic())
        return 0.05

    def _next(self) -> Pending | None:
        if self._retry:
            return self._retry.popleft()
        try:
            return self._inbox.get_nowait()
        except queue.Empty:
            return None

    def _send_some(self) -> int:
        sent = 0
        if time.monotonic() < self._slow_until:
            return 0
        while len(self._inflight) < self.settings.window:
            pending = self._next()
            if pending is None:
                break
            submission, part_no = pending
            if part_no == 0 and self._skipped(submission):
                continue
            if not self._bucket.take():
                self._retry.appendleft(pending)
                break
            self._send(submission, part_no)
            if part_no + 1 < len(submission.ticket.content.parts):
                self._retry.appendleft((submission, part_no + 1))
            sent += 1
        return sent

    def _skipped(self, submission: Submission) -> bool:
        """Settle a message that must not go out: its campaign was halted or has expired."""
        content = submission.ticket.content
        reason = self._halted(content.campaign_id)
        if reason is None and time.time() >= content.expires_at:
            reason = "expired"
        if reason is None:
            return False
        result = SubmitResult(submission.message_id, 0, None, ESME_ROK, skipped=reason)
        submission.ticket.record(result, weight=len(content.parts))
        return True

    def _send(self, submission: Submission, part_no: int) -> None:
        content = submission.ticket.content
        part = content.parts[part_no]
        pdu = smpplib.smpp.make_pdu(
            "submit_sm",
            client=self._client,
            source_addr_ton=content.source_addr_ton,
            source_addr_npi=content.source_addr_npi,
            source_addr=content.source_addr,
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            destination_addr=submission.msisdn.lstrip("+"),
            esm_class=part.esm_class,
            data_coding=part.data_coding,
            validity_period=content.validity_period or None,
            registered_delivery=1,
            short_message=part.short_message,
        )
        self._inflight[pdu.sequence] = (submission, part_no)
        self._client.send_pdu(pdu)
        self._last_io = time.monotonic()

    def _read_available(self) -> None:
        sock = self._client._socket
        for _ in range(500):
            self._handle(self._client.read_pdu())
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return

    def _handle(self, pdu: Any) -> None:
        self._last_io = time.monotonic()
        command = pdu.command
        if command == "submit_sm_resp" or command == "generic_nack":
            self._answered(pdu)
        elif command == "deliver_sm":
            self._delivered(pdu)
        elif command == "enquire_link":
            self._reply(pdu, "enquire_link_resp")
        elif command == "unbind":
            self._reply(pdu, "unbind_resp")
            raise smpplib.exceptions.ConnectionError("the SMSC unbound")
        elif command != "enquire_link_resp":
            log.warning("bind %s: ignored %s", self.settings.name, command)

    def _answered(self, pdu: Any) -> None:
        pending = self._inflight.pop(pdu.sequence, None)
        if pending is None:
            log.warning("bind %s: answer to unknown sequence %d", self.settings.name, pdu.sequence)
            return
        submission, part_no = pending
        status = int(pdu.status)
        if status in SLOWDOWN_STATUSES:
            # The SMSC is over its limit: hold the whole bind back, then try the part again.
            self._slow_until = time.monotonic() + min(0.1 * 2**submission.throttled, 5.0)
            submission.throttled += 1
            self._retry.append(pending)
            return
        smsc_id = None
        if status == ESME_ROK:
            smsc_id = pdu.message_id.decode("ascii", "replace")
        else:
            log.info(
                "bind %s: submit to %s refused with 0x%02X",
                self.settings.name,
                mask(submission.msisdn),
                status,
            )
        submission.ticket.record(SubmitResult(submission.message_id, part_no, smsc_id, status))

    def _delivered(self, pdu: Any) -> None:
        # A receipt is answered only once it is stored (see acknowledge): if this process dies
        # first, the SMSC delivers it again. Anything else is answered at once.
        receipt = None
        if receipts.is_receipt(int(pdu.esm_class or 0)):
            receipt = receipts.parse(
                receipted_message_id=getattr(pdu, "receipted_message_id", None),
                message_state=getattr(pdu, "message_state", None),
                text=pdu.short_message,
            )
            if receipt is None:
                log.warning("bind %s: unreadable delivery receipt", self.settings.name)
        if receipt is None:
            self._reply(pdu, "deliver_sm_resp")
        else:
            self._on_receipt(receipt, partial(self.acknowledge, self._connection, pdu.sequence))

    def _send_acks(self) -> None:
        while True:
            try:
                connection, sequence = self._acks.get_nowait()
            except queue.Empty:
                return
            if connection == self._connection:
                resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=self._client)
                resp.sequence = sequence
                self._client.send_pdu(resp)

    def _reply(self, pdu: Any, command: str) -> None:
        resp = smpplib.smpp.make_pdu(command, client=self._client)
        resp.sequence = pdu.sequence  # make_pdu ignores a sequence given as an argument
        self._client.send_pdu(resp)

    def _keep_alive(self) -> None:
        if time.monotonic() - self._last_io > self.settings.enquire_link_interval:
            self._client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=self._client))
            self._last_io = time.monotonic()

    def _unbind(self) -> None:
        """Ask for unbind, waiting briefly: some SMSCs never answer it."""
        self._client.send_pdu(smpplib.smpp.make_pdu("unbind", client=self._client))
        deadline = time.monotonic() + UNBIND_WAIT_SECONDS
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self._client._socket], [], [], remaining)
            if not readable:
                break
            pdu = self._client.read_pdu()
            if pdu.command == "unbind_resp":
                break
            if pdu.command == "deliver_sm":
                self._delivered(pdu)

    def _close(self) -> None:
        if self.bound.is_set():
            self.bound.clear()
            self._on_state(self.settings.name, False)
        # Messages sent but not answered are tried again on the next connection.
        self._retry.extendleft(reversed(list(self._inflight.values())))
        self._inflight.clear()
        if self._client is not None:
            try:
                self._client.disconnect()
            except OSError:
                pass
            self._client = None
