"""One SMPP bind against the project's SMSC simulator over real TCP: answers, faults, stops."""

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dispatcher.sending.accounts import Pacer
from dispatcher.sending.bind import BindSession
from dispatcher.sending.receipts import Receipt
from dispatcher.sending.submissions import Answer, Content, Outcome, Part, Submission
from dispatcher.settings import AccountSettings
from dispatcher.smsc.simulator import SimulatorConfig
from dispatcher.smsc.threaded import ThreadedSimulator, serve_in_thread

NORMAL = Content(
    campaign_id=1,
    source_addr="GiaLai",
    source_addr_ton=5,
    source_addr_npi=0,
    parts=(Part(0x08, 0, "Phòng dịch nCoV".encode("utf-16-be")),),
)
URGENT = Content(
    campaign_id=2,
    source_addr="GiaLai",
    source_addr_ton=5,
    source_addr_npi=0,
    parts=(Part(0x08, 0, "Khẩn cấp".encode("utf-16-be")),),
    urgent=True,
)


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def simulator(request: pytest.FixtureRequest) -> Iterator[ThreadedSimulator]:
    options = getattr(request, "param", {})
    with serve_in_thread(SimulatorConfig(port=0, keep_messages=5000, **options)) as simulator:
        yield simulator


class Recorder:
    """What a bind hands back: answers, receipts (acknowledged at once), state changes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answers: list[Answer] = []
        self.receipts: list[Receipt] = []
        self.states: list[tuple[str, str]] = []

    def on_answers(self, answers: list[Answer]) -> None:
        with self.lock:
            self.answers += answers

    def on_receipt(self, receipt: Receipt, ack: Callable[[], None]) -> None:
        with self.lock:
            self.receipts.append(receipt)
        ack()

    def on_state(self, name: str, state: str, detail: str) -> None:
        self.states.append((state, detail))

    def last(self, outcome: Outcome | None = None) -> dict[int, Answer]:
        """Each message's last answer (of that outcome)."""
        with self.lock:
            return {
                a.message_id: a for a in self.answers if outcome is None or a.outcome == outcome
            }

    def settled(self) -> int:
        with self.lock:
            return len(
                {
                    a.message_id
                    for a in self.answers
                    if a.outcome not in (Outcome.ACCEPTED, Outcome.RESENT) or a.final
                }
            )


def start_bind(
    port: int, recorder: Recorder, halted: Callable[[int], str | None] | None = None, **options: Any
) -> BindSession:
    drain = options.pop("drain_timeout", 10.0)
    account = AccountSettings(port=port, rate=0, **options)
    bind = BindSession(
        account,
        pacer=Pacer(None),
        on_answers=recorder.on_answers,
        on_receipt=recorder.on_receipt,
        on_state=recorder.on_state,
        halted=halted or (lambda campaign_id: None),
        drain_timeout=drain,
    )
    bind.start()
    wait_for(lambda: bind.is_up)
    return bind


def submit(bind: BindSession, count: int, content: Content = NORMAL, first: int = 0) -> None:
    bind.submit([Submission(i, f"+8491234{i:04d}", content) for i in range(first, first + count)])


def test_every_message_gets_an_smsc_id_and_a_receipt(simulator: ThreadedSimulator) -> None:
    recorder = Recorder()
    bind = start_bind(simulator.port, recorder, window=50)
    for start in range(0, 2000, 100):
        wait_for(lambda: bind.room() >= 100)
        submit(bind, 100, first=start)
    wait_for(lambda: recorder.settled() == 2000 and len(recorder.receipts) == 2000)
    bind.stop()
    accepted = recorder.last(Outcome.ACCEPTED)
    assert sorted(accepted) == list(range(2000))
    assert all(a.smsc_message_id and a.attempts == 1 for a in accepted.values())
    assert {a.smsc_message_id for a in accepted.values()} == {
        r.smsc_message_id for r in recorder.receipts
    }
    assert simulator.stats.receipts_acked == 2000
    assert simulator.stats.unbinds == 1


def test_socket_has_nagle_disabled(simulator: ThreadedSimulator) -> None:
    bind = start_bind(simulator.port, Recorder())
    try:
        assert bind._link is not None
        assert bind._link.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        bind.stop()


