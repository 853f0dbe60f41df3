"""The SMSC simulator over real TCP: raw PDUs, the smpplib client, and the ceiling client."""

import asyncio
import logging
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import smpplib.client
import smpplib.consts

from dispatcher.smsc import pdu
from dispatcher.smsc.ceiling import measure_ceiling
from dispatcher.smsc.command import parse_outcomes
from dispatcher.smsc.pdu import BindRequest, CommandId, ShortMessage, Status, Tag
from dispatcher.smsc.simulator import Simulator, SimulatorConfig
from dispatcher.smsc.threaded import ThreadedSimulator, serve_in_thread

DEADLINE = 5.0
DESTINATION = "46701234567"


class Esme:
    """A raw-PDU test client over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.sequence = 0

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    async def send(self, *pdus: bytes) -> None:
        self.writer.write(b"".join(pdus))
        await self.writer.drain()

    async def read(self) -> tuple[int, int, int, bytes]:
        """The next PDU as (command_id, status, sequence, body)."""
        async with asyncio.timeout(DEADLINE):
            header = await self.reader.readexactly(pdu.HEADER_SIZE)
            length, command_id, status, sequence = pdu.HEADER.unpack(header)
            body = await self.reader.readexactly(length - pdu.HEADER_SIZE)
        return command_id, status, sequence, body

    async def bind(
        self,
        command_id: int = CommandId.BIND_TRANSCEIVER,
        system_id: str = "esme",
        password: str = "",
    ) -> tuple[int, bytes]:
        request = BindRequest(system_id=system_id, password=password)
        await self.send(pdu.build_bind(command_id, self.next_sequence(), request))
        resp_id, status, sequence, body = await self.read()
        assert (resp_id, sequence) == (command_id | pdu.RESPONSE_BIT, self.sequence)
        return status, body

    def submit(
        self, destination: str = DESTINATION, registered: int = 1, text: bytes = b"hi"
    ) -> bytes:
        message = ShortMessage(
            source_addr="GOV",
            source_addr_ton=5,
            destination_addr=destination,
            dest_addr_ton=1,
            dest_addr_npi=1,
            registered_delivery=registered,
            short_message=text,
        )
        return pdu.build_submit_sm(self.next_sequence(), message)


SimulatorFactory = Callable[..., Awaitable[Simulator]]
EsmeFactory = Callable[[Simulator], Awaitable[Esme]]


@pytest.fixture
async def smsc() -> AsyncIterator[SimulatorFactory]:
    started: list[Simulator] = []

    async def start(**options: Any) -> Simulator:
        simulator = Simulator(SimulatorConfig(port=0, **options))
        await simulator.start()
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        await simulator.stop()


@pytest.fixture
async def connect() -> AsyncIterator[EsmeFactory]:
    clients: list[Esme] = []

    async def open_client(simulator: Simulator) -> Esme:
        reader, writer = await asyncio.open_connection("127.0.0.1", simulator.port)
        clients.append(Esme(reader, writer))
        return clients[-1]

    yield open_client
    for client in clients:
        client.writer.close()
        await client.writer.wait_closed()


@pytest.fixture
def threaded_smsc() -> Iterator[Callable[..., ThreadedSimulator]]:
    started: list[ThreadedSimulator] = []

    def start(**options: Any) -> ThreadedSimulator:
        started.append(serve_in_thread(SimulatorConfig(port=0, **options)))
        return started[-1]

    yield start
    for threaded in started:
        threaded.stop()


async def wait_for(condition: Callable[[], bool]) -> None:
    """Poll `condition` until it holds, failing after the deadline."""
    async with asyncio.timeout(DEADLINE):
        while not condition():
            await asyncio.sleep(0.005)


def parse_receipt(body: bytes) -> tuple[ShortMessage, str]:
    message = pdu.parse_short_message(body)
    return message, message.short_message.decode("ascii")


@pytest.mark.parametrize(
    "command_id",
    [CommandId.BIND_TRANSCEIVER, CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER],
)
async def test_bind_with_good_credentials(
    smsc: SimulatorFactory, connect: EsmeFactory, command_id: int
) -> None:
    simulator = await smsc(system_id="gov", password="secret")
    status, body = await (await connect(simulator)).bind(command_id, "gov", "secret")
    assert status == Status.OK
    assert body == b"SMSCSIM\x00"
    assert simulator.stats.binds == 1


@pytest.mark.parametrize(
    ("system_id", "password", "expected"),
    [("intruder", "secret", Status.BIND_FAILED), ("gov", "wrong", Status.INVALID_PASSWORD)],
)
async def test_bind_with_bad_credentials(
    smsc: SimulatorFactory, connect: EsmeFactory, system_id: str, password: str, expected: int
) -> None:
    simulator = await smsc(system_id="gov", password="secret")
    esme = await connect(simulator)
    status, _ = await esme.bind(system_id=system_id, password=password)
    assert status == expected
    await esme.send(esme.submit())
    assert (await esme.read())[:2] == (CommandId.SUBMIT_SM_RESP, Status.INVALID_BIND_STATUS)
    assert (simulator.stats.binds, simulator.stats.bind_failures) == (0, 1)


def test_smpplib_submit_gets_message_id_and_receipt(
    threaded_smsc: Callable[..., ThreadedSimulator],
) -> None:
    simulator = threaded_smsc(system_id="gov", password="secret")
    client = smpplib.client.Client("127.0.0.1", simulator.port, allow_unknown_opt_params=True)
    sent: list[Any] = []
    received: list[Any] = []
    client.set_message_sent_handler(lambda pdu: sent.append(pdu))
    client.set_message_received_handler(lambda pdu: received.append(pdu))
    client.connect()
    try:
        client._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.bind_transceiver(system_id="gov", password="secret")
        client.send_message(
            source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
            source_addr="GOV",
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            destination_addr=DESTINATION,
            short_message=b"Flood warning for the river valley tonight",
            registered_delivery=1,
        )
        deadline = time.monotonic() + DEADLINE
        while not received and time.monotonic() < deadline:
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()

    message_id = sent[0].message_id.decode()
    assert message_id.isdigit()
    receipt = received[0]
    assert receipt.esm_class == 0x04
    assert receipt.receipted_message_id.decode() == message_id
    assert receipt.message_state == 2
    assert (receipt.source_addr.decode(), receipt.source_addr_ton) == (DESTINATION, 1)
    assert (receipt.destination_addr.decode(), receipt.dest_addr_ton) == ("GOV", 5)
    text = receipt.short_message.decode()
    assert text.startswith(f"id:{message_id} sub:001 dlvrd:001 submit date:")
    assert text.endswith(" stat:DELIVRD err:000 text:Flood warning for th")
    deadline = time.monotonic() + DEADLINE
    while simulator.stats.receipts_acked < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert simulator.stats.receipts_acked == 1


async def test_message_ids_are_unique_across_sessions(
    smsc: SimulatorFactory, connect: EsmeFactory
) -> None:
    simulator = await smsc()
    ids = []
    for _ in range(2):
        esme = await connect(simulator)
        await esme.bind(CommandId.BIND_TRANSMITTER)
        await esme.send(*(esme.submit(registered=0) for _ in range(3)))
        ids += [(await esme.read())[3] for _ in range(3)]
    assert len(set(ids)) == 6


async def test_undeliverable_outcome(smsc: SimulatorFactory, connect: EsmeFactory) -> None:
    simulator = await smsc(outcomes={"UNDELIV": 1.0})
    esme = await connect(simulator)
    await esme.bind()
    await esme.send(esme.submit())
    _, status, _, body = await esme.read()
    message_id = body.rstrip(b"\x00").decode()
    command_id, _, _, body = await esme.read()
    receipt, text = parse_receipt(body)
    assert (status, command_id) == (Status.OK, CommandId.DELIVER_SM)
    assert receipt.tlvs[Tag.MESSAGE_STATE] == b"\x05"
    assert receipt.tlvs[Tag.RECEIPTED_MESSAGE_ID] == message_id.encode() + b"\x00"
    assert "dlvrd:000" in text and "stat:UNDELIV err:001" in text


async def test_outcome_mix_is_reproducible_with_a_seed(
    smsc: SimulatorFactory, connect: EsmeFactory
) -> None:
    mixes = []
    for _ in range(2):
        simulator = await smsc(outcomes={"DELIVRD": 1.0, "REJECTD": 1.0}, seed=7)
        esme = await connect(simulator)
        await esme.bind()
        await esme.send(*(esme.submit() for _ in range(40)))
        pdus = [await esme.read() for _ in range(80)]
        receipts = [pdu.parse_short_message(p[3]) for p in pdus if p[0] == CommandId.DELIVER_SM]
        mixes.append([receipt.tlvs[Tag.MESSAGE_STATE] for receipt in receipts])
    assert mixes[0] == mixes[1]
    assert set(mixes[0]) == {b"\x02", b"\x08"}


async def test_no_receipt_unless_requested(smsc: SimulatorFactory, connect: EsmeFactory) -> None:
    simulator = await smsc()
    esme = await connect(simulator)
    await esme.bind()
    await esme.send(esme.submit(registered=0), pdu.build_enquire_link(99))
    assert (await esme.read())[0] == CommandId.SUBMIT_SM_RESP
    assert (await esme.read())[0] == CommandId.ENQUIRE_LINK_RESP
    assert simulator.stats.receipts_sent == 0


async def test_throttles_above_max_rate(smsc: SimulatorFactory, connect: EsmeFactory) -> None:
    simulator = await smsc(max_rate=5.0, burst=5.0)
    esme = await connect(simulator)
    await esme.bind()
    await esme.send(*(esme.submit() for _ in range(20)), pdu.build_enquire_link(99))
    pdus: list[tuple[int, int, int, bytes]] = []
    while not pdus or pdus[-1][0] != CommandId.ENQUIRE_LINK_RESP:
        pdus.append(await esme.read())
    statuses = [
        status for command_id, status, _, _ in pdus if command_id == CommandId.SUBMIT_SM_RESP
    ]
    receipts = [p for p in pdus if p[0] == CommandId.DELIVER_SM]
    assert len(statuses) == 20
    assert 5 <= statuses.count(Status.OK) <= 6
    assert statuses.count(Status.THROTTLED) == 20 - statuses.count(Status.OK)
    assert len(receipts) == statuses.count(Status.OK)
    assert simulator.stats.throttled == statuses.count(Status.THROTTLED)


async def test_empty_destination_is_refused(smsc: SimulatorFactory, connect: EsmeFactory) -> None:
    esme = await connect(await smsc())
    await esme.bind()
    await esme.send(esme.submit(destination=""))
    assert (await esme.read())[:2] == (CommandId.SUBMIT_SM_RESP, Status.INVALID_DESTINATION)


async def test_enquire_link_is_answered(smsc: SimulatorFactory, connect: EsmeFactory) -> None:
    simulator = await smsc()
    esme = await connect(simulator)
    await esme.send(pdu.build_enquire_link(41))
    assert await esme.read() == (CommandId.ENQUIRE_LINK_RESP, Status.OK, 41, b"")
    assert simulator.stats.enquire_links == 1


async def test_unknown_command_gets_generic_nack(
    smsc: SimulatorFactory, connect: EsmeFactory
) -> None:
    esme = await connect(await smsc())
    await esme.send(pdu.pack(0x00000003, 7, b"1\x00\x00\x00\x00"))  # query_sm
    assert await esme.read() == (CommandId.GENERIC_NACK, Status.INVALID_COMMAND_ID, 7, b"")


@pytest.mark.parametrize("answer_unbind", [True, False])
async def test_unbind(smsc: SimulatorFactory, connect: EsmeFactory, answer_unbind: bool) -> None:
    simulator = await smsc(answer_unbind=answer_unbind)
    esme = await connect(simulator)
    await esme.bind()
    await esme.send(pdu.build_unbind(2), pdu.build_enquire_link(3))
    if answer_unbind:
        assert await esme.read() == (CommandId.UNBIND_RESP, Status.OK, 2, b"")
    assert await esme.read() == (CommandId.ENQUIRE_LINK_RESP, Status.OK, 3, b"")
    assert simulator.stats.unbinds == 1


async def test_receipt_goes_to_receiver_of_same_system_id(
    smsc: SimulatorFactory, connect: EsmeFactory
) -> None:
    simulator = await smsc()
    transmitter, receiver, stranger = [await connect(simulator) for _ in range(3)]
    await stranger.bind(CommandId.BIND_RECEIVER, system_id="other")
    await receiver.bind(CommandId.BIND_RECEIVER)
    await transmitter.bind(CommandId.BIND_TRANSMITTER)
    await transmitter.send(transmitter.submit())
    message_id = (await transmitter.read())[3]
    command_id, _, sequence, body = await receiver.read()
    assert command_id == CommandId.DELIVER_SM
    assert parse_receipt(body)[0].tlvs[Tag.RECEIPTED_MESSAGE_ID] == message_id
    await receiver.send(pdu.build_deliver_sm_resp(sequence))
    await wait_for(lambda: simulator.stats.receipts_acked == 1)


async def test_unacknowledged_receipt_is_redelivered(
    smsc: SimulatorFactory, connect: EsmeFactory
) -> None:
    simulator = await smsc()
    first = await connect(simulator)
    await first.bind()
    await first.send(first.submit())
    await first.read()
    first_receipt = (await first.read())[3]
    first.writer.close()
    second = await connect(simulator)
    await second.bind(CommandId.BIND_RECEIVER)
    command_id, _, _, body = await second.read()
    assert command_id == CommandId.DELIVER_SM
    assert parse_receipt(body)[0].tlvs == parse_receipt(first_receipt)[0].tlvs


async def test_latency_and_receipt_delay_keep_pipelining(
    smsc: SimulatorFactory, connect: EsmeFactory
) -> None:
    esme = await connect(await smsc(latency=0.05, receipt_delay=0.1))
    await esme.bind()
    started = time.monotonic()
    await esme.send(*(esme.submit() for _ in range(20)))
    arrivals: dict[int, list[float]] = {}
    for _ in range(40):
        command_id = (await esme.read())[0]
        arrivals.setdefault(command_id, []).append(time.monotonic() - started)
    responses, receipts = arrivals[CommandId.SUBMIT_SM_RESP], arrivals[CommandId.DELIVER_SM]
    assert 0.05 <= min(responses) and max(responses) < 0.05 + 0.5  # not 20 x 0.05 in series
    assert 0.15 <= min(receipts)


async def test_destination_is_masked_in_logs(
    smsc: SimulatorFactory, connect: EsmeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="dispatcher.smsc")
    esme = await connect(await smsc())
    await esme.bind()
    await esme.send(esme.submit(), esme.submit(destination=""))
    for _ in range(3):
        await esme.read()
    assert "***567" in caplog.text
    assert DESTINATION not in caplog.text


async def test_measure_ceiling_gets_every_receipt(smsc: SimulatorFactory) -> None:
    simulator = await smsc()
    async with asyncio.timeout(DEADLINE):
        result = await measure_ceiling("127.0.0.1", simulator.port, messages=2000)
    assert (result.accepted, result.receipts) == (2000, 2000)
    assert result.submits_per_second > 0 and result.receipts_per_second > 0
    assert result.total_seconds >= result.submit_seconds > 0
    await wait_for(lambda: simulator.stats.receipts_acked == 2000)


def test_pdu_round_trip_skips_unknown_tlvs() -> None:
    message = ShortMessage("GOV", DESTINATION, b"text", tlvs={0x1403: b"vendor", 0x0427: b"\x02"})
    encoded = pdu.build_deliver_sm(9, message)
    length, command_id, _, sequence = pdu.HEADER.unpack_from(encoded)
    assert (length, command_id, sequence) == (len(encoded), CommandId.DELIVER_SM, 9)
    assert pdu.parse_short_message(encoded[pdu.HEADER_SIZE :]) == message
    with pytest.raises(pdu.PduError):
        pdu.parse_short_message(encoded[pdu.HEADER_SIZE : -1])


def test_parse_outcomes() -> None:
    assert parse_outcomes(["delivrd=0.9,UNDELIV=0.1", "EXPIRED"]) == {
        "DELIVRD": 0.9,
        "UNDELIV": 0.1,
        "EXPIRED": 1.0,
    }


async def test_smsc_sim_command_runs_until_sigterm() -> None:
    code = "import typer; from dispatcher.smsc.command import smsc_sim; typer.run(smsc_sim)"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "--port", "0", stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(10):
            line = (await process.stdout.readline()).decode()
            assert line.startswith("SMSC simulator listening on 127.0.0.1:")
            port = int(line.rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(pdu.build_enquire_link(1))
            await reader.readexactly(pdu.HEADER_SIZE)
            writer.close()
            await writer.wait_closed()
            process.send_signal(signal.SIGTERM)
            output = (await process.stdout.read()).decode()
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "SMSC simulator stopped:" in output and "enquire_links=1" in output
