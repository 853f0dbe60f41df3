"""One SMPP session owned by one thread: window, pacing, retries, timeouts, keep-alive; no database.

Messages come in through `submit` (from the worker's event loop); everything learnt about them
goes out through `on_answers` in small groups, and delivery receipts through `on_receipt` with
the acknowledgement to send once they are stored. The thread survives any error: it logs it,
drops the link and binds again with exponential backoff and jitter.
"""

import heapq
import itertools
import logging
import queue
import random
import select
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import redis
import smpplib.consts
import smpplib.exceptions

from campaigns.numbers import mask
from dispatcher.sending import fastpdu, metrics, receipts
from dispatcher.sending.accounts import Pacer
from dispatcher.sending.answers import (
    BIND_REFUSALS,
    ESME_ROK,
    GENERIC_NACK,
    Action,
    Answers,
    status_name,
)
from dispatcher.sending.submissions import Answer, Content, Outcome, Submission
from dispatcher.sending.wire import (
    ESME_RINVCMDID,
    Link,
    LinkError,
    UnknownPdu,
    close_link,
    open_link,
)
from dispatcher.sending.wirelog import WireLog
from dispatcher.settings import AccountSettings, OnConnectionLoss

log = logging.getLogger("dispatcher.smpp")

UNBIND_WAIT_SECONDS = 2.0
STABLE_BIND_SECONDS = 30.0  # a bind that lasted this long resets the reconnect backoff
IDLE_POLL = 0.05
HOLD_WINDOWS = 10  # messages a bind holds (written or not), in windows
HOLD_SECONDS = 1.0  # … or in seconds of its share of the account's rate, if less
HOLD_LEAST = 10
FLUSH_SECONDS = 0.005  # what was heard is handed over this soon at the latest…
FLUSH_COUNT = 100  # … or as soon as this much has been heard
Ack = Callable[[], None]  # answers one receipt's deliver_sm
Queued = tuple[int, int, Submission, int]  # (priority or due time, order, message, part)


