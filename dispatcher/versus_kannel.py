"""Kannel and this dispatcher side by side, on this machine, against the same SMSC stand-in.

`make bench-vs-kannel` (or `python -m dispatcher.versus_kannel`) runs, for each round:

1. `kannel_bench.sh N` from the shared bench directory: Kannel 1.4.5 (bearerbox + smsbox) end
   to end through its HTTP interface, out over SMPP to `kannel_bench_smsc.py`, each message
   counted once its delivery receipt is back; CPU of bearerbox and smsbox from /proc.
2. `dispatcher bench --smsc` against the same stand-in started on a free port, with the same
   N, the same text and two workers: from approval to the last message final in the
   database, CPU of every dispatcher process (workers, API, Redis) from /proc.

and prints the two ratios the performance goal names: our end-to-end rate over Kannel's (goal
at least 2.0) and our CPU per message over Kannel's (goal at most 0.5). Compare only ratios
from one run on one machine: absolute figures differ about threefold from day to day.

With --postgres the dispatcher runs on PostgreSQL, in a scratch database that each round
drops and creates again (DISPATCHER_BENCH_POSTGRES, default
postgresql+psycopg://postgres@127.0.0.1:5432/dispatcher_bench).
"""

import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dispatcher import bench

TEXT = "kannel bench message"  # what kannel_bench.sh sends
RATE_GOAL = 2.0
CPU_GOAL = 0.5
SCRATCH_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/dispatcher_bench"
BENCH_DIR = Path(os.environ.get("KANNEL_BENCH_DIR", "../shared/bench"))


@dataclass(frozen=True)
class Side:
    """One system's figures in one round."""

    rate: float  # messages/s end to end
    cpu_us: float  # CPU per message, µs


def kannel(script: Path, messages: int, console: Console) -> Side:
    """Run kannel_bench.sh and read its two figures."""
    console.print(f"[bold]Kannel[/]: {script} {messages}")
    done = subprocess.run(
        ["bash", str(script), str(messages)], capture_output=True, text=True, check=False
    )
    side = read_kannel(done.stdout) if done.returncode == 0 else None
    if side is None:
        console.print(done.stdout, done.stderr[-2000:])
        raise RuntimeError(f"kannel_bench.sh failed (exit {done.returncode})")
    verdict = re.search(r"verdict: (.*)", done.stdout)
    print(
        f"  kannel end-to-end: {side.rate:,.0f} msg/s; CPU per message: {side.cpu_us:,.0f} us; "
        f"verdict: {verdict and verdict.group(1)}",
        flush=True,
    )
    return side


def read_kannel(out: str) -> Side | None:
    """The end-to-end rate and Kannel's CPU per message from kannel_bench.sh's output."""
    rate = re.search(r"^kannel end-to-end: ([\d.]+) msg/s", out, re.M)
    cpu = re.search(r"Kannel CPU per message: (\d+) us", out)
    if rate is None or cpu is None:
        return None
    return Side(float(rate.group(1)), float(cpu.group(1)))


def dispatcher(
    smsc_script: Path, messages: int, var_dir: Path, database_url: str | None, console: Console
) -> Side:
    """Run the dispatcher's benchmark against the stand-in, started here on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smsc = subprocess.Popen(
        [sys.executable, str(smsc_script), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the SMSC stand-in did not start") from None
                time.sleep(0.05)
        if database_url is not None:
            _recreate(database_url)
        bench.fresh(var_dir)
        console.print(f"[bold]dispatcher[/]: bench --smsc 127.0.0.1:{port}, {messages} messages")
        figures = bench.run(
            messages,
            var_dir,
            window=100,
            workers=2,
            console=console,
            smsc=("127.0.0.1", port),
            text=TEXT,
            database_url=database_url,
        )
    finally:
        smsc.terminate()
        smsc.wait(10)
    cpu = sum((figures.cpu_seconds or {}).values()) / figures.messages * 1e6
    print(
        f"  end-to-end: {figures.end_to_end_per_second:,.0f} msg/s; CPU per message: {cpu:,.0f} us "
        f"({', '.join(f'{k} {v:.2f} s' for k, v in (figures.cpu_seconds or {}).items())})",
        flush=True,
    )
    return Side(figures.end_to_end_per_second, cpu)


def _recreate(url: str) -> None:
    """Drop and create the scratch PostgreSQL database (its name must contain "bench")."""
    parsed = make_url(url)
    name = parsed.database or ""
    if "bench" not in name:
        raise typer.BadParameter(f"refusing to wipe {name!r}: its name must contain 'bench'")
    server = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    server.dispose()


def main(
    messages: Annotated[int, typer.Option(min=1000, help="Messages per run, both sides")] = 100_000,
    runs: Annotated[int, typer.Option(min=1, help="Rounds, each Kannel then the dispatcher")] = 3,
    bench_dir: Annotated[
        Path, typer.Option(help="Where kannel_bench.sh and kannel_bench_smsc.py are")
    ] = BENCH_DIR,
    postgres: Annotated[
        bool, typer.Option(help="The dispatcher on PostgreSQL (a scratch database) not SQLite")
    ] = False,
    var_dir: Annotated[Path, typer.Option(help="The dispatcher's working directory")] = Path(
        "var/bench-vs-kannel"
    ),
) -> None:
    """Kannel, then the dispatcher, `runs` times; the ratios, and whether they meet the goal."""
    console = Console()
    database_url = None
    if postgres:
        database_url = os.environ.get("DISPATCHER_BENCH_POSTGRES", SCRATCH_POSTGRES)
    rows = []
    for round_ in range(1, runs + 1):
        console.rule(f"round {round_} of {runs}")
        theirs = kannel(bench_dir / "kannel_bench.sh", messages, console)
        stand_in = bench_dir / "kannel_bench_smsc.py"
        ours = dispatcher(stand_in, messages, var_dir / str(round_), database_url, console)
        rows.append((theirs, ours))
    console.rule("side by side")
    database = "PostgreSQL" if postgres else "SQLite"
    print(f"{messages:,} messages a run; dispatcher: 2 workers, window 100, {database}")
    print(
        f"{'run':>3}  {'Kannel msg/s':>12}  {'ours msg/s':>10}  {'rate ×':>7}  "
        f"{'Kannel µs':>9}  {'ours µs':>7}  {'CPU ×':>6}  goal"
    )
    met_all = True
    for number, (theirs, ours) in enumerate(rows, 1):
        rate_ratio = ours.rate / theirs.rate
        cpu_ratio = ours.cpu_us / theirs.cpu_us
        met = rate_ratio >= RATE_GOAL and cpu_ratio <= CPU_GOAL
        met_all &= met
        print(
            f"{number:>3}  {theirs.rate:>12,.0f}  {ours.rate:>10,.0f}  {rate_ratio:>7.2f}  "
            f"{theirs.cpu_us:>9,.0f}  {ours.cpu_us:>7,.0f}  {cpu_ratio:>6.2f}  "
            f"{'met' if met else 'NOT met'}"
        )
    print(
        f"rate ratio (goal ≥ {RATE_GOAL}), CPU ratio (goal ≤ {CPU_GOAL}): "
        f"{'met in every run' if met_all else 'NOT met in every run'}"
    )
    raise typer.Exit(0 if met_all else 1)


if __name__ == "__main__":
    typer.run(main)