@pytest.mark.parametrize("simulator", [{"max_rate": 200.0}], indirect=True)
def test_a_throttled_bind_slows_down_and_loses_nothing(simulator: ThreadedSimulator) -> None:
    recorder = Recorder()
    bind = start_bind(simulator.port, recorder)
    submit(bind, 300)
    wait_for(lambda: recorder.settled() == 300)
    bind.stop()
    assert simulator.stats.throttled > 0, "the SMSC should have pushed back"
    assert bind.counters["throttled"] == simulator.stats.throttled
    assert len(recorder.last(Outcome.ACCEPTED)) == 300


@pytest.mark.parametrize(
    "simulator", [{"errors": {0x08: 0.3, 0x0B: 0.1}, "seed": 3}], indirect=True
)
def test_temporary_errors_are_retried_and_permanent_ones_fail_at_once(
    simulator: ThreadedSimulator,
) -> None:
    recorder = Recorder()
    bind = start_bind(simulator.port, recorder, retry_backoff=0.01, max_attempts=8)
    submit(bind, 200)
    wait_for(lambda: recorder.settled() == 200)
    bind.stop()
    last = recorder.last()
    failed = [a for a in last.values() if a.outcome == Outcome.FAILED]
    accepted = [a for a in last.values() if a.outcome == Outcome.ACCEPTED]
    assert failed and accepted and len(failed) + len(accepted) == 200
    # An invalid destination fails for good, on the attempt it was answered; system errors
    # (0x08) were sent again: some messages took several attempts and then got through.
    assert {a.command_status for a in failed} == {0x0B}
    assert any(a.attempts > 1 for a in accepted)
    assert bind.counters["retry:ESME_RSYSERR"] > 0
    assert simulator.stats.submits == len(accepted)


@pytest.mark.parametrize("simulator", [{"errors": {0x08: 1.0}}], indirect=True)
def test_temporary_errors_give_up_after_the_attempts_allowed(simulator: ThreadedSimulator) -> None:
    recorder = Recorder()
    bind = start_bind(simulator.port, recorder, retry_backoff=0.01, max_attempts=3)
    submit(bind, 5)
    wait_for(lambda: recorder.settled() == 5)
    bind.stop()
    assert {(a.outcome, a.command_status, a.attempts) for a in recorder.last().values()} == {
        (Outcome.FAILED, 0x08, 3)
    }


def test_a_silent_smsc_drops_the_link_and_leaves_the_unanswered_in_doubt(
    simulator: ThreadedSimulator,
) -> None:
    recorder = Recorder()
    bind = start_bind(simulator.port, recorder, response_timeout=1.0, window=20)
    simulator.stall()
    submit(bind, 50)
    wait_for(lambda: len(recorder.last(Outcome.IN_DOUBT)) == 20)
    simulator.resume()
    wait_for(lambda: recorder.settled() == 50)
    wait_for(lambda: bind.is_up)
    bind.stop()
    doubt = recorder.last(Outcome.IN_DOUBT)
    # The 20 written without an answer are in doubt; the 30 never written were handed back.
    assert {a.reason for a in doubt.values()} == {"connection_lost"}
    assert len(recorder.last(Outcome.RETURNED)) == 30
    assert ("down", "connection_lost") in recorder.states


def test_a_dropped_link_is_resent_when_the_account_says_so(simulator: ThreadedSimulator) -> None:
    recorder = Recorder()
    bind = start_bind(simulator.port, recorder, on_connection_loss="resend", window=20)
    simulator.stall()
    submit(bind, 20)
    wait_for(lambda: len(bind._inflight) == 20)
    simulator.drop_connections()
    simulator.resume()
    wait_for(lambda: recorder.settled() == 20)
    bind.stop()
    assert len(recorder.last(Outcome.RESENT)) == 20  # marked: they may arrive twice
    assert len(recorder.last(Outcome.ACCEPTED)) == 20
    assert simulator.stats.binds == 2


@pytest.mark.parametrize("simulator", [{"ignore_enquire_link": True}], indirect=True)
def test_a_half_open_link_is_found_by_enquire_link_and_bound_again(
    simulator: ThreadedSimulator,
) -> None:
    recorder = Recorder()
    bind = start_bind(simulator.port, recorder, enquire_link_interval=0.2, enquire_link_timeout=0.3)
    wait_for(lambda: simulator.stats.binds >= 2)
    bind.stop()
    assert simulator.stats.enquire_links_ignored >= 1
    assert [state for state, _ in recorder.states[:3]] == ["up", "down", "up"]