class BindSession(threading.Thread):
    """Owns one smpplib client and its socket; nothing else touches them."""

    def __init__(
        self,
        account: AccountSettings,
        *,
        pacer: Pacer,
        on_answers: Callable[[list[Answer]], None],
        on_receipt: Callable[[receipts.Receipt, Ack], None],
        on_state: Callable[[str, str, str], None] = lambda name, state, detail: None,
        halted: Callable[[int], str | None] = lambda campaign_id: None,
        name: str | None = None,
        wire: WireLog | None = None,
        fenced: Callable[[], bool] = lambda: False,
        drain_timeout: float = 10.0,
    ) -> None:
        self.name_ = name or account.name
        super().__init__(name=f"smpp-{self.name_}", daemon=True)
        self.account = account
        self.answers = Answers(
            account.answers,
            max_attempts=account.max_attempts,
            retry_for=account.retry_for,
            backoff=account.retry_backoff,
        )
        self.counters: Counter[str] = Counter()  # for watching: submits by status, throttles…
        self.state = "down"
        self._observe_latency = metrics.submit_latency(account.name)
        self._pacer = pacer
        self._on_answers = on_answers
        self._on_receipt = on_receipt
        self._on_state = on_state
        self._halted = halted
        self._drain_timeout = drain_timeout
        self._wire = wire
        self._fenced = fenced
        self._wire_down = False
        self._inbox: queue.SimpleQueue[Submission] = queue.SimpleQueue()
        self._received = 0  # messages handed in (written only by callers' thread)
        self._released = 0  # messages settled (written only by this thread)
        self._received_urgent = 0
        self._released_urgent = 0
        self._order = itertools.count()
        self._ready: list[Queued] = []  # parts to write now, by priority then age
        self._waiting: list[Queued] = []  # parts to write again after a backoff, by due time
        self._inflight: dict[int, tuple[Submission, int, float]] = {}  # sequence → part
        self._out: list[Answer] = []
        self._receipts_out: list[tuple[receipts.Receipt, Ack]] = []  # handed over after answers
        self._heard: dict[int, Submission] = {}  # written messages with news since the last flush
        self._acks: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._link: Link | None = None
        self._connection = 0  # counts links, so an ack never crosses into a new one
        self._slow_until = 0.0
        self._throttle_streak = 0
        self._last_rx = 0.0
        self._enquiry_sent: float | None = None
        self._drain_until: float | None = None
        self._flush_at: float | None = None  # when what was heard is next handed over
        # Each campaign's submit_sm, encoded once per part: (content, its parts' templates).
        self._templates: dict[int, tuple[Content, list[fastpdu.SubmitTemplate]]] = {}

    # -- called from other threads -------------------------------------------------------

    def submit(self, submissions: list[Submission]) -> None:
        """Hand messages to this bind (claimed for it, not yet written)."""
        self._received += len(submissions)
        self._received_urgent += sum(1 for s in submissions if s.content.urgent)
        for submission in submissions:
            self._inbox.put(submission)

    def room(self, *, urgent: bool = False) -> int:
        """How many more messages this bind should be given, up to HOLD_WINDOWS windows.

        Holding more than the window costs nothing in doubt (only what was written can be in
        doubt, see wirelog.py) and keeps the bind busy while the next claim is on its way.
        Urgent messages count only against the urgent ones held: they overtake the rest.
        """
        if urgent:
            held = self._received_urgent - self._released_urgent
        else:
            held = self._received - self._released
        return self.hold_limit - held

    @property
    def hold_limit(self) -> int:
        """The most messages this bind holds: ten windows, or a second of its share of the rate.

        Holding no more than a second's worth keeps a slow account from sitting on messages
        that a faster one could send meanwhile.
        """
        most = HOLD_WINDOWS * self.account.window
        if self.account.rate <= 0:
            return most
        share = self.account.rate / self.account.max_sessions
        return max(HOLD_LEAST, min(most, round(share * HOLD_SECONDS)))

    def held(self) -> int:
        """Messages in this bind's hands, written or not."""
        return self._received - self._released

    @property
    def window_in_use(self) -> int:
        """submit_sm written and not yet answered."""
        return len(self._inflight)

    @property
    def is_up(self) -> bool:
        """Whether the bind is bound and taking messages."""
        return self.state == "up" and not self._stopping.is_set()

    def acknowledge(self, connection: int, sequence: int) -> None:
        """Answer a receipt's deliver_sm, now that the receipt is stored."""
        self._acks.put((connection, sequence))

    def stop(self, timeout: float | None = None) -> None:
        """Stop writing, hand back what was not written, wait for answers, unbind, close."""
        self._stopping.set()
        self.join(self._drain_timeout + UNBIND_WAIT_SECONDS + 5 if timeout is None else timeout)

    # -- the bind's own thread: links ----------------------------------------------------

    def run(self) -> None:
        """Bind, pump until stopped, binding again with backoff after any failure."""
        backoff = 0.5
        while not self._stopping.is_set():
            bound_at = None
            try:
                self._connect()
                bound_at = time.monotonic()
                self._pump()
                self._goodbye()
            except smpplib.exceptions.PDUError as error:
                self._refused(error)
            except (LinkError, OSError, smpplib.exceptions.ConnectionError) as error:
                log.warning("bind %s lost: %s", self.name_, error)
            except Exception:
                log.exception("bind %s: unexpected error; binding again", self.name_)
            finally:
                self._lose_link("stopped" if self._stopping.is_set() else "connection_lost")
            if bound_at is not None and time.monotonic() - bound_at > STABLE_BIND_SECONDS:
                backoff = 0.5
            self._wait_down(random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, self.account.reconnect_max)
        self._return_all("stopped")
        self._flush()

    def _connect(self) -> None:
        a = self.account
        self._link = open_link(
            host=a.host,
            port=a.port,
            system_id=a.system_id,
            password=a.password.get_secret_value(),
            system_type=a.system_type,
            name=self.name_,
        )
        self._connection += 1
        self._last_rx = time.monotonic()
        self._enquiry_sent = None
        self._set_state("up", f"{a.host}:{a.port} as {a.system_id}")

    def _refused(self, error: smpplib.exceptions.PDUError) -> None:
        status = int(error.args[1]) if len(error.args) > 1 else -1
        if status in BIND_REFUSALS:
            self._set_state("refused", status_name(status))
        else:  # ESME_RALYBND and the like: the SMSC still holds an old session; try again
            log.warning("bind %s: bind answered %s", self.name_, status_name(status))

    def _set_state(self, state: str, detail: str) -> None:
        if state == self.state:
            return
        self.state = state
        log.info("bind %s %s (%s)", self.name_, state, detail)
        self._on_state(self.name_, state, detail)

    def _wait_down(self, seconds: float) -> None:
        """Wait before binding again; what arrives meanwhile goes back to the queue."""
        if self.state == "up":
            self._set_state("down", "link lost")
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            self._return_inbox("link_down")
            self._flush()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stopping.wait(min(remaining, 0.2)):
                return

    def _goodbye(self) -> None:
        """Ask for unbind, waiting briefly: some SMSCs never answer it."""
        link = self._link
        if link is None:
            return
        link.write([link.make("unbind")])
        deadline = time.monotonic() + UNBIND_WAIT_SECONDS
        while (remaining := deadline - time.monotonic()) > 0:
            if not select.select([link.socket], [], [], remaining)[0]:
                return
            if any(getattr(p, "command", None) == "unbind_resp" for p in link.read_available()):
                return

    def _lose_link(self, reason: str) -> None:
        """What was written and never answered is in doubt (or written again, if so set)."""
        resend = self.account.on_connection_loss == OnConnectionLoss.RESEND
        for submission, part_no, _ in self._inflight.values():
            if submission.done:
                continue
            if resend and not self._stopping.is_set():
                self._emit(submission, Outcome.RESENT, part_no=part_no, reason=reason, final=False)
                self._queue_part(submission, part_no)
            else:
                self._settle(submission, Outcome.IN_DOUBT, part_no=part_no, reason=reason)
        self.counters["in_doubt"] += len(self._inflight)
        self._inflight.clear()
        close_link(self._link)
        self._link = None
        if self.state == "up":
            self._set_state("down", reason)
        self._return_unstarted("link_down")
        self._flush()

    # -- the bind's own thread: one link -------------------------------------------------

    def _pump(self) -> None:
        link = self._link
        assert link is not None
        while True:
            now = time.monotonic()
            if self._stopping.is_set() and self._drained(now):
                return
            self._take_inbox()
            self._check_deadlines(now)
            wrote = self._write_some(link, now)
            wait = 0.0 if wrote else self._idle_wait(now)
            if self._flush_at is not None:  # what was heard is not kept waiting for the link
                wait = min(wait, max(0.0, self._flush_at - now))
            if select.select([link.socket], [], [], wait)[0]:
                for pdu in link.read_available():
                    self._handle(link, pdu)
            self._send_acks(link)
            self._keep_alive(link, now)
            if self._flush_due(now):
                self._flush()

    def _flush_due(self, now: float) -> bool:
        """Hand over in groups: a few milliseconds' worth, or a window's, whichever comes first.

        Each hand-over costs a Redis round trip and a wake-up of the worker's loop, whatever
        its size; answers held this briefly only ever wait for the next store (STORE_EVERY).
        """
        if not self._out and not self._receipts_out:
            self._flush_at = None
            return False
        if self._flush_at is None:
            self._flush_at = now + FLUSH_SECONDS
        if now >= self._flush_at or len(self._out) + len(self._receipts_out) >= FLUSH_COUNT:
            self._flush_at = None
            return True
        return False

    def _drained(self, now: float) -> bool:
        """On stop: hand back what was not written, then wait a bounded time for answers."""
        if self._drain_until is None:
            self._drain_until = now + self._drain_timeout
            self._return_unstarted("stopped")
        self._return_inbox("stopped")
        return not self._inflight and not self._ready or now > self._drain_until

    def _take_inbox(self) -> None:
        while True:
            try:
                submission = self._inbox.get_nowait()
            except queue.Empty:
                return
            submission.order = next(self._order)
            self._queue_part(submission, 0)

    def _queue_part(self, submission: Submission, part_no: int) -> None:
        heapq.heappush(self._ready, (submission.priority, submission.order, submission, part_no))

    def _check_deadlines(self, now: float) -> None:
        if self._inflight:
            _, _, sent_at = next(iter(self._inflight.values()))  # the oldest still unanswered
            if now - sent_at > self.account.response_timeout:
                raise LinkError(f"no submit_sm_resp in {self.account.response_timeout:g} s")
        if self._enquiry_sent is not None:
            if now - self._enquiry_sent > self.account.enquire_link_timeout:
                raise LinkError(
                    f"no answer to enquire_link in {self.account.enquire_link_timeout:g} s"
                )

    def _idle_wait(self, now: float) -> float:
        if not self._ready and not self._waiting:
            return IDLE_POLL
        if len(self._inflight) >= self.account.window:
            return IDLE_POLL
        waits = [max(0.0, self._slow_until - now), self._pacer.wait()]
        if not self._ready:
            waits.append(self._waiting[0][0] / 1000 - now)
        return min(IDLE_POLL, max(0.001, *waits))

    def _write_some(self, link: Link, now: float) -> int:
        """Write what the window, the pacing and a throttled SMSC allow, in one burst."""
        while self._waiting and self._waiting[0][0] / 1000 <= now:
            _, _, submission, part_no = heapq.heappop(self._waiting)
            self._queue_part(submission, part_no)
        if now < self._slow_until or not self._ready or self._fenced():
            return 0
        room = self.account.window - len(self._inflight)
        allowed = self._pacer.take(min(room, len(self._ready))) if room > 0 else 0
        picked: list[tuple[Submission, int]] = []
        while len(picked) < allowed and self._ready:
            _, _, submission, part_no = heapq.heappop(self._ready)
            if submission.done or (not submission.started and self._skipped(submission)):
                continue
            picked.append((submission, part_no))
        if not picked:
            return 0
        # What was answered is noted before more is written: so what a death leaves written
        # and unnoted (in doubt) never exceeds the window, however the hand-overs are grouped.
        if self._out:
            self._flush()
        if not self._noted(picked, now):
            return 0
        batch = []
        inflight = self._inflight
        for submission, part_no in picked:
            sequence = link.next_sequence()
            template = self._template(submission.content, part_no)
            batch.append(template.encode(sequence, submission.msisdn.lstrip("+")))
            inflight[sequence] = (submission, part_no, now)
            if not submission.started:  # its first write: the other parts follow it
                submission.started, submission.first_try = True, now
                for later in range(1, len(submission.content.parts)):
                    self._queue_part(submission, later)
        link.write_bytes(batch)
        self.counters["written"] += len(batch)
        return len(batch)

    def _noted(self, picked: list[tuple[Submission, int]], now: float) -> bool:
        """Note in the write-ahead log what is about to be written; if it cannot, write nothing."""
        if self._wire is None:
            return True
        try:
            self._wire.record(
                [submission.message_id for submission, _ in picked],
                (submission.message_id for submission, _, _ in self._inflight.values()),
            )
        except redis.RedisError as error:
            if not self._wire_down:
                log.warning("bind %s: write-ahead log unavailable, holding: %s", self.name_, error)
            self._wire_down = True
            for submission, part_no in picked:
                self._queue_part(submission, part_no)
            self._slow_until = now + 0.5
            return False
        if self._wire_down:
            log.info("bind %s: write-ahead log back", self.name_)
            self._wire_down = False
        return True

    def _skipped(self, submission: Submission) -> bool:
        """Settle a message that must not go out: its campaign was halted or has expired."""
        content = submission.content
        reason = self._halted(content.campaign_id)
        if reason is None and time.time() >= content.expires_at:
            reason = "expired"
        if reason is None:
            return False
        self._settle(submission, Outcome.SKIPPED, reason=reason)
        return True

    def _template(self, content: Content, part_no: int) -> fastpdu.SubmitTemplate:
        """The submit_sm of a campaign's part, encoded once, with only the destination to add."""
        found = self._templates.get(id(content))
        if found is None or found[0] is not content:
            found = self._templates[id(content)] = (content, _templates(content))
            if len(self._templates) > 64:  # campaigns come and go; keep the latest
                del self._templates[next(iter(self._templates))]
        return found[1][part_no]

    # -- the bind's own thread: what the SMSC sends --------------------------------------

    def _handle(self, link: Link, pdu: Any) -> None:
        self._last_rx = time.monotonic()
        self._enquiry_sent = None  # anything heard proves the link alive
        if isinstance(pdu, fastpdu.SubmitSmResp):
            self._answered(pdu.sequence, pdu.status, pdu.message_id)
            return
        if isinstance(pdu, fastpdu.DeliverSm):
            self._delivered(link, pdu)
            return
        if isinstance(pdu, UnknownPdu):
            if not pdu.command_id & 0x80000000:  # never answer a response
                log.warning(
                    "bind %s: vendor command 0x%08X answered with generic_nack",
                    self.name_,
                    pdu.command_id,
                )
                link.reply(pdu.sequence, "generic_nack", ESME_RINVCMDID)
            return
        command = pdu.command
        if command == "submit_sm_resp":
            self._answered(pdu.sequence, int(pdu.status), pdu.message_id)
        elif command == "generic_nack":
            self._answered(pdu.sequence, GENERIC_NACK, None, nack_status=int(pdu.status))
        elif command == "deliver_sm":
            self._delivered(link, pdu)
        elif command == "enquire_link":
            link.reply(pdu.sequence, "enquire_link_resp")
        elif command == "unbind":
            link.reply(pdu.sequence, "unbind_resp")
            raise LinkError("the SMSC unbound")
        elif command == "data_sm":
            link.reply(pdu.sequence, "generic_nack", ESME_RINVCMDID)
        elif not command.endswith("_resp"):
            link.reply(pdu.sequence, "generic_nack", ESME_RINVCMDID)

    def _answered(
        self, sequence: int, status: int, message_id: Any, nack_status: int | None = None
    ) -> None:
        entry = self._inflight.pop(sequence, None)
        if entry is None:
            log.warning("bind %s: answer to unknown sequence %d", self.name_, sequence)
            return
        submission, part_no, sent_at = entry
        self._observe_latency(time.monotonic() - sent_at)
        action = self.answers.action(status)
        recorded = status if nack_status is None else nack_status
        self.counters[f"status:{status_name(status)}"] += 1
        if action == Action.THROTTLE:
            # The SMSC is over its limit: hold the whole bind back, then send the part again.
            # Answers to what was written before the pause began do not lengthen it.
            now = time.monotonic()
            if now >= self._slow_until:
                self._slow_until = now + min(0.05 * 2**self._throttle_streak, 5.0)
                self._throttle_streak += 1
            self.counters["throttled"] += 1
            self._queue_part(submission, part_no)
            return
        self._throttle_streak = 0
        tries = submission.tries[part_no] = submission.tries.get(part_no, 0) + 1
        submission.attempts = max(submission.attempts, tries)
        submission.last_status = recorded
        if submission.done:
            if action == Action.OK:  # a late part of a message already settled
                self._emit(
                    submission,
                    Outcome.ACCEPTED,
                    part_no=part_no,
                    final=False,
                    smsc_message_id=_text(message_id),
                    command_status=ESME_ROK,
                )
            return
        if action == Action.OK:
            submission.accepted += 1
            final = submission.accepted == len(submission.content.parts)
            self._emit(
                submission,
                Outcome.ACCEPTED,
                part_no=part_no,
                final=final,
                smsc_message_id=_text(message_id),
                command_status=ESME_ROK,
            )
            if final:
                self._release(submission)
        elif action == Action.TEMPORARY:
            self._retry(submission, part_no, recorded)
        else:
            self._refuse(submission, part_no, recorded)

    def _retry(self, submission: Submission, part_no: int, status: int) -> None:
        now = time.monotonic()
        if self.answers.gives_up(submission.tries[part_no], submission.first_try, now):
            self._refuse(submission, part_no, status)
            return
        self.counters[f"retry:{status_name(status)}"] += 1
        due = int((now + self.answers.retry_delay(submission.tries[part_no])) * 1000)
        heapq.heappush(self._waiting, (due, submission.order, submission, part_no))

    def _refuse(self, submission: Submission, part_no: int, status: int) -> None:
        log.info(
            "bind %s: submit to %s refused with %s",
            self.name_,
            mask(submission.msisdn),
            status_name(status),
        )
        self._settle(submission, Outcome.FAILED, part_no=part_no, command_status=status)

    def _delivered(self, link: Link, pdu: Any) -> None:
        # A receipt is answered only once it is stored (see acknowledge): if this process dies
        # first, the SMSC delivers it again. Anything else is answered at once.
        receipt = None
        if receipts.is_receipt(int(pdu.esm_class or 0)):
            receipt = receipts.parse(
                receipted_message_id=getattr(pdu, "receipted_message_id", None),
                message_state=getattr(pdu, "message_state", None),
                # Some SMSCs put the receipt's text in message_payload instead.
                text=pdu.short_message or getattr(pdu, "message_payload", None),
                network_error_code=getattr(pdu, "network_error_code", None),
                account=self.account.name,
            )
            if receipt is None:
                log.warning("bind %s: unreadable delivery receipt", self.name_)
        if receipt is None:
            link.reply(pdu.sequence, "deliver_sm_resp")
        else:
            self.counters[f"receipt:{receipt.status or 'intermediate'}"] += 1
            ack = partial(self.acknowledge, self._connection, pdu.sequence)
            self._receipts_out.append((receipt, ack))

    def _send_acks(self, link: Link) -> None:
        acks = []
        while True:
            try:
                connection, sequence = self._acks.get_nowait()
            except queue.Empty:
                break
            if connection == self._connection:
                acks.append(fastpdu.encode_response(fastpdu.DELIVER_SM_RESP, sequence))
        if acks:
            link.write_bytes(acks)

    def _keep_alive(self, link: Link, now: float) -> None:
        quiet = now - self._last_rx
        if self._enquiry_sent is None and quiet > self.account.enquire_link_interval:
            link.write([link.make("enquire_link")])
            self._enquiry_sent = now

    # -- the bind's own thread: settling messages ----------------------------------------

    def _emit(self, submission: Submission, outcome: Outcome, **fields: Any) -> None:
        fields.setdefault("attempts", submission.attempts)
        fields.setdefault("command_status", submission.last_status)
        answer = Answer(submission.message_id, outcome, account=self.account.name, **fields)
        self._out.append(answer)
        if submission.started and not submission.done:
            submission.trail.append(answer)
            self._heard[submission.message_id] = submission

    def _settle(self, submission: Submission, outcome: Outcome, **fields: Any) -> None:
        """The message's last answer: it leaves this bind."""
        if submission.done:
            return
        self._emit(submission, outcome, **fields)
        self._release(submission)

    def _release(self, submission: Submission) -> None:
        submission.done = True
        self._released += 1
        if submission.content.urgent:
            self._released_urgent += 1

    def _return_inbox(self, reason: str) -> None:
        while True:
            try:
                submission = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._settle(submission, Outcome.RETURNED, reason=reason)

    def _return_unstarted(self, reason: str) -> None:
        """Hand back every message of which nothing was written; keep those begun."""
        for heap in (self._ready, self._waiting):
            kept = []
            for item in heap:
                submission = item[2]
                if submission.done:
                    continue
                if submission.started:
                    kept.append(item)
                else:
                    self._settle(submission, Outcome.RETURNED, reason=reason)
            heap[:] = kept
            heapq.heapify(heap)

    def _return_all(self, reason: str) -> None:
        """The thread ends: nothing stays in its hands."""
        self._return_inbox(reason)
        self._return_unstarted(reason)
        for heap in (self._ready, self._waiting):
            for _, _, submission, part_no in heap:
                self._settle(submission, Outcome.IN_DOUBT, part_no=part_no, reason=reason)
            heap.clear()

    def _flush(self) -> None:
        """Hand what was heard to be stored, noting it in the write-ahead log first.

        Noted first, so that a worker killed before storing it leaves in doubt only what was
        written and never answered: its windows, not the answers waiting to be stored.
        Receipts follow the answers, so that a receipt is never stored before the answer that
        gave its message's SMSC id.
        """
        if not self._out:
            self._hand_receipts()
            return
        if self._heard and self._wire is not None and not self._wire_down:
            try:
                self._wire.heard({mid: s.trail for mid, s in self._heard.items()})
            except redis.RedisError as error:
                log.warning(
                    "bind %s: answers not noted in the write-ahead log: %s", self.name_, error
                )
        self._heard.clear()
        answers, self._out = self._out, []
        self._on_answers(answers)
        self._hand_receipts()

    def _hand_receipts(self) -> None:
        if self._receipts_out:
            handed, self._receipts_out = self._receipts_out, []
            for receipt, ack in handed:
                self._on_receipt(receipt, ack)


def _templates(content: Content) -> list[fastpdu.SubmitTemplate]:
    return [
        fastpdu.SubmitTemplate(
            source_addr_ton=content.source_addr_ton,
            source_addr_npi=content.source_addr_npi,
            source_addr=content.source_addr,
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            esm_class=part.esm_class,
            data_coding=part.data_coding,
            validity_period=content.validity_period or None,
            registered_delivery=1,
            short_message=part.short_message,
        )
        for part in content.parts
    ]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").rstrip("\x00")
    return str(value)
