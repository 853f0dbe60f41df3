"""A bare raw-asyncio SMPP client measuring how fast the SMSC simulator itself can go.

`python -m dispatcher.smsc.ceiling` starts a simulator in a child process (options after `--`
go to it, e.g. `-- --record /tmp/r.tsv`), or measures one already running with `--port`.
"""

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from dispatcher.smsc import pdu
from dispatcher.smsc.pdu import BindRequest, CommandId, ShortMessage, Status

_BIND_SEQUENCE = 1
_UNBIND_SEQUENCE = 2
_FIRST_SUBMIT_SEQUENCE = 3
_UNBIND_WAIT = 1.0


@dataclass(frozen=True)
class CeilingResult:
    """What one measurement achieved; rates are over the time from bind to the last answer."""

    messages: int
    accepted: int
    receipts: int
    submit_seconds: float
    total_seconds: float

    @property
    def submits_per_second(self) -> float:
        """Submit_sm answered per second, up to the last submit_sm_resp."""
        return self.messages / self.submit_seconds if self.submit_seconds else 0.0

    @property
    def receipts_per_second(self) -> float:
        """Receipts received per second, up to the last receipt."""
        return self.receipts / self.total_seconds if self.total_seconds else 0.0


class _CeilingProtocol(asyncio.Protocol):
    """Keeps `window` submit_sm outstanding and acknowledges every deliver_sm."""

    def __init__(self, messages: int, window: int) -> None:
        loop = asyncio.get_running_loop()
        self.bound: asyncio.Future[int] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.unbound: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._messages = messages
        self._window = window
        self._sent = self._answered = self.accepted = self.receipts = 0
        self.started = self.submits_done = self.finished = 0.0
        template = pdu.build_submit_sm(
            0,
            ShortMessage(
                source_addr="CEILING",
                source_addr_ton=5,
                destination_addr="46700000000",
                dest_addr_ton=1,
                dest_addr_npi=1,
                registered_delivery=1,
                short_message=b"ceiling measurement",
            ),
        )
        self._head, self._tail = template[:12], template[16:]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        error = ConnectionError(f"SMSC closed the connection: {exc}")
        for future in (self.bound, self.done, self.unbound):
            if not future.done():
                future.set_exception(error)
                future.exception()  # nobody may be waiting for this one; mark it retrieved
        if not self.closed.done():
            self.closed.set_result(None)

    def write(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def start(self) -> None:
        self.started = time.perf_counter()
        self.write(self._more_submits())

    def _more_submits(self) -> bytes:
        count = min(self._window - (self._sent - self._answered), self._messages - self._sent)
        if count <= 0:
            return b""
        head, tail, first = self._head, self._tail, self._sent + _FIRST_SUBMIT_SEQUENCE
        self._sent += count
        return b"".join(
            head + sequence.to_bytes(4, "big") + tail for sequence in range(first, first + count)
        )

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        size, offset = len(buffer), 0
        out: list[bytes] = []
        while size - offset >= pdu.HEADER_SIZE:
            length, command_id, status, sequence = pdu.HEADER.unpack_from(buffer, offset)
            if offset + length > size:
                break
            offset += length
            if command_id == CommandId.SUBMIT_SM_RESP:
                self._answered += 1
                self.accepted += status == Status.OK
                if self._answered == self._messages:
                    self.submits_done = time.perf_counter()
            elif command_id == CommandId.DELIVER_SM:
                self.receipts += 1
                out.append(pdu.build_deliver_sm_resp(sequence))
            elif command_id == CommandId.ENQUIRE_LINK:
                out.append(pdu.build_enquire_link_resp(sequence))
            else:
                self._on_other(command_id, status)
        del buffer[:offset]
        if self.started:
            out.append(self._more_submits())
        if out:
            self.write(b"".join(out))
        self._check_done()

    def _on_other(self, command_id: int, status: int) -> None:
        if command_id == CommandId.BIND_TRANSCEIVER_RESP and not self.bound.done():
            self.bound.set_result(status)
        elif command_id == CommandId.UNBIND_RESP and not self.unbound.done():
            self.unbound.set_result(None)
        elif command_id == CommandId.GENERIC_NACK and not self.done.done():
            self.done.set_exception(RuntimeError(f"generic_nack 0x{status:08x} from the SMSC"))

    def _check_done(self) -> None:
        if (
            self.started
            and not self.done.done()
            and self._answered == self._messages
            and self.receipts >= self.accepted
        ):
            self.finished = time.perf_counter()
            self.done.set_result(None)


async def measure_ceiling(
    host: str,
    port: int,
    *,
    messages: int,
    window: int = 100,
    system_id: str = "ceiling",
    password: str = "",
) -> CeilingResult:
    """Submit `messages` with receipts requested, `window` outstanding, and time it all."""
    if messages < 1 or window < 1:
        raise ValueError("messages and window must be >= 1")
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(
        lambda: _CeilingProtocol(messages, window), host, port
    )
    try:
        bind = BindRequest(system_id=system_id, password=password)
        protocol.write(pdu.build_bind(CommandId.BIND_TRANSCEIVER, _BIND_SEQUENCE, bind))
        status = await protocol.bound
        if status != Status.OK:
            raise ConnectionError(f"bind_transceiver refused: 0x{status:08x}")
        protocol.start()
        await protocol.done
        protocol.write(pdu.build_unbind(_UNBIND_SEQUENCE))
        try:
            await asyncio.wait_for(asyncio.shield(protocol.unbound), _UNBIND_WAIT)
        except TimeoutError:
            pass  # an SMSC that never answers unbind: just hang up
    finally:
        protocol.close()
        await protocol.closed
    return CeilingResult(
        messages=messages,
        accepted=protocol.accepted,
        receipts=protocol.receipts,
        submit_seconds=protocol.submits_done - protocol.started,
        total_seconds=protocol.finished - protocol.started,
    )


_SIMULATOR = "import typer; from dispatcher.smsc.command import smsc_sim; typer.run(smsc_sim)"


def main(argv: list[str] | None = None) -> None:
    """Measure the simulator's ceiling `--runs` times and print each run and the median."""
    parser = argparse.ArgumentParser(
        prog="python -m dispatcher.smsc.ceiling", description=main.__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="a running simulator (default: start one)")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("simulator_args", nargs="*", help="options of the started simulator")
    args = parser.parse_args(argv)
    child: subprocess.Popen[str] | None = None
    port = args.port
    if port is None:
        child = subprocess.Popen(
            [sys.executable, "-c", _SIMULATOR, "--port", "0", *args.simulator_args],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        port = int(child.stdout.readline().rsplit(":", 1)[1])
    try:
        rates = []
        for run in range(1, args.runs + 1):
            result = asyncio.run(
                measure_ceiling(args.host, port, messages=args.messages, window=args.window)
            )
            rates.append(result.receipts_per_second)
            print(
                f"run {run}: {result.submits_per_second:,.0f} submits/s, "
                f"{result.receipts_per_second:,.0f} msg/s with receipts",
                flush=True,
            )
        print(f"median: {statistics.median(rates):,.0f} msg/s with receipts")
    finally:
        if child is not None:
            child.terminate()
            child.wait(10)


if __name__ == "__main__":
    main()
