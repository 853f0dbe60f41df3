"""A worker process: holds SMSC sessions, feeds its binds, stores what they learn, keeps house.

Everything that talks to Redis or the database retries on its own, so the process outlives a
Redis or PostgreSQL restart. SIGTERM stops it cleanly: no new claims, a bounded wait for the
answers still due, what was not written handed back to the queue, then unbind.
"""

import asyncio
import gc
import logging
import queue
import random
import signal
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import redis
from arq import Worker, func
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool
from sqlalchemy import Engine

from campaigns import audit
from dispatcher import queue as jobs
from dispatcher.db import session_scope
from dispatcher.sending import claims, metrics, wirelog, workers
from dispatcher.sending.accounts import LeaderLock, Pacer, SessionSlots, SharedRate, rate_key
from dispatcher.sending.bind import Ack, BindSession
from dispatcher.sending.feeder import Feeder, Sending
from dispatcher.sending.halts import HaltBoard
from dispatcher.sending.housekeeping import Housekeeper, lead
from dispatcher.sending.jobs import expand_campaign
from dispatcher.sending.matching import ReceiptMatcher
from dispatcher.sending.receipts import Receipt
from dispatcher.sending.smsc_ids import AccountIds
from dispatcher.sending.submissions import Answer, Outcome
from dispatcher.settings import AccountSettings, ReceiptsPer, Settings
from dispatcher.watching.exposition import serve_worker_metrics
from dispatcher.watching.publisher import Publisher

log = logging.getLogger("dispatcher.worker")

SESSION_TTL = 6.0  # a dead worker's SMSC sessions are free again this soon
SESSION_RENEW = 2.0
# A bind that asks for its next slots a little late may still use the 10 ms it missed: a burst
# of rate/100 at most, a tenth of what an SMSC allowing a burst of rate/10 tolerates.
RATE_TOLERANCE = 0.01
PENDING_RETRY = 0.5  # receipts stored unmatched are tried again this often while answers come
PENDING_RETRY_IDLE = 5.0  # … and this often otherwise (an account's id formats may be learnt)
STORE_EVERY = 0.1  # what binds heard is stored in groups this often: fewer, larger transactions
_T = TypeVar("_T")
# Outcomes after which a message has left its bind, so its write-ahead note can go.
_LEFT = {o for o in Outcome if o not in (Outcome.RESENT,)}


# (bind, answers, receipts with their acks): what a bind handed over, in order.
Heard = tuple[str, list[Answer], list[tuple[Receipt, Ack]]]


def _drain(source: "queue.SimpleQueue[_T]") -> list[_T]:
    drained = []
    while True:
        try:
            drained.append(source.get_nowait())
        except queue.Empty:
            return drained


