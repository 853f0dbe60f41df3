"""One ESME connection to the SMSC simulator: PDU parsing, binds, submits and receipts."""

import asyncio
import functools
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from dispatcher.smsc import pdu
from dispatcher.smsc.config import NO_ANSWER, Faults, SimulatorConfig, SimulatorStats
from dispatcher.smsc.pdu import BindRequest, CommandId, ShortMessage, Status

log = logging.getLogger("dispatcher.smsc")

SMSC_SYSTEM_ID = "SMSCSIM"
VENDOR_COMMAND_ID = 0x00010200  # in the reserved-for-vendors range: no SMPP 3.4 library knows it
_MAX_SEQUENCE = 0x7FFFFFFF
_MAX_VENDOR_OUTSTANDING = 10_000


@dataclass(slots=True)
class _Receipt:
    system_id: str
    message_id: str
    stat: str
    submit: ShortMessage
    submit_date: str
    repeat: bool = False  # to be sent again REPEAT_GAP after it is first sent


def mask(address: str) -> str:
    """An address fit for logs: only its last three digits."""
    return "***" + address[-3:] if len(address) > 3 else "***"


class _TokenBucket:
    """`rate` tokens a second, holding at most `capacity`; starts full."""

    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class SessionHost(Protocol):
    """What a session needs from the simulator that accepted its connection."""

    config: SimulatorConfig
    stats: SimulatorStats
    faults: Faults
    submit_faults: bool  # whether any submit_sm fault is set (the hot path checks only this)
    stalled: bool

    def session_opened(self, session: "_Session") -> None: ...

    def session_closed(self, session: "_Session") -> None: ...

    def mark_dirty(self, session: "_Session") -> None: ...

    def flush(self) -> None: ...

    def admit(self, session: "_Session", request: BindRequest) -> Status: ...

    def release(self, session: "_Session") -> None: ...

    def bucket(self, system_id: str) -> _TokenBucket | None: ...

    def accept(self, system_id: str, message: ShortMessage) -> tuple[str, _Receipt | None]: ...

    def submit_fault(self) -> int | None: ...

    def respond(
        self, session: "_Session", resp: bytes, receipt: _Receipt | None = None
    ) -> None: ...

    def deliver_pending(self, session: "_Session") -> None: ...

    def receipt_message(self, receipt: _Receipt) -> ShortMessage: ...


class _Session(asyncio.Protocol):
    """One ESME connection: parses PDUs in bulk and queues answers for one write per turn."""

    def __init__(self, simulator: SessionHost) -> None:
        self._sim = simulator
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._sequence = 0
        self._bucket: _TokenBucket | None = None
        self._write_paused = False
        self._accepted = 0  # counted only while vendor PDUs are due
        self._vendor_sequences: set[int] = set()
        self.peer = "?"
        self.system_id = ""
        self.holds_slot = False  # counted against max_sessions
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
            CommandId.GENERIC_NACK: self._on_generic_nack,
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
        if self._sim.stalled:
            transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        log.info("connection from %s closed%s", self.peer, f": {exc}" if exc else "")
        self._transport = None
        self.can_transmit = self.can_receive = False
        self._sim.release(self)
        self._sim.session_closed(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._transport is not None:
            self._transport.pause_reading()  # a peer that does not read gets no new answers

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._transport is not None and not self._sim.stalled:
            self._transport.resume_reading()

    def stall(self) -> None:
        """Stop reading (the simulator holds back what it would write)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume(self) -> None:
        """Read again, and handle what arrived before the stall but was left unread."""
        if self._transport is None or self._transport.is_closing():
            return
        if not self._write_paused:
            self._transport.resume_reading()
        if self._buffer:
            self.data_received(b"")

    @property
    def is_closed(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def close(self, *, abort: bool = False) -> None:
        self.can_transmit = self.can_receive = False
        if self._transport is not None:
            self._transport.abort() if abort else self._transport.close()

    def drop(self) -> None:
        """Abort the connection, discarding every answer not yet written."""
        self._out.clear()
        self.close(abort=True)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if self._sim.stalled:
            return
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

    def _next_sequence(self) -> int:
        self._sequence = self._sequence % _MAX_SEQUENCE + 1
        return self._sequence

    def send_receipt(self, receipt: _Receipt) -> None:
        sequence = self._next_sequence()
        self.unacked[sequence] = receipt
        self.queue(pdu.build_deliver_sm(sequence, self._sim.receipt_message(receipt)))
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
        status = Status.ALREADY_BOUND if self.system_id else sim.admit(self, request)
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
        self._bucket = sim.bucket(request.system_id)
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
        elif sim.submit_faults:
            self._submit_with_faults(sequence, message)
            return
        else:
            message_id, receipt = sim.accept(self.system_id, message)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("submit_sm to %s: id %s", mask(message.destination_addr), message_id)
            sim.respond(self, pdu.build_submit_sm_resp(sequence, message_id), receipt)
            return
        log.debug("submit_sm to %s: %s", mask(message.destination_addr), status.name)
        sim.respond(self, pdu.build_submit_sm_resp(sequence, "", status))

    def _submit_with_faults(self, sequence: int, message: ShortMessage) -> None:
        sim = self._sim
        fault = sim.submit_fault()
        if fault == NO_ANSWER:
            sim.stats.unanswered += 1
            log.debug("submit_sm to %s: not answered", mask(message.destination_addr))
            return
        if fault is not None:
            sim.stats.errors[fault] = sim.stats.errors.get(fault, 0) + 1
            log.debug("submit_sm to %s: 0x%02x", mask(message.destination_addr), fault)
            sim.respond(self, pdu.build_submit_sm_resp(sequence, "", fault))
            return
        message_id, receipt = sim.accept(self.system_id, message)
        sim.respond(self, pdu.build_submit_sm_resp(sequence, message_id), receipt)
        every = sim.faults.vendor_pdu_every
        if every:
            self._accepted += 1
            if self._accepted % every == 0:
                self._send_vendor_pdu()

    def _send_vendor_pdu(self) -> None:
        sequence = self._next_sequence()
        if len(self._vendor_sequences) >= _MAX_VENDOR_OUTSTANDING:
            self._vendor_sequences.clear()  # an ESME that never answers them
        self._vendor_sequences.add(sequence)
        self.queue(pdu.pack(VENDOR_COMMAND_ID, sequence))
        self._sim.stats.vendor_pdus_sent += 1

    def _on_generic_nack(self, sequence: int, status: int, _body: bytes) -> None:
        if sequence in self._vendor_sequences:
            self._vendor_sequences.discard(sequence)
            self._sim.stats.generic_nacks_received += 1
        else:
            log.info("generic_nack 0x%02x from %s for sequence %d", status, self.peer, sequence)

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
        if self._sim.faults.ignore_enquire_link:
            self._sim.stats.enquire_links_ignored += 1
            return
        self._sim.stats.enquire_links += 1
        self.queue(pdu.build_enquire_link_resp(sequence))

    def _on_unbind(self, sequence: int, _status: int, _body: bytes) -> None:
        self._sim.stats.unbinds += 1
        self.can_transmit = self.can_receive = False
        self._sim.release(self)
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
