"""Fault injection: one campaign per fault, checked against what the SMSC says it accepted.

Each trial starts a stack of its own (the simulator as a child process with `--record`, the
API, N worker processes), seeds the demo's authority and subscribers, runs a campaign through
the HTTP API, injects one fault once the SMSC has accepted about a third of the messages, waits
for the campaign to complete and then compares the database with the simulator's record:

- sent twice: destinations the SMSC accepted more than once that are not marked in doubt;
- lost: messages the SMSC never accepted that are not in doubt and were not refused (`failed`);
- in doubt: messages with a `doubt`, which the dispatcher owns up to.

The faults are plain functions of a `Trial` so that `dispatcher chaos` and tests/test_faults.py
inject them with one code.
"""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from rich.console import Console
from rich.table import Table
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, col

from campaigns import audit
from campaigns.models import Message, MessageStatus, Worker
from dispatcher import demo as flow
from dispatcher import embedded_redis
from dispatcher.db import make_engine
from dispatcher.sending import wirelog
from dispatcher.smsc.simulator import read_record
from dispatcher.stack import Stack, StackConfig, wait_until


@dataclass(frozen=True)
class ChaosSettings:
    """How each trial's campaign runs."""

    messages: int = 20_000
    workers: int = 2
    rate: float = 1000.0  # submits/s of the account, all binds together
    window: int = 100
    receipt_timeout: float = 30.0
    smsc_latency: float = 0.02  # seconds the simulator takes to answer a submit_sm
    receipt_delay: float = 0.5  # seconds from its answer to the delivery receipt
    fault_at: float = 1 / 3  # fraction of the messages the SMSC accepted before the fault
    timeout: float = 600.0  # seconds from the fault to completion before giving up
    redis_outage: float = 2.0  # seconds the restarted Redis stays away
    queue_name: str = "dispatcher"
    environment: dict[str, str] = field(default_factory=dict)  # more DISPATCHER_* settings

    def describe(self) -> str:
        """The settings as one line."""
        return (
            f"{self.messages:,} messages per campaign, {self.workers} workers (one bind each), "
            f"rate {self.rate:g}/s, window {self.window}, receipt timeout "
            f"{self.receipt_timeout:g} s, SMSC latency {self.smsc_latency:g} s and receipts "
            f"after {self.receipt_delay:g} s, fault after {self.fault_at:.0%} accepted, "
            f"Redis outage {self.redis_outage:g} s"
            + "".join(f", {key}={value}" for key, value in sorted(self.environment.items()))
        )


@dataclass
class DeadWorker:
    """What a killed worker held when it died."""

    worker_id: int
    held: dict[int, str]  # message id -> msisdn, `submitting` and claimed by it
    noted: set[int] | None  # its write-ahead log: what it may have written (None: lost)

    @property
    def never_written(self) -> dict[int, str]:
        """Held and not in its write-ahead log: never reached the SMSC, to be sent by another."""
        noted = self.noted or set()
        return {mid: msisdn for mid, msisdn in self.held.items() if mid not in noted}


@dataclass
class Trial:
    """One campaign under one fault, while it runs."""

    stack: Stack
    api: httpx.Client
    seeded: flow.Seeded
    campaign_id: int
    record: Path
    settings: ChaosSettings
    fault_time: float = 0.0  # time.monotonic() when the fault was injected
    notes: list[str] = field(default_factory=list)
    milestones: dict[str, Callable[[], bool]] = field(default_factory=dict)
    reached: dict[str, float] = field(default_factory=dict)  # milestone -> seconds after fault
    dead: DeadWorker | None = None
    stopped_exit_code: int | None = None
    watched_pids: dict[str, int] = field(default_factory=dict)  # must outlive the fault
    api_statuses: Counter[str] = field(default_factory=Counter)  # during an outage
    accepted_before: Counter[str] | None = None  # what a killed SMSC had accepted
    accepted_while_away: int | None = None  # submits the SMSC accepted during an outage

    @property
    def database_url(self) -> str:
        """The trial's database."""
        return self.stack.settings.effective_database_url

    def accepted(self) -> Counter[str]:
        """Destination (E.164 without +) -> messages the SMSC accepted, across restarts."""
        return read_record(self.record)

    def note(self, line: str) -> None:
        """Something the fault observed, shown in the table."""
        self.notes.append(line)


