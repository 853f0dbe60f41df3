"""The faults: functions of a Trial, shared by `dispatcher chaos` and tests/test_faults.py."""

import os
import signal
import socket
import subprocess
import threading
import time

import httpx
import redis
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlmodel import col

from campaigns.models import Message, MessageStatus, Worker
from dispatcher import embedded_redis
from dispatcher.chaos.trial import DeadWorker, Fault, Trial
from dispatcher.db import make_engine
from dispatcher.sending import wirelog
from dispatcher.stack import Stack, wait_until


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
    at_stop = trial.accepted_count()
    time.sleep(trial.settings.redis_outage)  # the outage itself
    trial.accepted_while_away = trial.accepted_count() - at_stop
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
