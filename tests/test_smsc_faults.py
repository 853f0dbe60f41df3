"""The simulator's account limits, record, stats file and faults, over real TCP."""

import ast
import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_smsc_simulator import DEADLINE, Esme, wait_for

from dispatcher.smsc import pdu, read_record, read_record_parts, read_stats
from dispatcher.smsc.command import parse_errors
from dispatcher.smsc.config import Faults, SimulatorStats
from dispatcher.smsc.pdu import CommandId, ShortMessage, Status
from dispatcher.smsc.simulator import VENDOR_COMMAND_ID, Simulator, SimulatorConfig
from dispatcher.smsc.threaded import ThreadedSimulator, serve_in_thread

SMSC = Path(__file__).resolve().parents[1] / "dispatcher" / "smsc"
QUIET = 0.3  # how long "nothing arrives" is watched for


@pytest.fixture
async def smsc() -> AsyncIterator[Callable[..., Any]]:
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
async def connect() -> AsyncIterator[Callable[[int], Any]]:
    clients: list[Esme] = []

    async def open_client(port: int) -> Esme:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        clients.append(Esme(reader, writer))
        return clients[-1]

    yield open_client
    for client in clients:
        client.writer.close()
        with contextlib.suppress(ConnectionError):
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


class SimProcess:
    """`python -m dispatcher smsc-sim ...` as a child process."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port

    @classmethod
    async def start(cls, *args: str) -> "SimProcess":
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dispatcher",
            "smsc-sim",
            "--port",
            "0",
            *args,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        try:
            async with asyncio.timeout(30):
                line = (await process.stdout.readline()).decode()
        except BaseException:
            process.kill()
            await process.wait()
            raise
        assert line.startswith("SMSC simulator listening on 127.0.0.1:"), line
        return cls(process, int(line.rsplit(":", 1)[1]))

    async def end(self, signum: int = signal.SIGTERM) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signum)
        async with asyncio.timeout(10):
            return await self.process.wait()


@pytest.fixture
async def sim_process() -> AsyncIterator[Callable[..., Any]]:
    started: list[SimProcess] = []

    async def start(*args: str) -> SimProcess:
        started.append(await SimProcess.start(*args))
        return started[-1]

    yield start
    for child in started:
        if child.process.returncode is None:
            child.process.kill()
            await child.process.wait()


async def read_submit_resps(esme: Esme, count: int) -> list[tuple[int, str]]:
    """(status, message id) of the next `count` submit_sm_resp, acknowledging receipts."""
    answers: list[tuple[int, str]] = []
    while len(answers) < count:
        command_id, status, sequence, body = await esme.read()
        if command_id == CommandId.SUBMIT_SM_RESP:
            answers.append((status, body.rstrip(b"\x00").decode()))
        elif command_id == CommandId.DELIVER_SM:
            await esme.send(pdu.build_deliver_sm_resp(sequence))
    return answers


async def assert_closed_by_peer(esme: Esme) -> None:
    """Nothing more arrives on `esme` before the SMSC closes it."""
    async with asyncio.timeout(DEADLINE):
        assert await esme.reader.read() == b""


async def assert_nothing_arrives(esme: Esme) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(QUIET):
            await esme.reader.readexactly(1)


def part(destination: str, udh: bytes = b"", tlvs: dict[int, bytes] | None = None) -> ShortMessage:
    return ShortMessage(
        source_addr="GOV",
        destination_addr=destination,
        esm_class=0x40 if udh else 0,
        short_message=udh + b"text",
        tlvs=tlvs or {},
    )


# The import graph.


@pytest.mark.parametrize("module", ["session", "simulator", "threaded", "config", "command"])
def test_each_module_imports_first(module: str) -> None:
    code = f"import dispatcher.smsc.{module}"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_no_import_cycle_between_simulator_session_and_threaded() -> None:
    def imported(name: str) -> set[str]:
        tree = ast.parse((SMSC / f"{name}.py").read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        return modules

    assert not imported("session") & {"dispatcher.smsc.simulator", "dispatcher.smsc.threaded"}
    assert "dispatcher.smsc.threaded" not in imported("simulator")
    assert "dispatcher.smsc.simulator" in imported("threaded")


# The account-wide rate and the session limit.


async def test_rate_is_shared_by_the_sessions_of_a_system_id(
    smsc: Callable[..., Any], connect: Callable[[int], Any]
) -> None:
    rate, burst, duration = 100.0, 10.0, 1.0
    simulator = await smsc(max_rate=rate, burst=burst)
    started = time.monotonic()
    sessions = [await connect(simulator.port) for _ in range(3)]
    for esme, system_id in zip(sessions, ["gov", "gov", "other"], strict=True):
        assert (await esme.bind(system_id=system_id))[0] == Status.OK

    async def blast(esme: Esme) -> list[int]:
        statuses: list[int] = []
        while time.monotonic() - started < duration:
            await esme.send(*(esme.submit(registered=0) for _ in range(20)))
            statuses += [status for status, _ in await read_submit_resps(esme, 20)]
        return statuses

    results = await asyncio.gather(*(blast(esme) for esme in sessions))
    elapsed = time.monotonic() - started
    accepted = [statuses.count(Status.OK) for statuses in results]
    for statuses, ok in zip(results, accepted, strict=True):
        assert statuses.count(Status.THROTTLED) == len(statuses) - ok
    assert accepted[0] > 0 and accepted[1] > 0
    assert accepted[0] + accepted[1] <= rate * elapsed + burst + 1  # both "gov" together
    assert accepted[0] + accepted[1] >= rate * duration * 0.5
    assert rate * duration * 0.5 <= accepted[2] <= rate * elapsed + burst + 1  # its own bucket
    assert simulator.stats.submits == sum(accepted)


async def test_default_burst_is_a_tenth_of_the_rate(
    smsc: Callable[..., Any], connect: Callable[[int], Any]
) -> None:
    assert SimulatorConfig(max_rate=300).effective_burst == 30
    assert SimulatorConfig(max_rate=5).effective_burst == 1
    started = time.monotonic()
    esme = await connect((await smsc(max_rate=300.0)).port)
    await esme.bind()
    await esme.send(*(esme.submit(registered=0) for _ in range(100)))
    statuses = [status for status, _ in await read_submit_resps(esme, 100)]
    elapsed = time.monotonic() - started
    accepted = statuses.count(Status.OK)
    assert 30 <= accepted <= 30 + 300 * elapsed + 1  # the burst, and what 300/s refilled
    assert statuses.count(Status.THROTTLED) == 100 - accepted > 0


async def test_max_sessions_refuses_extra_binds_until_one_closes(
    smsc: Callable[..., Any], connect: Callable[[int], Any]
) -> None:
    simulator = await smsc(max_sessions=2)
    first, second, third = [await connect(simulator.port) for _ in range(3)]
    assert (await first.bind(system_id="gov"))[0] == Status.OK
    assert (await second.bind(CommandId.BIND_RECEIVER, system_id="gov"))[0] == Status.OK
    status, body = await third.bind(system_id="gov")
    assert (status, body) == (Status.BIND_FAILED, b"")
    assert (await (await connect(simulator.port)).bind(system_id="other"))[0] == Status.OK
    assert (simulator.stats.sessions_refused, simulator.stats.bind_failures) == (1, 1)

    first.writer.close()
    await wait_for(lambda: simulator.stats.sessions_bound == 2)
    assert (await third.bind(system_id="gov"))[0] == Status.OK  # the freed slot

    await second.send(pdu.build_unbind(second.next_sequence()))
    assert (await second.read())[0] == CommandId.UNBIND_RESP  # an unbind frees it too
    fourth = await connect(simulator.port)
    assert (await fourth.bind(system_id="gov"))[0] == Status.OK
    assert (await (await connect(simulator.port)).bind(system_id="gov"))[0] == Status.BIND_FAILED


# The record and the stats file.


async def test_record_lines_and_readers(
    smsc: Callable[..., Any], connect: Callable[[int], Any], tmp_path: Path
) -> None:
    record = tmp_path / "accepted.tsv"
    simulator = await smsc(record=record, max_rate=1000.0, burst=6.0)
    esme = await connect(simulator.port)
    await esme.bind()
    sar = {0x020C: b"\x01\x2c", 0x020E: b"\x02"}
    messages = [
        part("111"),
        part("222", udh=b"\x05\x00\x03\x07\x02\x01"),  # 8-bit reference 7, part 1 of 2
        part("222", udh=b"\x05\x00\x03\x07\x02\x02"),
        part("333", udh=b"\x06\x08\x04\x01\x2c\x03\x02"),  # 16-bit reference 300, part 2 of 3
        part("444", tlvs={**sar, 0x020F: b"\x01"}),
        part("111"),
        part("555"),  # throttled: not recorded
    ]
    await esme.send(*(pdu.build_submit_sm(esme.next_sequence(), m) for m in messages))
    answers = await read_submit_resps(esme, len(messages))
    assert [status for status, _ in answers] == [Status.OK] * 6 + [Status.THROTTLED]
    ids = [message_id for _, message_id in answers]
    assert record.read_text().splitlines() == [
        f"111\t{ids[0]}\t-",
        f"222\t{ids[1]}\t7/2/1",
        f"222\t{ids[2]}\t7/2/2",
        f"333\t{ids[3]}\t300/3/2",
        f"444\t{ids[4]}\t300/2/1",
        f"111\t{ids[5]}\t-",
    ]
    assert read_record(record) == Counter({"111": 2, "222": 1, "444": 1})
    assert read_record_parts(record) == Counter(
        {("111", 1): 2, ("222", 1): 1, ("222", 2): 1, ("333", 2): 1, ("444", 1): 1}
    )
    with record.open("a") as torn:
        torn.write("666\t123")  # a line cut short by a crash counts for nothing
    assert read_record(record)["666"] == 0


async def test_record_survives_kill_9_and_a_restart_appends(
    sim_process: Callable[..., Any], connect: Callable[[int], Any], tmp_path: Path
) -> None:
    record = tmp_path / "accepted.tsv"
    answered: list[tuple[str, str]] = []
    for round_ in range(2):
        child = await sim_process("--record", str(record), "--receipt-delay", "0.2")
        esme = await connect(child.port)
        await esme.bind()
        numbers = [f"4670{round_}{i:05d}" for i in range(500)]
        for start in range(0, len(numbers), 100):
            batch = numbers[start : start + 100]
            await esme.send(*(esme.submit(destination=n) for n in batch))
            answers = await read_submit_resps(esme, len(batch))
            answered += [(n, message_id) for n, (_, message_id) in zip(batch, answers, strict=True)]
        assert await child.end(signal.SIGKILL) == -signal.SIGKILL
    lines = [tuple(line.split("\t")) for line in record.read_text().splitlines()]
    assert lines == [(number, message_id, "-") for number, message_id in answered]
    assert read_record(record) == Counter(number for number, _ in answered)
    assert len({message_id for _, message_id in answered}) == 1000


async def test_stats_file_of_a_separate_process(
    sim_process: Callable[..., Any], connect: Callable[[int], Any], tmp_path: Path
) -> None:
    stats_file = tmp_path / "stats.json"
    child = await sim_process("--stats-file", str(stats_file), "--max-rate", "5", "--burst", "5")
    esme = await connect(child.port)
    await esme.bind()
    await esme.send(*(esme.submit(registered=0) for _ in range(20)))
    statuses = [status for status, _ in await read_submit_resps(esme, 20)]
    accepted, throttled = statuses.count(Status.OK), statuses.count(Status.THROTTLED)
    assert accepted + throttled == 20 and throttled >= 10

    def counts() -> tuple[int, int, int]:
        stats = read_stats(stats_file)
        return stats.submits, stats.throttled, stats.sessions_bound

    await wait_for(lambda: stats_file.exists() and counts() == (accepted, throttled, 1))
    esme.writer.close()
    assert await child.end() == 0
    final = read_stats(stats_file)
    assert (final.submits, final.throttled, final.binds, final.sessions_bound) == (
        accepted,
        throttled,
        1,
        0,
    )
    assert not list(tmp_path.glob("*.tmp"))


def test_stats_json_round_trip() -> None:
    stats = SimulatorStats(submits=3, errors={0x08: 2, 0x58: 1})
    assert SimulatorStats.from_json(stats.to_json()) == stats


# Faults.


async def test_error_fault_answers_that_status(
    smsc: Callable[..., Any], connect: Callable[[int], Any]
) -> None:
    simulator = await smsc(errors={0x08: 1.0})
    esme = await connect(simulator.port)
    await esme.bind()
    await esme.send(*(esme.submit() for _ in range(5)), pdu.build_enquire_link(99))
    answers = [await esme.read() for _ in range(6)]  # no receipt comes in between
    assert [a[:2] for a in answers[:5]] == [(CommandId.SUBMIT_SM_RESP, Status.SYSTEM_ERROR)] * 5
    assert answers[5][0] == CommandId.ENQUIRE_LINK_RESP
    assert simulator.stats.errors == {0x08: 5}
    assert (simulator.stats.submits, simulator.stats.receipts_sent) == (0, 0)


async def test_error_fractions_mix(smsc: Callable[..., Any], connect: Callable[[int], Any]) -> None:
    simulator = await smsc(errors={0x08: 0.25, 0x14: 0.25}, seed=3)
    esme = await connect(simulator.port)
    await esme.bind()
    await esme.send(*(esme.submit() for _ in range(400)))
    statuses: Counter[int] = Counter()
    receipts = 0
    while statuses.total() < 400 or receipts < statuses[Status.OK]:
        command_id, status, sequence, _ = await esme.read()
        if command_id == CommandId.SUBMIT_SM_RESP:
            statuses[status] += 1
        else:
            assert command_id == CommandId.DELIVER_SM
            receipts += 1
            await esme.send(pdu.build_deliver_sm_resp(sequence))
    assert set(statuses) == {Status.OK, 0x08, 0x14}
    assert all(60 <= statuses[status] <= 140 for status in (0x08, 0x14))
    assert simulator.stats.errors == {0x08: statuses[0x08], 0x14: statuses[0x14]}
    assert simulator.stats.submits == receipts == statuses[Status.OK]
    await wait_for(lambda: simulator.stats.receipts_acked == statuses[Status.OK])


async def test_no_answer_fault_swallows_submits(
    smsc: Callable[..., Any], connect: Callable[[int], Any]
) -> None:
    simulator = await smsc(no_answer=1.0)
    esme = await connect(simulator.port)
    await esme.bind()
    await esme.send(*(esme.submit() for _ in range(5)), pdu.build_enquire_link(99))
    assert await esme.read() == (CommandId.ENQUIRE_LINK_RESP, Status.OK, 99, b"")
    assert (simulator.stats.unanswered, simulator.stats.submits) == (5, 0)


async def test_no_answer_fraction(smsc: Callable[..., Any], connect: Callable[[int], Any]) -> None:
    simulator = await smsc(no_answer=0.5, seed=1)
    esme = await connect(simulator.port)
    await esme.bind()
    await esme.send(*(esme.submit(registered=0) for _ in range(200)), pdu.build_enquire_link(9))
    answers = 0
    while (await esme.read())[0] == CommandId.SUBMIT_SM_RESP:
        answers += 1
    assert 60 <= answers <= 140
    assert simulator.stats.unanswered == 200 - answers == 200 - simulator.stats.submits


async def test_ignore_enquire_link(smsc: Callable[..., Any], connect: Callable[[int], Any]) -> None:
    simulator = await smsc(ignore_enquire_link=True)
    esme = await connect(simulator.port)
    await esme.bind()
    await esme.send(pdu.build_enquire_link(7), esme.submit(registered=0))
    assert (await esme.read())[0] == CommandId.SUBMIT_SM_RESP
    assert (simulator.stats.enquire_links, simulator.stats.enquire_links_ignored) == (0, 1)


async def test_vendor_pdu_every_n_submits(
    smsc: Callable[..., Any], connect: Callable[[int], Any]
) -> None:
    simulator = await smsc(vendor_pdu_every=3)
    esme = await connect(simulator.port)
    await esme.bind()
    await esme.send(*(esme.submit(registered=0) for _ in range(7)))
    pdus = [await esme.read() for _ in range(9)]
    resp = CommandId.SUBMIT_SM_RESP
    assert [p[0] for p in pdus] == [*[resp] * 3, VENDOR_COMMAND_ID] * 2 + [resp]
    vendor = [p for p in pdus if p[0] == VENDOR_COMMAND_ID]
    assert simulator.stats.vendor_pdus_sent == 2
    await esme.send(pdu.build_generic_nack(vendor[0][2], Status.INVALID_COMMAND_ID))
    await esme.send(pdu.build_generic_nack(12345, Status.INVALID_COMMAND_ID))  # not for one
    await esme.send(pdu.build_generic_nack(vendor[1][2], Status.INVALID_COMMAND_ID))
    await wait_for(lambda: simulator.stats.generic_nacks_received == 2)
    await esme.send(pdu.build_enquire_link(99))
    assert (await esme.read())[0] == CommandId.ENQUIRE_LINK_RESP
    assert simulator.stats.generic_nacks_received == 2


async def test_faults_change_at_run_time(
    smsc: Callable[..., Any], connect: Callable[[int], Any]
) -> None:
    simulator = await smsc()
    esme = await connect(simulator.port)
    await esme.bind()
    simulator.faults.errors = {0x58: 1.0}
    await esme.send(esme.submit(registered=0))
    assert (await esme.read())[1] == Status.THROTTLED
    with pytest.raises(TypeError):
        simulator.faults.errors[0x08] = 1.0  # type: ignore[index]
    with pytest.raises(ValueError, match="more than 1"):
        simulator.faults.no_answer = 0.5
    simulator.faults.errors = {}
    await esme.send(esme.submit(registered=0))
    assert (await esme.read())[1] == Status.OK
    assert simulator.stats.errors == {0x58: 1}


def test_threaded_set_faults_stall_and_drop(
    threaded_smsc: Callable[..., ThreadedSimulator],
) -> None:
    async def scenario(threaded: ThreadedSimulator) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", threaded.port)
        esme = Esme(reader, writer)
        await esme.bind()
        await asyncio.to_thread(threaded.set_faults, errors={0x08: 1.0})
        await esme.send(esme.submit(registered=0))
        assert (await esme.read())[1] == Status.SYSTEM_ERROR
        with pytest.raises(ValueError):
            await asyncio.to_thread(threaded.set_faults, errors={}, no_answer=2.0)
        assert threaded.faults.errors == {0x08: 1.0}  # unchanged, not half-applied
        await asyncio.to_thread(threaded.set_faults, errors={}, ignore_enquire_link=True)
        await esme.send(pdu.build_enquire_link(5), esme.submit(registered=0))
        assert (await esme.read())[:2] == (CommandId.SUBMIT_SM_RESP, Status.OK)

        await asyncio.to_thread(threaded.stall)
        await esme.send(esme.submit(registered=0))
        await assert_nothing_arrives(esme)
        await asyncio.to_thread(threaded.resume)
        assert (await esme.read())[:2] == (CommandId.SUBMIT_SM_RESP, Status.OK)

        assert await asyncio.to_thread(threaded.drop_connections) == 1
        await assert_closed_by_peer(esme)
        writer.close()

    threaded = threaded_smsc()
    asyncio.run(scenario(threaded))
    assert threaded.stats.connections_dropped == 1


async def test_stall_reads_and_answers_nothing_until_resumed(
    smsc: Callable[..., Any], connect: Callable[[int], Any]
) -> None:
    simulator = await smsc(receipt_delay=0.05)
    esme = await connect(simulator.port)
    await esme.bind()
    await esme.send(esme.submit())
    assert (await esme.read())[0] == CommandId.SUBMIT_SM_RESP
    simulator.stall()
    late = await connect(simulator.port)  # connects, but its bind is not read
    await late.send(pdu.build_bind(CommandId.BIND_TRANSCEIVER, 1, pdu.BindRequest("late", "")))
    await esme.send(pdu.build_enquire_link(42))
    await assert_nothing_arrives(esme)  # neither the answer nor the receipt due meanwhile
    assert (simulator.stats.enquire_links, simulator.stats.binds) == (0, 1)
    simulator.resume()
    pdus = {(await esme.read())[0] for _ in range(2)}
    assert pdus == {CommandId.DELIVER_SM, CommandId.ENQUIRE_LINK_RESP}
    assert (await late.read())[:2] == (CommandId.BIND_TRANSCEIVER_RESP, Status.OK)


async def test_stalled_from_the_start(
    smsc: Callable[..., Any], connect: Callable[[int], Any]
) -> None:
    simulator = await smsc(stalled=True)
    esme = await connect(simulator.port)
    await esme.send(pdu.build_enquire_link(1))
    await assert_nothing_arrives(esme)
    simulator.faults.stalled = False
    assert (await esme.read())[0] == CommandId.ENQUIRE_LINK_RESP


async def test_drop_connections_answers_nothing_in_flight(
    smsc: Callable[..., Any], connect: Callable[[int], Any]
) -> None:
    simulator = await smsc(latency=1.0)
    sessions = [await connect(simulator.port) for _ in range(2)]
    for esme in sessions:
        await esme.bind()
    await sessions[0].send(sessions[0].submit())
    await wait_for(lambda: simulator.stats.submits == 1)
    assert simulator.drop_connections() == 2
    for esme in sessions:
        await assert_closed_by_peer(esme)  # no submit_sm_resp first
    again = await connect(simulator.port)
    assert (await again.bind())[0] == Status.OK
    assert simulator.stats.connections_dropped == 2


async def test_sigusr1_drops_connections_and_esmes_reconnect(
    sim_process: Callable[..., Any], connect: Callable[[int], Any], tmp_path: Path
) -> None:
    stats_file = tmp_path / "stats.json"
    child = await sim_process("--stats-file", str(stats_file), "--max-sessions", "2")
    sessions = [await connect(child.port) for _ in range(2)]
    for esme in sessions:
        assert (await esme.bind())[0] == Status.OK
    child.process.send_signal(signal.SIGUSR1)
    for esme in sessions:
        await assert_closed_by_peer(esme)
    for _ in range(2):  # both slots are free again
        esme = await connect(child.port)
        assert (await esme.bind())[0] == Status.OK
        await esme.send(esme.submit(registered=0))
        assert (await esme.read())[:2] == (CommandId.SUBMIT_SM_RESP, Status.OK)
    await wait_for(lambda: stats_file.exists() and read_stats(stats_file).submits == 2)
    assert read_stats(stats_file).connections_dropped == 2
    assert await child.end() == 0


async def test_cli_faults_and_sigusr2_stall(
    sim_process: Callable[..., Any], connect: Callable[[int], Any]
) -> None:
    child = await sim_process(
        "--stall", "--error", "0x08=1", "--ignore-enquire-link", "--vendor-pdu-every", "1"
    )
    esme = await connect(child.port)
    await esme.send(pdu.build_bind(CommandId.BIND_TRANSCEIVER, 1, pdu.BindRequest("esme", "")))
    await assert_nothing_arrives(esme)
    child.process.send_signal(signal.SIGUSR2)  # resumes
    assert (await esme.read())[:2] == (CommandId.BIND_TRANSCEIVER_RESP, Status.OK)
    await esme.send(pdu.build_enquire_link(3), esme.submit())
    assert (await esme.read())[:2] == (CommandId.SUBMIT_SM_RESP, Status.SYSTEM_ERROR)
    assert await child.end() == 0


def test_parse_errors_and_validation() -> None:
    assert parse_errors(["0x08=0.1,20=0.2", "0x58=0.05"]) == {0x08: 0.1, 20: 0.2, 0x58: 0.05}
    for bad in (["0x08"], ["x=0.1"], ["8=lots"]):
        with pytest.raises(Exception, match="STATUS=FRACTION"):
            parse_errors(bad)
    for options in (
        {"errors": {0x08: 0.7}, "no_answer": 0.5},
        {"errors": {0: 0.1}},
        {"no_answer": -0.1},
        {"vendor_pdu_every": -1},
        {"burst": 10.0},
        {"max_rate": 10.0, "burst": 0.5},
        {"max_sessions": 0},
    ):
        with pytest.raises(ValueError):
            SimulatorConfig(**options)
    assert Faults(errors={8: 0.5}, no_answer=0.5).submit_draws == ((0.5, -1), (1.0, 8))