@dataclass(frozen=True)
class Fault:
    """A fault: its name on the command line, its title in the table, how to inject it."""

    name: str
    title: str
    inject: Callable[[Trial], None]
    needs_postgres: bool = False
    owns_redis: bool = False  # restarts Redis: only ever the stack's own embedded one


# -- the faults --------------------------------------------------------------------------


def _worker_id(trial: Trial, pid: int) -> int:
    engine = make_engine(trial.database_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                select(col(Worker.id))
                .where(
                    col(Worker.name) == f"{socket.gethostname()}:{pid}",
                    col(Worker.stopped_at).is_(None),
                )
                .order_by(col(Worker.id).desc())
            ).first()
    finally:
        engine.dispose()
    if found is None or found[0] is None:
        raise RuntimeError(f"no registered worker with pid {pid}")
    return found[0]


def _held_by(trial: Trial, worker_id: int) -> dict[int, str]:
    engine = make_engine(trial.database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(col(Message.id), col(Message.msisdn)).where(
                    col(Message.claimed_by) == worker_id,
                    col(Message.status) == MessageStatus.SUBMITTING,
                )
            ).all()
    finally:
        engine.dispose()
    return {mid: msisdn for mid, msisdn in rows if mid is not None}


def _replace_worker(trial: Trial, name: str) -> None:
    """Start a new worker in the place of one that ended, as a supervisor would."""
    trial.stack.spawn(name, ["worker"])


def kill_worker(trial: Trial) -> None:
    """kill -9 of the first worker, then a replacement; its never-written messages go once."""
    stack = trial.stack
    process = stack.processes["worker"]
    worker_id = _worker_id(trial, process.pid)
    trial.fault_time = time.monotonic()
    process.kill()
    process.wait()
    held = _held_by(trial, worker_id)
    client = redis.Redis.from_url(stack.redis_url, socket_timeout=5)
    try:
        noted = wirelog.written(client, stack.config.queue_name, worker_id)
    finally:
        client.close()
    dead = trial.dead = DeadWorker(worker_id, held, noted)
    _replace_worker(trial, "worker")
    never_written = dead.never_written
    trial.note(
        f"worker {worker_id} held {len(held)} ({len(held) - len(never_written)} maybe written)"
    )

    def sent_again() -> bool:
        accepted = trial.accepted()
        return all(accepted[msisdn.lstrip("+")] for msisdn in never_written.values())

    trial.milestones["its unwritten messages sent"] = sent_again