@pytest.mark.parametrize("simulator", [{"vendor_pdu_every": 25}], indirect=True)
def test_a_vendor_pdu_is_answered_with_generic_nack_and_the_bind_carries_on(
    simulator: ThreadedSimulator,
) -> None:
    recorder = Recorder()
    bind = start_bind(simulator.port, recorder)
    submit(bind, 200)
    wait_for(lambda: recorder.settled() == 200)
    bind.stop()
    assert simulator.stats.generic_nacks_received >= 5
    assert len(recorder.last(Outcome.ACCEPTED)) == 200
    assert simulator.stats.binds == 1  # never dropped


@pytest.mark.parametrize("simulator", [{"password": "right"}], indirect=True)
def test_a_refused_bind_is_reported_once_not_per_retry(simulator: ThreadedSimulator) -> None:
    recorder = Recorder()
    account = AccountSettings(port=simulator.port, password="wrong", reconnect_max=0.05)  # type: ignore[arg-type]
    bind = BindSession(
        account,
        pacer=Pacer(None),
        on_answers=recorder.on_answers,
        on_receipt=recorder.on_receipt,
        on_state=recorder.on_state,
    )
    bind.start()
    wait_for(lambda: simulator.stats.bind_failures >= 4)
    bind.stop()
    assert recorder.states == [("refused", "ESME_RINVPASWD")]


def test_a_stop_hands_back_what_was_not_written(simulator: ThreadedSimulator) -> None:
    recorder = Recorder()
    bind = start_bind(simulator.port, recorder, window=40, drain_timeout=0.5)
    simulator.stall()
    submit(bind, 100)
    wait_for(lambda: len(bind._inflight) == 40)
    bind.stop()
    simulator.resume()
    assert len(recorder.last(Outcome.RETURNED)) == 60
    assert {a.reason for a in recorder.last(Outcome.IN_DOUBT).values()} == {"stopped"}
    assert len(recorder.last(Outcome.IN_DOUBT)) == 40


def test_urgent_messages_overtake_the_normal_ones_a_bind_holds(
    simulator: ThreadedSimulator,
) -> None:
    recorder = Recorder()
    bind = start_bind(simulator.port, recorder, window=10)
    simulator.stall()
    submit(bind, 100)  # 10 written, 90 waiting
    wait_for(lambda: len(bind._inflight) == 10)
    submit(bind, 20, URGENT, first=1000)
    simulator.resume()
    wait_for(lambda: recorder.settled() == 120)
    bind.stop()
    order = [int(m.destination_addr[-4:]) for m in simulator.simulator.accepted]
    # The ten already written first; then every urgent one before any further normal one.
    assert order[10:30] == list(range(1000, 1020))


def test_a_halted_campaign_is_not_written(simulator: ThreadedSimulator) -> None:
    recorder = Recorder()
    bind = start_bind(
        simulator.port,
        recorder,
        halted=lambda campaign_id: "cancelled" if campaign_id == 1 else None,
    )
    submit(bind, 10)
    submit(bind, 10, URGENT, first=100)
    wait_for(lambda: recorder.settled() == 20)
    bind.stop()
    assert {a.reason for a in recorder.last(Outcome.SKIPPED).values()} == {"cancelled"}
    assert len(recorder.last(Outcome.ACCEPTED)) == 10
    assert simulator.stats.submits == 10


class OrderRecorder(Recorder):
    """Notes, for every receipt, whether the answer with its SMSC id was handed over before it."""

    def __init__(self) -> None:
        super().__init__()
        self.answered_ids: set[str] = set()
        self.receipt_before_answer = 0

    def on_answers(self, answers: list[Answer]) -> None:
        with self.lock:
            self.answered_ids.update(a.smsc_message_id or "" for a in answers)
        super().on_answers(answers)

    def on_receipt(self, receipt: Receipt, ack: Callable[[], None]) -> None:
        with self.lock:
            if receipt.smsc_message_id not in self.answered_ids:
                self.receipt_before_answer += 1
        super().on_receipt(receipt, ack)


@pytest.mark.parametrize("simulator", [{"receipt_delay": 0.0}], indirect=True)
def test_a_receipt_is_handed_over_after_the_answer_that_gave_its_id(
    simulator: ThreadedSimulator,
) -> None:
    """The worker stores what a bind hands over in that order, in one transaction: a receipt
    that overtook its answer would wait in pending_receipt instead of being matched."""
    recorder = OrderRecorder()
    bind = start_bind(simulator.port, recorder, window=100)
    for start in range(0, 3000, 300):
        wait_for(lambda: bind.room() >= 300)
        submit(bind, 300, first=start)
    wait_for(lambda: len(recorder.receipts) == 3000)
    bind.stop()
    assert recorder.receipt_before_answer == 0