class Session:
    """One bind this worker holds, with the feeder that keeps it busy."""

    def __init__(self, slot: int, bind: BindSession, feeder: Feeder, wire: wirelog.WireLog):
        self.slot, self.bind, self.feeder, self.wire = slot, bind, feeder, wire
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class WorkerProcess:
    """Everything one worker process runs; `run` returns its exit code."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.namespace = settings.queue_name
        self.stopping = asyncio.Event()
        self.exit_code = 0
        self.worker_id = 0
        self.halts = HaltBoard()
        self.sending = Sending(engine)
        self.sessions: dict[str, Session] = {}
        # Claims and stores take turns on one thread: within a worker they queue here instead
        # of waiting on SQLite's write lock, whose busy handler sleeps up to 25 ms per try.
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-writer")
        # What binds heard, in the order they heard it: answers, and receipts after the answers
        # that gave their SMSC ids, so that one transaction stores both in that order.
        self._heard: queue.SimpleQueue[Heard] = queue.SimpleQueue()
        self._poked = False  # the store loop has been woken and has not drained yet
        self._states: queue.SimpleQueue[tuple[str, str, str]] = queue.SimpleQueue()
        self._answered = asyncio.Event()
        self._unstored: list[tuple[str, list[Answer]]] = []
        self._unstored_receipts: list[tuple[Receipt, Ack]] = []
        self._matcher = ReceiptMatcher(
            engine,
            accounts={a.name: AccountIds(a.submit_ids, a.receipt_ids) for a in settings.binds},
            per_message={a.name for a in settings.binds if a.receipts_per == ReceiptsPer.MESSAGE},
        )
        self._answers_stored = False  # since unmatched receipts were last tried again
        self._last_beat = time.monotonic()
        url = jobs.redis_url(settings)
        timeouts = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
        self.redis = redis.Redis.from_url(url, **timeouts)
        self.pool = ArqRedis(
            ConnectionPool.from_url(url, **timeouts), default_queue_name=settings.queue_name
        )
        self.keeper = Housekeeper(engine, settings, self.redis)
        self.publisher = Publisher(
            redis=self.pool,
            namespace=self.namespace,
            binds=lambda: [session.bind for session in self.sessions.values()],
            matcher=self._matcher,
            worker_id=lambda: self.worker_id,
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the process ---------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM or SIGINT; then stop cleanly."""
        self._loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(signum, self.stopping.set)
        self.worker_id = await self._retry("register", lambda: workers.register(self.engine))
        log.info("worker %d started", self.worker_id)
        if self.settings.metrics_enabled and self.settings.metrics_port:
            serve_worker_metrics(self.settings)
        try:
            wirelog.start(self.redis, self.namespace, self.worker_id)
        except redis.RedisError:
            log.warning("Redis is away at start; carrying on")
        background = [
            self.halts.follow(self.pool, self.namespace),
            self.sending.follow(),
            self._heartbeat(),
            self._retry_pending(),
            self._audit_states(),
            self._run_queue(),
            lead(
                self.keeper,
                LeaderLock(self.pool, f"{self.namespace}:leader"),
                str(self.worker_id),
                self.pool,
            ),
        ]
        if self.settings.metrics_enabled:
            background.append(self.publisher.run())
        loops = [asyncio.create_task(self._guard(c)) for c in background]
        writer = asyncio.create_task(self._guard(self._store_heard()))
        holders = [
            asyncio.create_task(self._guard(self._hold_sessions(a))) for a in self.settings.binds
        ]
        await self.stopping.wait()
        log.info("worker %d stopping", self.worker_id)
        await asyncio.gather(*holders, return_exceptions=True)  # binds drained and closed
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await self._flush_heard(attempts=8)
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await self._retry("mark stopped", lambda: workers.stopped(self.engine, self.worker_id), 5)
        await self.pool.aclose()
        self.redis.close()
        log.info("worker %d stopped", self.worker_id)
        return self.exit_code

    async def _guard(self, work: Coroutine[Any, Any, None]) -> None:
        """Run one of the process's loops; a bug in one stops the process loudly, not silently."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker loop failed; stopping")
            self.exit_code = 1
            self.stopping.set()

    async def _retry(self, what: str, call: Callable[[], _T], attempts: int | None = None) -> _T:
        """Call on a thread until it works (the database may be restarting)."""
        delay, tries = 0.5, 0
        while True:
            try:
                return await asyncio.to_thread(call)
            except Exception as error:
                tries += 1
                if attempts is not None and tries >= attempts:
                    raise
                log.warning("%s failed (%s); trying again", what, type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            try:
                alive = await asyncio.to_thread(workers.beat, self.engine, self.worker_id)
            except Exception as error:
                log.warning("heartbeat failed: %s", type(error).__name__)
                self.keeper.beats_ok_since = time.monotonic()
                continue
            if not alive:
                # Declared dead while cut off: its messages were recovered by another worker,
                # so this one must not send them. Stop, and let the supervisor start anew.
                log.error("worker %d was declared dead; stopping", self.worker_id)
                self.exit_code = 1
                self.stopping.set()
                return
            self._last_beat = time.monotonic()

    def fenced(self) -> bool:
        """No writing while the heartbeat has not gone through for half the dead-after time."""
        return time.monotonic() - self._last_beat > self.settings.worker_dead_after / 2

    async def _run_queue(self) -> None:
        """The arq worker for expansion jobs, started again whenever Redis drops it."""
        backoff = 0.5
        while True:
            worker = Worker(
                functions=[func(expand_campaign, keep_result=0)],
                redis_settings=jobs.redis_settings(self.settings),
                queue_name=self.namespace,
                handle_signals=False,
                ctx={"settings": self.settings, "engine": self.engine},
                poll_delay=0.1,
                max_jobs=2,
                job_timeout=self.settings.job_timeout,
                keep_result=0,
            )
            started = time.monotonic()
            try:
                await worker.main()
            except Exception as error:
                log.warning("job queue lost (%s); connecting again", type(error).__name__)
            finally:
                try:
                    await worker.close()
                except Exception:
                    pass
            if time.monotonic() - started > 30:
                backoff = 0.5
            await asyncio.sleep(random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, 30.0)

    # -- sessions ------------------------------------------------------------------------

    async def _hold_sessions(self, account: AccountSettings) -> None:
        """Hold up to `sessions_per_worker` of the account's slots while alive; give them back."""
        slots = SessionSlots(
            self.pool, self.namespace, account.name, account.max_sessions, ttl=SESSION_TTL
        )
        held: dict[int, Session] = {}
        warned = False
        while not self.stopping.is_set():
            try:
                for k in range(account.sessions_per_worker):
                    owner = f"{self.worker_id}:{k}"
                    if k in held:
                        if not await slots.renew(held[k].slot, owner):
                            log.warning("session slot of %s lost to another worker", account.name)
                            await self._retire(held.pop(k))
                    elif (slot := await slots.acquire(owner)) is not None:
                        held[k] = self._open(account, slot)
                warned = False
            except redis.RedisError as error:
                if not warned:
                    log.warning("cannot renew SMSC sessions (%s); keeping them", error)
                warned = True
            try:
                await asyncio.wait_for(self.stopping.wait(), SESSION_RENEW)
            except TimeoutError:
                pass
        for k, session in held.items():
            await self._retire(session)
            try:
                await slots.release(session.slot, f"{self.worker_id}:{k}")
            except redis.RedisError:
                pass

    def _open(self, account: AccountSettings, slot: int) -> Session:
        name = f"{account.name}#{slot}"
        rate = (
            SharedRate(
                self.redis,
                rate_key(self.namespace, account.name),
                account.rate,
                tolerance=RATE_TOLERANCE,
            )
            if account.rate > 0
            else None
        )
        wire = wirelog.WireLog(self.redis, self.namespace, self.worker_id, name)
        bind = BindSession(
            account,
            name=name,
            pacer=Pacer(rate),
            wire=wire,
            on_answers=lambda answers: self._on_answers(name, answers),
            on_receipt=lambda receipt, ack: self._on_receipt(name, receipt, ack),
            on_state=lambda bind_name, state, detail: self._states.put((bind_name, state, detail)),
            halted=self.halts.reason,
            fenced=self.fenced,
            drain_timeout=self.settings.drain_timeout,
        )
        feeder = Feeder(
            bind,
            self.sending,
            engine=self.engine,
            worker_id=self.worker_id,
            settings=self.settings,
            writer=self.writer,
        )
        session = Session(slot, bind, feeder, wire)
        self.sessions[name] = session
        bind.start()
        session.task = asyncio.create_task(feeder.run(session.stop))
        log.info("holding session %s", name)
        return session

    async def _retire(self, session: Session) -> None:
        session.stop.set()
        if session.task is not None:
            await asyncio.gather(session.task, return_exceptions=True)
        await asyncio.to_thread(session.bind.stop)
        await self._flush_heard()
        self.sessions.pop(session.bind.name_, None)

    def _on_answers(self, bind_name: str, answers: list[Answer]) -> None:
        """From a bind's thread: answers to store, and room for its feeder."""
        self._heard.put((bind_name, answers, []))
        self._poke()
        session = self.sessions.get(bind_name)
        if self._loop is not None and session is not None:
            self._loop.call_soon_threadsafe(session.feeder.wake.set)

    def _on_receipt(self, bind_name: str, receipt: Receipt, ack: Ack) -> None:
        """From a bind's thread: a receipt to store (after the answers handed over before it)."""
        self._heard.put((bind_name, [], [(receipt, ack)]))
        self._poke()

    def _poke(self) -> None:
        """Wake the store loop; once per round is enough."""
        if self._loop is not None and not self._poked:
            self._poked = True
            self._loop.call_soon_threadsafe(self._answered.set)

    # -- storing what binds learn --------------------------------------------------------

    async def _store_heard(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._answered.wait(), 1.0)
            except TimeoutError:
                pass
            self._answered.clear()
            await self._flush_heard()
            await asyncio.sleep(STORE_EVERY)

    async def _flush_heard(self, attempts: int | None = None) -> None:
        """Store everything binds heard, then acknowledge the receipts among it.

        If the database is away, keep it all and try again; nothing is acknowledged before
        its transaction has committed.
        """
        delay, tries = 0.5, 0
        while True:
            self._poked = False
            for bind_name, answers, receipts in _drain(self._heard):
                if answers:
                    self._unstored.append((bind_name, answers))
                self._unstored_receipts += receipts
            if not self._unstored and not self._unstored_receipts:
                return
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self.writer, self._store, self._unstored, self._unstored_receipts
                )
            except Exception as error:
                log.warning("storing answers failed (%s); trying again", type(error).__name__)
                tries += 1
                if attempts is not None and tries >= attempts:
                    log.error(
                        "%d answers and %d receipts could not be stored",
                        sum(len(answers) for _, answers in self._unstored),
                        len(self._unstored_receipts),
                    )
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            acks = [ack for _, ack in self._unstored_receipts]
            self._unstored, self._unstored_receipts = [], []
            for ack in acks:
                ack()
            return

    def _store(
        self, pending: list[tuple[str, list[Answer]]], receipts: list[tuple[Receipt, Ack]]
    ) -> None:
        """Answers, then the receipts heard after them, in one transaction."""
        stored = [a for _, answers in pending for a in answers]
        for answer in stored:
            if answer.outcome == Outcome.ACCEPTED and answer.smsc_message_id:
                self._matcher.saw_submit_id(answer.account, answer.smsc_message_id)
        heard = [receipt for receipt, _ in receipts]
        self._matcher.learn(heard)
        with self.engine.begin() as connection:
            claims.apply_answers(connection, self.worker_id, stored)
            outcome = self._matcher.store(connection, heard)
        self._matcher.stored(outcome)
        if stored:
            self._answers_stored = True
        for bind_name, answers in pending:
            session = self.sessions.get(bind_name)
            left = [a.message_id for a in answers if a.outcome in _LEFT and a.final]
            if session is not None and left:
                try:
                    session.wire.forget(left)
                except redis.RedisError:
                    pass  # a stale note only matters for messages still `submitting`

    async def _retry_pending(self) -> None:
        """Match stored unmatched receipts again: soon after new answers while some wait, else
        now and then (an account's id formats may have been learnt meanwhile)."""
        last_retry = time.monotonic()
        while True:
            await asyncio.sleep(PENDING_RETRY)
            since = time.monotonic() - last_retry
            waiting = (self._matcher.waiting or self._matcher.held) and self._answers_stored
            if since >= PENDING_RETRY_IDLE or (waiting and since >= PENDING_RETRY):
                self._answers_stored = False
                last_retry = time.monotonic()
                try:
                    await asyncio.to_thread(self._matcher.retry_pending)
                except Exception as error:
                    log.warning("matching stored receipts failed (%s)", type(error).__name__)

    async def _audit_states(self) -> None:
        """Bind up, down and refused, in the audit log, once per change."""
        pending: list[tuple[str, str, str]] = []
        while True:
            await asyncio.sleep(0.5)
            pending += _drain(self._states)
            if not pending:
                continue
            try:
                await asyncio.to_thread(self._audit, pending)
                pending = []
            except Exception as error:
                log.warning("audit of bind states failed (%s)", type(error).__name__)

    def _audit(self, events: list[tuple[str, str, str]]) -> None:
        with session_scope(self.engine) as session:
            for name, state, detail in events:
                audit.record(
                    session=session,
                    actor="system",
                    action=f"smpp.bind_{state}",
                    subject=f"bind:{name}",
                    details={"detail": detail, "worker": self.worker_id},
                )


def run_worker(settings: Settings, engine: Engine) -> int:
    """Run a worker process until it is told to stop; its exit code."""
    metrics.enable(settings.metrics_enabled)
    # What is loaded by now (the libraries, the settings, the engine) lives as long as the
    # process: out of the cyclic collector's way, its passes walk only what sending creates.
    # `dispatcher bench`: 5–20 % less worker CPU per message.
    gc.freeze()
    return asyncio.run(WorkerProcess(settings, engine).run())