def stop_worker(trial: Trial) -> None:
    """SIGTERM to the first worker; once it has stopped, a replacement."""
    process = trial.stack.processes["worker"]
    trial.fault_time = time.monotonic()
    process.send_signal(signal.SIGTERM)
    drain = float(trial.stack.environment().get("DISPATCHER_DRAIN_TIMEOUT", "10"))
    try:
        trial.stopped_exit_code = process.wait(drain + 30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        trial.note("did not stop: killed")
    stopped_after = time.monotonic() - trial.fault_time
    trial.note(f"stopped in {stopped_after:.1f} s, exit {trial.stopped_exit_code}")
    _replace_worker(trial, "worker")


def drop_connections(trial: Trial) -> None:
    """SIGUSR1 to the simulator: every SMPP connection dropped, nothing in flight answered."""
    trial.fault_time = time.monotonic()
    trial.stack.processes["smsc-sim"].send_signal(signal.SIGUSR1)


def simulator_command(stack: Stack) -> list[str]:
    """The `dispatcher` arguments the stack started its simulator with."""
    config = stack.config
    return [
        "smsc-sim",
        "--port",
        str(stack.smsc_port),
        "--system-id",
        config.system_id,
        "--password",
        config.password,
        *config.simulator_args,
    ]


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def restart_smsc(trial: Trial) -> None:
    """kill -9 of the simulator, started again on the same port with the same record."""
    stack = trial.stack
    process = stack.processes["smsc-sim"]
    trial.fault_time = time.monotonic()
    process.kill()
    process.wait()
    trial.accepted_before = trial.accepted()
    stack.spawn("smsc-sim", simulator_command(stack))
    wait_until(lambda: _accepts(stack.smsc_host, stack.smsc_port), 20, "restarted simulator")
    trial.note(f"listening again after {time.monotonic() - trial.fault_time:.1f} s")


def _watch_workers(trial: Trial) -> None:
    trial.watched_pids = {
        name: trial.stack.processes[name].pid for name in trial.stack.worker_names
    }


def restart_redis(trial: Trial) -> None:
    """The stack's embedded Redis stopped and started again, empty, on the same socket."""
    stack = trial.stack
    if stack.config.redis_url is not None:
        raise RuntimeError("refusing to restart a Redis the stack does not own")
    var_dir = stack.config.var_dir
    _watch_workers(trial)
    trial.fault_time = time.monotonic()
    embedded_redis.stop(var_dir)
    wait_until(lambda: not embedded_redis.is_running(var_dir), 10, "Redis stopped")
    at_stop = _accepted_so_far(trial)
    time.sleep(trial.settings.redis_outage)  # the outage itself
    trial.accepted_while_away = _accepted_so_far(trial) - at_stop
    embedded_redis.ensure_running(var_dir)
    trial.note(
        f"Redis away {time.monotonic() - trial.fault_time:.1f} s, "
        f"{trial.accepted_while_away} accepted meanwhile"
    )


def is_postgres(database_url: str) -> bool:
    """Whether the URL names a PostgreSQL database."""
    return make_url(database_url).get_backend_name() == "postgresql"


def restart_postgres(trial: Trial) -> None:
    """pg_ctlcluster restart of this machine's cluster; the API is watched meanwhile."""
    url = make_url(trial.database_url)
    if url.host not in (None, "", "127.0.0.1", "localhost", "::1"):
        raise RuntimeError(f"refusing to restart PostgreSQL on {url.host}: not this machine")
    versions = sorted(os.listdir("/etc/postgresql"))
    if len(versions) != 1:
        raise RuntimeError(f"expected one PostgreSQL version in /etc/postgresql, not {versions}")
    _watch_workers(trial)
    restarted, done = threading.Event(), threading.Event()
    watcher = threading.Thread(target=_watch_api, args=(trial, restarted, done), daemon=True)
    watcher.start()
    trial.fault_time = time.monotonic()
    try:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main", "restart"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        took = time.monotonic() - trial.fault_time
        restarted.set()
        # Until the API answers from the database again: what a caller saw meanwhile.
        wait_until(lambda: trial.api_statuses[AFTER] > 0, 60, "the API after the restart")
    finally:
        done.set()
        watcher.join()
    seen = ", ".join(f"{k}×{v}" for k, v in sorted(trial.api_statuses.items()) if k != AFTER)
    trial.note(f"restarted in {took:.1f} s; API answered {seen}")


AFTER = "200 after the restart"


def _watch_api(trial: Trial, restarted: threading.Event, done: threading.Event) -> None:
    """Ask the API for the report every 20 ms until it answers after the restart."""
    headers = {"Authorization": f"Bearer {trial.seeded.approver_token}"}
    path = f"/v1/campaigns/{trial.campaign_id}/report"
    with httpx.Client(base_url=trial.stack.api_url, timeout=10) as client:
        while not done.is_set():
            ended = restarted.is_set()
            try:
                status = str(client.get(path, headers=headers).status_code)
            except httpx.HTTPError as error:
                status = type(error).__name__
            trial.api_statuses[AFTER if ended and status == "200" else status] += 1
            done.wait(0.02)


FAULTS: tuple[Fault, ...] = (
    Fault("worker-kill", "worker kill -9", kill_worker),
    Fault("worker-term", "worker SIGTERM", stop_worker),
    Fault("smsc-drop", "SMSC link dropped", drop_connections),
    Fault("smsc-restart", "SMSC restarted", restart_smsc),
    Fault("redis-restart", "Redis restarted empty", restart_redis, owns_redis=True),
    Fault("postgres-restart", "PostgreSQL restarted", restart_postgres, needs_postgres=True),
)
BY_NAME = {fault.name: fault for fault in FAULTS}


# -- what happened -----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One message of the campaign at the end."""

    msisdn: str
    status: str
    doubt: str | None
    claimed_by: int | None


@dataclass(frozen=True)
class Evidence:
    """The database against the SMSC's record."""

    rows: dict[int, Row]
    accepted: Counter[str]  # destination -> accepted by the SMSC
    audit_problem: str | None = None  # the audit chain's first break, if any

    def times_accepted(self, message_id: int) -> int:
        """How many times the SMSC accepted that message's destination."""
        return self.accepted[self.rows[message_id].msisdn.lstrip("+")]

    @property
    def sent_twice(self) -> list[int]:
        """Messages whose destination the SMSC accepted more than once, not in doubt."""
        return [m for m, r in self.rows.items() if r.doubt is None and self.times_accepted(m) > 1]

    @property
    def lost(self) -> list[int]:
        """Messages never accepted, not in doubt and not refused by the SMSC."""
        return [
            m
            for m, r in self.rows.items()
            if r.doubt is None and r.status != MessageStatus.FAILED and not self.times_accepted(m)
        ]

    @property
    def in_doubt(self) -> list[int]:
        """Messages with a doubt."""
        return [m for m, r in self.rows.items() if r.doubt is not None]

    @property
    def no_receipt(self) -> list[int]:
        """Accepted, not in doubt, and `unknown`: no receipt was stored before the timeout."""
        return [
            m
            for m, r in self.rows.items()
            if r.doubt is None and r.status == MessageStatus.UNKNOWN and self.times_accepted(m)
        ]

    @property
    def doubts(self) -> Counter[str]:
        """In-doubt messages by reason."""
        return Counter(r.doubt for r in self.rows.values() if r.doubt is not None)

    def in_doubt_by_worker(self) -> Counter[int | None]:
        """In-doubt messages by the worker that held them (one bind per worker)."""
        return Counter(r.claimed_by for r in self.rows.values() if r.doubt is not None)

    @property
    def by_status(self) -> dict[str, int]:
        """Messages by status, from the database."""
        return dict(Counter(r.status for r in self.rows.values()))

    @property
    def strangers(self) -> int:
        """Destinations the SMSC accepted that are no message of the campaign."""
        ours = {r.msisdn.lstrip("+") for r in self.rows.values()}
        return sum(1 for destination in self.accepted if destination not in ours)


def examine(database_url: str, campaign_id: int, record: Path) -> Evidence:
    """Every message of the campaign, and what the SMSC recorded."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                select(
                    col(Message.id),
                    col(Message.msisdn),
                    col(Message.status),
                    col(Message.doubt),
                    col(Message.claimed_by),
                ).where(col(Message.campaign_id) == campaign_id)
            ).all()
        with Session(engine) as session:
            verification = audit.verify(session=session)
    finally:
        engine.dispose()
    rows = {
        mid: Row(msisdn, str(status), doubt, claimed_by)
        for mid, msisdn, status, doubt, claimed_by in found
        if mid is not None
    }
    return Evidence(rows, read_record(record), verification.problem)


@dataclass
class Result:
    """One row of the table."""

    fault: Fault
    skipped: str | None = None
    error: str | None = None
    report: dict[str, Any] | None = None
    seconds: float | None = None  # from the fault to the campaign completed
    evidence: Evidence | None = None
    trial: Trial | None = None

    @property
    def ok(self) -> bool:
        """Completed with nothing sent twice and nothing lost (or skipped)."""
        if self.skipped:
            return True
        if self.error or self.evidence is None or self.report is None:
            return False
        return (
            self.report["status"] == "completed"
            and not self.evidence.sent_twice
            and not self.evidence.lost
            and self.evidence.audit_problem is None
        )


# -- running trials ----------------------------------------------------------------------


def _time_milestones(trial: Trial) -> None:
    for name, check in trial.milestones.items():
        if name not in trial.reached and check():
            trial.reached[name] = time.monotonic() - trial.fault_time


def _await_completion(trial: Trial) -> dict[str, Any]:
    """Poll the report until the campaign is final; milestones are timed on the way."""
    settings = trial.settings
    stall = settings.receipt_timeout + 60
    last_seen: tuple[int, int] = (-1, -1)
    last_change = time.monotonic()
    body: dict[str, Any] | None = None
    while True:
        now = time.monotonic()
        trial.stack.check_alive()
        _time_milestones(trial)
        try:
            body = flow.report(trial.api, trial.seeded.approver_token, trial.campaign_id)
        except httpx.HTTPError:
            body = None  # the API may be without its database for a moment
        if body is not None:
            if body["status"] in flow.FINAL_CAMPAIGN_STATUSES:
                _time_milestones(trial)
                return body
            counts: dict[str, int] = body["by_status"]
            done = sum(counts.values()) - sum(counts.get(s, 0) for s in flow.PENDING)
            seen = (sum(trial.accepted().values()), done)
            if seen != last_seen:
                last_seen, last_change = seen, now
        if now - trial.fault_time > settings.timeout:
            raise TimeoutError(f"not completed {settings.timeout:.0f} s after the fault")
        if now - last_change > stall:
            raise TimeoutError(
                f"stuck: no progress for {stall:.0f} s ({last_seen[0]} accepted, "
                f"{last_seen[1]} final)"
            )
        time.sleep(0.25)


def _stack_config(
    var_dir: Path, database_url: str | None, redis_url: str | None, settings: ChaosSettings
) -> StackConfig:
    return StackConfig(
        var_dir=var_dir,
        database_url=database_url,
        redis_url=redis_url,
        simulator_args=[
            "--record",
            str((var_dir / "smsc-record.tsv").resolve()),
            "--latency",
            str(settings.smsc_latency),
            "--receipt-delay",
            str(settings.receipt_delay),
        ],
        rate=settings.rate,
        window=settings.window,
        receipt_timeout=settings.receipt_timeout,
        workers=settings.workers,
        queue_name=settings.queue_name,
        environment=dict(settings.environment),
    )


def run_trial(
    fault: Fault,
    *,
    var_dir: Path,
    settings: ChaosSettings,
    database_url: str | None = None,
    redis_url: str | None = None,
    console: Console | None = None,
) -> Result:
    """One fresh campaign under `fault`; the stack is gone when this returns.

    `database_url` is an empty database, migrated here (None: an SQLite file in `var_dir`);
    `redis_url` None starts an embedded Redis in `var_dir`, as a fault that restarts Redis
    always does. Whatever goes wrong ends up in `Result.error`, not raised.
    """
    console = console or Console(quiet=True)
    result = Result(fault)
    if fault.needs_postgres and not (database_url and is_postgres(database_url)):
        result.skipped = "skipped (SQLite)"
        return result
    config = _stack_config(var_dir, database_url, None if fault.owns_redis else redis_url, settings)
    try:
        with Stack(config) as stack:
            url = stack.settings.effective_database_url
            seeded = flow.seed(url, settings.messages)
            with httpx.Client(base_url=stack.api_url, timeout=30) as api:
                campaign_id = flow.run_campaign(api, seeded)
                record = (var_dir / "smsc-record.tsv").resolve()
                trial = result.trial = Trial(stack, api, seeded, campaign_id, record, settings)
                threshold = settings.messages * settings.fault_at
                wait_until(
                    lambda: _accepted_so_far(trial) >= threshold,
                    120,
                    f"{threshold:,.0f} messages accepted by the SMSC",
                )
                console.print(f"  {fault.title}: injected at {_accepted_so_far(trial):,} accepted")
                fault.inject(trial)
                result.report = _await_completion(trial)
                result.seconds = time.monotonic() - trial.fault_time
                for name, pid in trial.watched_pids.items():
                    process = stack.processes.get(name)
                    if process is None or process.pid != pid or process.poll() is not None:
                        result.error = f"{name} (pid {pid}) did not outlive the fault"
                if trial.watched_pids and result.error is None:
                    trial.note(f"workers alive (pids {sorted(trial.watched_pids.values())})")
            result.evidence = examine(url, campaign_id, record)
    except Exception as error:  # a row that says what went wrong, the others still run
        result.error = f"{type(error).__name__}: {error}"
    return result


def _accepted_so_far(trial: Trial) -> int:
    try:
        return sum(trial.accepted().values())
    except FileNotFoundError:
        return 0


def fresh_dir(var_dir: Path) -> None:
    """Empty `var_dir`, stopping embedded Redis servers left running in it or below it."""
    if var_dir.exists():
        for socket_file in var_dir.rglob("redis.sock"):
            if embedded_redis.is_running(socket_file.parent):
                embedded_redis.stop(socket_file.parent)
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)


def schema_url(database_url: str, schema: str) -> str:
    """`database_url` with a fresh PostgreSQL schema of its own as the search path."""
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        engine.dispose()
    isolated = make_url(database_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return isolated.render_as_string(hide_password=False)


def run_all(
    faults: Sequence[Fault],
    *,
    var_dir: Path,
    settings: ChaosSettings,
    database_url: str | None,
    console: Console,
) -> list[Result]:
    """Every fault in turn, each in `var_dir/<fault>` (and schema chaos_<fault> on PostgreSQL)."""
    fresh_dir(var_dir)
    results = []
    for number, fault in enumerate(faults, 1):
        summary = (fault.inject.__doc__ or "").strip().splitlines()[0]
        console.print(f"[bold]{number}/{len(faults)} {fault.title}[/]: {summary}")
        directory = var_dir / fault.name
        directory.mkdir(parents=True)
        url = database_url
        if url and is_postgres(url):
            url = schema_url(url, "chaos_" + fault.name.replace("-", "_"))
        started = time.monotonic()
        result = run_trial(
            fault, var_dir=directory, settings=settings, database_url=url, console=console
        )
        results.append(result)
        if result.skipped:
            console.print(f"  {result.skipped}")
        else:
            verdict = "[green]ok[/]" if result.ok else "[red]FAILED[/]"
            console.print(
                f"  {verdict} in {time.monotonic() - started:.0f} s"
                + (f": {result.error}" if result.error else "")
                + f" (logs in {directory / 'logs'})"
            )
    return results


def notes(result: Result) -> list[str]:
    """What a trial observed beyond the counts."""
    found = list(result.trial.notes) if result.trial else []
    if result.trial:
        reached = result.trial.reached
        found += [f"{name} {seconds:.1f} s after the fault" for name, seconds in reached.items()]
        found += [f"{name}: never" for name in result.trial.milestones if name not in reached]
    if result.evidence is not None and result.evidence.doubts:
        doubts = result.evidence.doubts
        found.append("in doubt: " + ", ".join(f"{k} {v}" for k, v in sorted(doubts.items())))
    if result.evidence is not None and result.evidence.no_receipt:
        found.append(
            f"{len(result.evidence.no_receipt)} accepted once but no receipt stored "
            "(unknown at the receipt timeout)"
        )
    if result.evidence is not None and result.evidence.audit_problem:
        found.append(f"[red]audit chain broken: {result.evidence.audit_problem}[/]")
    if result.error:
        found.append(f"[red]{result.error}[/]")
    return found


def table(results: Sequence[Result]) -> Table:
    """The results as a table, one row per fault."""
    out = Table(title="Faults injected mid-campaign")
    out.add_column("fault")
    for name in ("sent twice", "lost", "in doubt", "s to complete"):
        out.add_column(name, justify="right")
    out.add_column("final counts by status")
    for result in results:
        title = result.fault.title
        if result.skipped:
            out.add_row(title, "—", "—", "—", "—", result.skipped)
            continue
        evidence, report = result.evidence, result.report
        counts = report["by_status"] if report else (evidence.by_status if evidence else {})
        status = report["status"] if report else "not final"
        bad = "[red]" if not result.ok else ""
        out.add_row(
            f"{bad}{title}",
            f"{bad}{len(evidence.sent_twice)}" if evidence else "?",
            f"{bad}{len(evidence.lost)}" if evidence else "?",
            str(len(evidence.in_doubt)) if evidence else "?",
            f"{result.seconds:.1f}" if result.seconds is not None else "—",
            f"{status}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())),
        )
    return out


def print_results(console: Console, results: Sequence[Result], settings: ChaosSettings) -> None:
    """The table, then each fault's notes, then the settings."""
    console.print(table(results))
    for result in results:
        found = notes(result)
        if found:
            console.print(f"{result.fault.title}: " + "; ".join(found))
    console.print(f"Settings: {settings.describe()}")


def main(
    *,
    settings: ChaosSettings,
    var_dir: Path,
    database_url: str | None,
    only: Sequence[str] = (),
    console: Console,
) -> int:
    """`dispatcher chaos`: every fault, the table; 0 if nothing was sent twice or lost."""
    unknown = [name for name in only if name not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown fault {unknown}; choose from {', '.join(BY_NAME)}")
    faults = [BY_NAME[name] for name in only] if only else list(FAULTS)
    database = "PostgreSQL" if database_url and is_postgres(database_url) else "SQLite"
    console.print(f"[bold]Chaos[/]: {settings.describe()}")
    console.print(
        f"database {database}"
        + (f" ({make_url(database_url).render_as_string()})" if database_url else "")
        + f", embedded Redis per trial, simulator with --record, working directory {var_dir}"
    )
    results = run_all(
        faults, var_dir=var_dir, settings=settings, database_url=database_url, console=console
    )
    print_results(console, results, settings)
    return 0 if all(result.ok for result in results) else 1
