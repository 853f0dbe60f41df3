"""The SMSC simulator writing ids and sending receipts the ways other SMSCs do, over real TCP.

The client is the project's own link (`dispatcher.sending.wire`, smpplib's PDU codec), so the
receipts are read the way the dispatcher reads them.
"""

import asyncio
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import smpplib.consts
import typer
from typer.testing import CliRunner

from dispatcher.sending import fastpdu
from dispatcher.sending.wire import Link, close_link, open_link
from dispatcher.smsc.command import smsc_sim
from dispatcher.smsc.simulator import SimulatorConfig
from dispatcher.smsc.threaded import ThreadedSimulator, serve_in_thread

DEADLINE = 5.0
DESTINATION = "84912345678"

# Style -> (shape of an id written in it, base of its number).
SHAPES = {
    "dec": (r"[1-9][0-9]*", 10),
    "dec0": (r"0[0-9]{19}", 10),
    "hex": (r"[1-9a-f][0-9a-f]*", 16),
    "HEX": (r"[1-9A-F][0-9A-F]*", 16),
    "hex0": (r"0[0-9a-f]{15}", 16),
    "HEX0": (r"0[0-9A-F]{15}", 16),
}


class Esme:
    """A transceiver on the dispatcher's link that answers every receipt and keeps it."""

    def __init__(self, port: int, system_id: str = "esme", *, receiver: bool = True) -> None:
        self.link: Link = open_link(
            host="127.0.0.1",
            port=port,
            system_id=system_id,
            password="",
            system_type="",
            name="test",
        )
        self.link.socket.settimeout(0.05)
        self.receiver = receiver
        self.resp_ids: dict[int, str] = {}  # submit_sm sequence -> message id
        self.resp_times: dict[str, float] = {}  # message id -> when its resp arrived
        self.receipts: list[tuple[float, Any]] = []  # (when, deliver_sm)

    def submit(self, text: bytes = b"hi", *, esm_class: int = 0, **tlvs: int) -> int:
        """Send one submit_sm asking for a receipt; its sequence number."""
        submit = self.link.make(
            "submit_sm",
            source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
            source_addr="GOV",
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            destination_addr=DESTINATION,
            esm_class=esm_class,
            registered_delivery=1,
            short_message=text,
            **tlvs,
        )
        self.link.write([submit])
        return int(submit.sequence)

    def pump(self, until: Callable[[], bool]) -> None:
        """Read and answer until `until()` holds; fail after the deadline."""
        deadline = time.monotonic() + DEADLINE
        while not until():
            assert time.monotonic() < deadline, "condition not met before the deadline"
            for pdu in self.link.read_available():
                now = time.monotonic()
                if isinstance(pdu, fastpdu.SubmitSmResp):  # the link reads these on its fast path
                    message_id = pdu.message_id or ""
                    self.resp_ids[pdu.sequence] = message_id
                    self.resp_times[message_id] = now
                elif isinstance(pdu, fastpdu.DeliverSm):
                    self.receipts.append((now, pdu))
                    self.link.reply(pdu.sequence, "deliver_sm_resp")

    def close(self) -> None:
        close_link(self.link)


@pytest.fixture
def smsc() -> Iterator[Callable[..., ThreadedSimulator]]:
    started: list[ThreadedSimulator] = []

    def start(**options: Any) -> ThreadedSimulator:
        started.append(serve_in_thread(SimulatorConfig(port=0, **options)))
        return started[-1]

    yield start
    for simulator in started:
        simulator.stop()


@pytest.fixture
def esme() -> Iterator[Callable[..., Esme]]:
    opened: list[Esme] = []

    def connect(simulator: ThreadedSimulator, system_id: str = "esme") -> Esme:
        opened.append(Esme(simulator.port, system_id))
        return opened[-1]

    yield connect
    for client in opened:
        client.close()


def text_id(receipt: Any) -> str:
    """The `id:` of a receipt's text."""
    match = re.match(r"id:(\S+) ", receipt.short_message.decode("ascii"))
    assert match is not None, receipt.short_message
    return match.group(1)


def tlv_id(receipt: Any) -> str:
    """The receipted_message_id TLV of a receipt."""
    return str(receipt.receipted_message_id.decode("ascii").rstrip("\x00"))


def number(message_id: str, style: str) -> int:
    """The numeric value of an id written in `style`, after checking its shape."""
    shape, base = SHAPES[style]
    assert re.fullmatch(shape, message_id), f"{message_id!r} is not written as {style}"
    return int(message_id, base)


