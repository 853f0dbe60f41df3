"""One SMPP bind against the project's SMSC simulator over real TCP."""

import asyncio
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from dispatcher.settings import BindSettings
from dispatcher.smpp.bind import BindSession, Content, Part, Submission, SubmitResult, Ticket
from dispatcher.smpp.receipts import Receipt
from dispatcher.smsc.simulator import SimulatorConfig, ThreadedSimulator, serve_in_thread

CONTENT = Content(
    campaign_id=1,
    source_addr="GiaLai",
    source_addr_ton=5,
    source_addr_npi=0,
    parts=(Part(0x08, 0, "Phòng dịch nCoV".encode("utf-16-be")),),
)


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def simulator(request: pytest.FixtureRequest) -> Iterator[ThreadedSimulator]:
    options = getattr(request, "param", {})
    with serve_in_thread(SimulatorConfig(port=0, **options)) as simulator:
        yield simulator


def start_bind(port: int, receipts: list[Receipt], **options: object) -> BindSession:
    settings = BindSettings(port=port, rate=0, **options)  # type: ignore[arg-type]
    bind = BindSession(settings, lambda receipt, ack: (receipts.append(receipt), ack()))
    bind.start()
    assert bind.bound.wait(10), "bind did not come up"
    return bind


async def submit(bind: BindSession, count: int) -> list[SubmitResult]:
    ticket = Ticket(asyncio.get_running_loop(), CONTENT, count)
    bind.submit([Submission(i, f"+8491234{i:04d}", ticket) for i in range(count)])
    return await asyncio.wait_for(ticket.future, 30)


async def test_every_message_gets_an_smsc_id_and_a_receipt(simulator: ThreadedSimulator) -> None:
    receipts: list[Receipt] = []
    bind = start_bind(simulator.port, receipts, window=50)
    results = await submit(bind, 2000)
    wait_for(lambda: len(receipts) == 2000)
    bind.stop()
    assert sorted(r.message_id for r in results) == list(range(2000))
    assert all(r.command_status == 0 and r.smsc_message_id for r in results)
    assert {r.smsc_message_id for r in results} == {r.smsc_message_id for r in receipts}
    assert simulator.stats.receipts_acked == 2000
    assert simulator.stats.unbinds == 1


async def test_socket_has_nagle_disabled(simulator: ThreadedSimulator) -> None:
    bind = start_bind(simulator.port, [])
    try:
        nodelay = bind._client._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert nodelay
    finally:
        bind.stop()


@pytest.mark.parametrize("simulator", [{"max_rate": 200.0}], indirect=True)
async def test_throttled_bind_slows_down_and_loses_nothing(simulator: ThreadedSimulator) -> None:
    bind = start_bind(simulator.port, [])
    results = await submit(bind, 600)
    bind.stop()
    assert simulator.stats.throttled > 0, "the SMSC should have pushed back"
    assert all(r.command_status == 0 for r in results)
    assert simulator.stats.submits == 600


async def test_bind_rate_limit_holds_the_pace(simulator: ThreadedSimulator) -> None:
    bind = start_bind(simulator.port, [])
    bind._bucket.rate, bind._bucket.capacity = 500.0, 10.0
    started = time.monotonic()
    await submit(bind, 500)
    elapsed = time.monotonic() - started
    bind.stop()
    assert elapsed > 0.9, f"500 submits at 500/s took only {elapsed:.2f}s"
    assert simulator.stats.throttled == 0


@pytest.mark.parametrize("simulator", [{"answer_unbind": False}], indirect=True)
async def test_stop_does_not_hang_on_an_smsc_that_never_answers_unbind(
    simulator: ThreadedSimulator,
) -> None:
    bind = start_bind(simulator.port, [])
    await submit(bind, 10)
    started = time.monotonic()
    bind.stop(timeout=10)
    assert not bind.is_alive()
    assert time.monotonic() - started < 5


async def test_bind_reconnects_after_the_smsc_restarts() -> None:
    first = serve_in_thread(SimulatorConfig(port=0))
    port = first.port
    bind = start_bind(port, [])
    await submit(bind, 10)
    first.stop()
    wait_for(lambda: not bind.bound.is_set())
    with serve_in_thread(SimulatorConfig(port=port)) as second:
        assert bind.bound.wait(15), "bind did not come back"
        results = await submit(bind, 10)
        bind.stop()
    assert all(r.command_status == 0 for r in results)
    assert second.stats.submits == 10


@pytest.mark.parametrize(
    "simulator", [{"system_id": "dispatcher", "password": "right"}], indirect=True
)
async def test_wrong_password_never_binds(simulator: ThreadedSimulator) -> None:
    settings = BindSettings(port=simulator.port, password="wrong")  # type: ignore[arg-type]
    bind = BindSession(settings, lambda receipt, ack: None)
    bind.start()
    wait_for(lambda: simulator.stats.bind_failures >= 1)
    assert not bind.bound.is_set()
    bind.stop()


async def test_a_receipt_not_yet_stored_is_delivered_again_after_a_crash(
    simulator: ThreadedSimulator,
) -> None:
    held: list[Receipt] = []  # this process "dies" before storing them: no acknowledgement
    first = BindSession(BindSettings(port=simulator.port, rate=0), lambda r, ack: held.append(r))
    first.start()
    assert first.bound.wait(10)
    await submit(first, 10)
    wait_for(lambda: len(held) == 10)
    first.stop()
    assert simulator.stats.receipts_acked == 0
    again: list[Receipt] = []
    second = start_bind(simulator.port, again)  # stores and acknowledges
    wait_for(lambda: len(again) == 10)
    second.stop()
    assert {r.smsc_message_id for r in again} == {r.smsc_message_id for r in held}
    assert simulator.stats.receipts_acked == 10
