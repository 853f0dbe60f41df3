"""Runs the whole product on one machine as separate processes: SMSC simulator, API, worker."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from dispatcher import embedded_redis, migrate
from dispatcher.settings import Settings


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(check: object, timeout: float, what: str) -> None:
    """Poll `check()` until it is true, or fail after `timeout` seconds."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s")
        time.sleep(0.05)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class StackConfig:
    """What to run and where."""

    var_dir: Path
    database_url: str | None = None
    redis_url: str | None = None
    smsc: tuple[str, int] | None = None  # None: start the built-in simulator
    smsc_ids: str = "dec"  # how the SMSC writes message ids (the simulator: decimal); or "auto"
    simulator_args: list[str] = field(default_factory=list)
    system_id: str = "dispatcher"
    password: str = "secret"
    rate: float = 0.0
    window: int = 100
    receipt_timeout: float = 3600.0
    job_timeout: int = 3600
    workers: int = 1  # worker processes
    max_sessions: int | None = None  # binds the account allows; None: one per worker
    account: dict[str, object] = field(default_factory=dict)  # more account settings
    requeue_after: float = 60.0
    queue_name: str = "dispatcher"
    environment: dict[str, str] = field(default_factory=dict)  # more DISPATCHER_* settings
    worker_metrics: bool = False  # each worker serves /metrics on a port of its own


class Stack:
    """Starts the processes on enter and stops every one of them on exit."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = config.var_dir / "logs"
        self.api_port = free_port()
        self.smsc_host, self.smsc_port = config.smsc or ("127.0.0.1", free_port())
        self._own_redis = False
        self.metrics_ports: dict[str, int] = {}  # worker name → its /metrics port
        self.settings = Settings(
            var_dir=config.var_dir,
            database_url=config.database_url,
            redis_url=config.redis_url,
            queue_name=config.queue_name,
            receipt_timeout=config.receipt_timeout,
        )

    @property
    def worker_names(self) -> list[str]:
        """The worker processes' names: "worker", then "worker-2", "worker-3"…"""
        return ["worker", *(f"worker-{n}" for n in range(2, self.config.workers + 1))]

    @property
    def api_url(self) -> str:
        """Where the API listens."""
        return f"http://127.0.0.1:{self.api_port}"

    def environment(self) -> dict[str, str]:
        """The environment every child process gets."""
        binds = [
            {
                "name": "smsc1",
                "host": self.smsc_host,
                "port": self.smsc_port,
                "system_id": self.config.system_id,
                "password": self.config.password,
                "rate": self.config.rate,
                "window": self.config.window,
                "max_sessions": self.config.max_sessions or self.config.workers,
                "submit_ids": self.config.smsc_ids,
                "receipt_ids": self.config.smsc_ids,
                **self.config.account,
            }
        ]
        env = dict(os.environ)
        env.update(
            DISPATCHER_VAR_DIR=str(self.config.var_dir),
            DISPATCHER_DATABASE_URL=self.settings.effective_database_url,
            DISPATCHER_REDIS_URL=self.redis_url,
            DISPATCHER_BINDS=json.dumps(binds),
            DISPATCHER_RECEIPT_TIMEOUT=str(self.config.receipt_timeout),
            DISPATCHER_JOB_TIMEOUT=str(self.config.job_timeout),
            DISPATCHER_REQUEUE_AFTER=str(self.config.requeue_after),
            DISPATCHER_QUEUE_NAME=self.config.queue_name,
        )
        env.update(self.config.environment)
        return env

    def __enter__(self) -> "Stack":
        self.logs.mkdir(parents=True, exist_ok=True)
        if self.config.redis_url:
            self.redis_url = self.config.redis_url
        else:
            self._own_redis = embedded_redis.ensure_running(self.config.var_dir)
            self.redis_url = embedded_redis.url(self.config.var_dir)
        try:
            migrate.upgrade(self.settings.effective_database_url)
            self._start_children()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start_children(self) -> None:
        if self.config.smsc is None:
            self.spawn(
                "smsc-sim",
                [
                    "smsc-sim",
                    "--port",
                    str(self.smsc_port),
                    "--system-id",
                    self.config.system_id,
                    "--password",
                    self.config.password,
                    *self.config.simulator_args,
                ],
            )
            wait_until(lambda: _accepts(self.smsc_host, self.smsc_port), 20, "SMSC simulator")
        self.spawn("api", ["api", "--port", str(self.api_port)])
        for name in self.worker_names:
            more = {}
            if self.config.worker_metrics:
                self.metrics_ports[name] = free_port()
                more["DISPATCHER_METRICS_PORT"] = str(self.metrics_ports[name])
            self.spawn(name, ["worker"], more)
        wait_until(self._api_healthy, 30, "API")

    def spawn(
        self, name: str, args: list[str], environment: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `dispatcher ARGS...` as a child process logging to var/logs/NAME.log."""
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(
            [sys.executable, "-m", "dispatcher", *args],
            env={**self.environment(), **(environment or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.processes[name] = process
        return process

    def _api_healthy(self) -> bool:
        self.check_alive()
        try:
            return httpx.get(f"{self.api_url}/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def check_alive(self) -> None:
        """Fail if a child process has died."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}; see {self.logs / name}.log"
                )

    def peak_memory_mb(self, name: str) -> float:
        """The peak resident memory of a child process, in MB (Linux)."""
        status = Path(f"/proc/{self.processes[name].pid}/status").read_text()
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
        return kb / 1024

    def cpu_seconds(self, name: str) -> float:
        """CPU time (user and system) a child process has used so far (Linux)."""
        fields = Path(f"/proc/{self.processes[name].pid}/stat").read_text().rsplit(")", 1)[1]
        user, system = fields.split()[11:13]
        return (int(user) + int(system)) / os.sysconf("SC_CLK_TCK")

    def stop(self, name: str, timeout: float = 15.0) -> None:
        """Stop one child: SIGTERM, then SIGKILL if it does not go."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # The worker first, so it unbinds while the SMSC is still there.
        for name in (*self.worker_names, "api", "smsc-sim", *list(self.processes)):
            self.stop(name)
        if self._own_redis:
            embedded_redis.stop(self.config.var_dir)