@pytest.mark.parametrize(
    ("submit_ids", "receipt_ids"),
    [(style, None) for style in SHAPES]
    + [("dec", "hex"), ("dec", "HEX0"), ("hex", "dec0"), ("HEX", "hex")],
)
def test_ids_are_written_in_each_style(
    smsc: Callable[..., ThreadedSimulator],
    esme: Callable[..., Esme],
    submit_ids: str,
    receipt_ids: str | None,
) -> None:
    simulator = smsc(submit_ids=submit_ids, receipt_ids=receipt_ids)
    client = esme(simulator)
    for _ in range(3):
        client.submit()
    client.pump(lambda: len(client.receipts) == 3)

    resp_numbers = {number(message_id, submit_ids) for message_id in client.resp_ids.values()}
    assert len(resp_numbers) == 3
    receipt_style = receipt_ids or submit_ids
    for _, receipt in client.receipts:
        assert receipt.message_state == 2
        assert tlv_id(receipt) == text_id(receipt)
        assert number(tlv_id(receipt), receipt_style) in resp_numbers
    assert {number(text_id(r), receipt_style) for _, r in client.receipts} == resp_numbers


def test_default_ids_are_decimal_and_equal_in_resp_and_receipt(
    smsc: Callable[..., ThreadedSimulator], esme: Callable[..., Esme]
) -> None:
    client = esme(smsc())
    client.submit()
    client.pump(lambda: len(client.receipts) == 1)
    (message_id,) = client.resp_ids.values()
    receipt = client.receipts[0][1]
    assert message_id.isdigit() and not message_id.startswith("0")
    assert tlv_id(receipt) == text_id(receipt) == message_id


def test_text_only_receipts(
    smsc: Callable[..., ThreadedSimulator], esme: Callable[..., Esme]
) -> None:
    client = esme(smsc(receipt_tlvs=False, submit_ids="dec", receipt_ids="HEX"))
    client.submit(b"Lu qua song Hong")
    client.pump(lambda: len(client.receipts) == 1)
    (message_id,) = client.resp_ids.values()
    receipt = client.receipts[0][1]
    assert receipt.receipted_message_id is None and receipt.message_state is None
    assert receipt.esm_class == 0x04
    assert number(text_id(receipt), "HEX") == int(message_id)
    assert receipt.short_message.decode().endswith(" stat:DELIVRD err:000 text:Lu qua song Hong")


def test_every_receipt_late(
    smsc: Callable[..., ThreadedSimulator], esme: Callable[..., Esme]
) -> None:
    simulator = smsc(late_receipts=1.0, late_delay=0.4, receipt_delay=0.1)
    client = esme(simulator)
    for _ in range(4):
        client.submit()
    client.pump(lambda: len(client.receipts) == 4)
    for when, receipt in client.receipts:  # 0.5 s after the resp was sent, before it was read
        assert when - client.resp_times[text_id(receipt)] >= 0.4
    assert (simulator.stats.receipts_late, simulator.stats.receipts_repeated) == (4, 0)


def test_some_receipts_late_others_not(
    smsc: Callable[..., ThreadedSimulator], esme: Callable[..., Esme]
) -> None:
    simulator = smsc(late_receipts=0.5, late_delay=0.5, seed=7)
    client = esme(simulator)
    for _ in range(20):
        client.submit()
    client.pump(lambda: len(client.receipts) == 20)
    late = [when - client.resp_times[text_id(receipt)] >= 0.25 for when, receipt in client.receipts]
    assert 0 < sum(late) < 20
    assert sum(late) == simulator.stats.receipts_late
    assert late == sorted(late)  # the late ones come after every other


def test_late_receipt_of_a_closed_session_goes_to_another_receiver(
    smsc: Callable[..., ThreadedSimulator], esme: Callable[..., Esme]
) -> None:
    simulator = smsc(late_receipts=1.0, late_delay=0.5)
    sender = esme(simulator, "gov")
    for _ in range(2):
        sender.submit()
    sender.pump(lambda: len(sender.resp_ids) == 2)
    sender.close()
    other = esme(simulator, "gov")
    stranger = esme(simulator, "someone-else")
    other.pump(lambda: len(other.receipts) == 2)
    assert {text_id(receipt) for _, receipt in other.receipts} == set(sender.resp_ids.values())
    stranger.pump(lambda: simulator.stats.receipts_acked == 2)
    assert stranger.receipts == []


def test_every_receipt_sent_twice(
    smsc: Callable[..., ThreadedSimulator], esme: Callable[..., Esme]
) -> None:
    simulator = smsc(repeat_receipts=1.0)
    client = esme(simulator)
    for _ in range(3):
        client.submit()
    client.pump(lambda: len(client.receipts) == 6)
    ids = sorted(text_id(receipt) for _, receipt in client.receipts)
    assert ids == sorted(2 * list(client.resp_ids.values()))
    client.pump(lambda: simulator.stats.receipts_acked == 6)
    assert (simulator.stats.receipts_sent, simulator.stats.receipts_repeated) == (6, 3)
    assert simulator.stats.receipts_late == 0


def udh(iei: int, reference: int, total: int, sequence: int) -> bytes:
    """A concatenation user data header (8-bit or 16-bit reference)."""
    if iei == 0x00:
        return bytes((5, 0x00, 3, reference, total, sequence))
    return bytes((6, 0x08, 4, reference >> 8, reference & 0xFF, total, sequence))


@pytest.mark.parametrize(("policy", "iei"), [("last", 0x00), ("first", 0x08), ("last", 0x08)])
def test_one_receipt_per_concatenated_message(
    smsc: Callable[..., ThreadedSimulator], esme: Callable[..., Esme], policy: str, iei: int
) -> None:
    simulator = smsc(receipt_per_message=policy, submit_ids="hex", receipt_ids="dec")
    client = esme(simulator)
    segments = [
        client.submit(udh(iei, 300 if iei == 0x08 else 42, 3, seq) + b"part", esm_class=0x40)
        for seq in (1, 2, 3)
    ]
    single = client.submit(b"one part")
    client.pump(lambda: len(client.resp_ids) == 4 and len(client.receipts) >= 2)

    chosen = segments[-1] if policy == "last" else segments[0]
    whole, last = (text_id(receipt) for _, receipt in client.receipts)
    assert int(whole) == int(client.resp_ids[chosen], 16)
    assert int(last) == int(client.resp_ids[single], 16)  # nothing else came before it
    assert simulator.stats.receipts_sent == 2


def test_one_receipt_per_message_split_with_sar_tlvs(
    smsc: Callable[..., ThreadedSimulator], esme: Callable[..., Esme]
) -> None:
    client = esme(smsc(receipt_per_message="first"))
    segments = [
        client.submit(b"part", sar_msg_ref_num=513, sar_total_segments=2, sar_segment_seqnum=seq)
        for seq in (1, 2)
    ]
    single = client.submit(b"one part")
    client.pump(lambda: len(client.resp_ids) == 3 and len(client.receipts) >= 2)
    whole, last = (text_id(receipt) for _, receipt in client.receipts)
    assert (whole, last) == (client.resp_ids[segments[0]], client.resp_ids[single])


def test_segments_of_different_messages_are_kept_apart(
    smsc: Callable[..., ThreadedSimulator], esme: Callable[..., Esme]
) -> None:
    simulator = smsc(receipt_per_message="last")
    client = esme(simulator)
    first = [client.submit(udh(0x00, 1, 2, seq) + b"a", esm_class=0x40) for seq in (1, 2)]
    second = client.submit(udh(0x00, 2, 2, 1) + b"b", esm_class=0x40)
    client.pump(lambda: len(client.resp_ids) == 3 and len(client.receipts) == 1)
    assert text_id(client.receipts[0][1]) == client.resp_ids[first[1]]
    last = client.submit(udh(0x00, 2, 2, 2) + b"b", esm_class=0x40)
    client.pump(lambda: len(client.receipts) == 2)
    assert text_id(client.receipts[1][1]) == client.resp_ids[last]
    assert second in client.resp_ids


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"submit_ids": "octal"}, "submit_ids must be one of dec, dec0, hex, HEX, hex0, HEX0"),
        ({"receipt_ids": "Hex"}, "receipt_ids must be one of"),
        ({"late_receipts": 1.5}, "late_receipts must be a fraction"),
        ({"repeat_receipts": -0.1}, "repeat_receipts must be a fraction"),
        ({"late_delay": -1.0}, "late_delay must be >= 0"),
        ({"receipt_per_message": "middle"}, "receipt_per_message must be first, last or None"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        SimulatorConfig(**options)


def test_command_line_refuses_a_bad_style() -> None:
    app = typer.Typer()
    app.command()(smsc_sim)
    result = CliRunner().invoke(app, ["--port", "0", "--submit-ids", "octal"])
    assert result.exit_code == 2
    assert "submit_ids must be one of" in result.output


async def test_command_line_options_reach_the_simulator() -> None:
    code = "import typer; from dispatcher.smsc.command import smsc_sim; typer.run(smsc_sim)"
    options = "--submit-ids HEX --receipt-ids dec0 --no-receipt-tlvs --late-receipts 1"
    options += " --late-delay 0.1 --repeat-receipts 1 --receipt-per-message last"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "--port", "0", *options.split(), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(10):
            line = (await process.stdout.readline()).decode()
            port = int(line.rsplit(":", 1)[1])
            client = await asyncio.to_thread(Esme, port)
            try:
                client.submit(udh(0x00, 7, 2, 1) + b"a", esm_class=0x40)
                sequence = client.submit(udh(0x00, 7, 2, 2) + b"b", esm_class=0x40)
                await asyncio.to_thread(client.pump, lambda: len(client.receipts) == 2)
            finally:
                client.close()
            process.send_signal(signal.SIGTERM)
            output = (await process.stdout.read()).decode()
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    for _, receipt in client.receipts:
        assert receipt.receipted_message_id is None
        assert number(text_id(receipt), "dec0") == number(client.resp_ids[sequence], "HEX")
    assert "receipts_late=1" in output and "receipts_repeated=1" in output
