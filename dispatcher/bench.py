"""End-to-end benchmark: one large campaign against the simulator (or an external SMSC).

End to end means from the approval to the last message's final state stored in the database,
each message counted only once its delivery receipt is back. CPU is read from /proc for every
process of the dispatcher (workers, API, the embedded Redis), not wall time × cores.
"""

import asyncio
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from sqlalchemy import func, select
from sqlmodel import col

from campaigns.models import PENDING_MESSAGE_STATUSES, Campaign, Message
from dispatcher import demo as flow
from dispatcher import embedded_redis
from dispatcher.db import make_engine
from dispatcher.smsc.ceiling import CeilingResult, measure_ceiling
from dispatcher.smsc.simulator import read_stats
from dispatcher.stack import Stack, StackConfig


@dataclass(frozen=True)
class Figures:
    """What one benchmark run measured."""

    messages: int
    submits_per_second: float
    receipts_per_second: float
    end_to_end_per_second: float
    wall_seconds: float
    workers: int
    worker_peak_mb: float
    api_peak_mb: float
    ceiling: CeilingResult | None
    rate: float = 0.0  # the contract, 0 = none
    steady_rate: float = 0.0  # submits/s from 10 % to 90 % of the campaign's submits
    throttled: int = 0  # submit_sm the SMSC answered with ESME_RTHROTTLED
    smsc_submits: int = 0
    worker_cpu_seconds: float = 0.0  # all workers, from approval to the last message final
    cpu_seconds: dict[str, float] | None = None  # every dispatcher process over the same window
    end_to_end_seconds: float = 0.0  # approval to the last message final
    deciles: tuple[float, float] = (0.0, 0.0)  # final/s over the first and the last tenth


def _rate(count: int, first: datetime | None, last: datetime | None) -> float:
    if first is None or last is None or last <= first:
        return 0.0
    return count / (last - first).total_seconds()


def measure(stack: Stack, campaign_id: int) -> tuple[float, float, float, float]:
    """Submits/s, receipts/s and end-to-end msg/s of a finished campaign, from its rows, and the
    end-to-end window in seconds (approval to the last message final)."""
    engine = make_engine(stack.settings.effective_database_url)
    with engine.connect() as connection:
        count, first_submit, last_submit, first_done, last_done = connection.execute(
            select(
                func.count(),
                func.min(col(Message.submitted_at)),
                func.max(col(Message.submitted_at)),
                func.min(col(Message.done_at)),
                func.max(col(Message.done_at)),
            ).where(col(Message.campaign_id) == campaign_id)
        ).one()
        approved_at = connection.execute(
            select(col(Campaign.approved_at)).where(col(Campaign.id) == campaign_id)
        ).scalar_one()
    engine.dispose()
    window = (last_done - approved_at).total_seconds() if last_done and approved_at else 0.0
    return (
        _rate(count, first_submit, last_submit),
        _rate(count, first_done, last_done),
        _rate(count, approved_at, last_done),
        window,
    )


def _times(stack: Stack, campaign_id: int, column: Any) -> list[datetime]:
    """A timestamp column of the campaign's messages, set ones only, in order."""
    engine = make_engine(stack.settings.effective_database_url)
    with engine.connect() as connection:
        found = connection.execute(
            select(column).where(col(Message.campaign_id) == campaign_id)
        ).scalars()
        times = sorted(t for t in found if t is not None)
    engine.dispose()
    return times


def decile_rates(stack: Stack, campaign_id: int) -> tuple[float, float]:
    """Messages/s reaching their final state over the first and over the last tenth of them:
    a campaign that slows down as it goes shows it here."""
    times = _times(stack, campaign_id, col(Message.done_at))
    tenth = len(times) // 10
    if tenth < 2:
        return 0.0, 0.0
    first = (times[tenth] - times[0]).total_seconds()
    last = (times[-1] - times[-1 - tenth]).total_seconds()
    return tenth / first if first > 0 else 0.0, tenth / last if last > 0 else 0.0


def steady_rate(stack: Stack, campaign_id: int) -> float:
    """Submits/s between the 10th and the 90th percentile of the campaign's submit times."""
    times = _times(stack, campaign_id, col(Message.submitted_at))
    if len(times) < 10:
        return 0.0
    low, high = len(times) // 10, len(times) * 9 // 10
    span = (times[high] - times[low]).total_seconds()
    return (high - low) / span if span > 0 else 0.0


def fresh(var_dir: Path) -> None:
    """Empty a working directory, stopping an embedded Redis left running there."""
    if embedded_redis.is_running(var_dir):
        embedded_redis.stop(var_dir)
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dispatcher_processes(stack: Stack) -> dict[str, int]:
    """Every process of the dispatcher by name: workers, API and (when embedded) Redis."""
    pids = {name: stack.processes[name].pid for name in (*stack.worker_names, "api")}
    pidfile = stack.config.var_dir / "redis.pid"
    if stack.config.redis_url is None and pidfile.exists():
        pids["redis"] = int(pidfile.read_text())
    return pids


POLL_SECONDS = 0.5


def wait_until_final(stack: Stack, campaign_id: int, timeout: float, console: Console) -> None:
    """Poll the database (not the API, whose CPU is measured) until the campaign is expanded and
    none of its messages is pending; show progress every few seconds."""
    pending = [str(status) for status in PENDING_MESSAGE_STATUSES]
    engine = make_engine(stack.settings.effective_database_url)
    deadline = time.monotonic() + timeout
    shown = time.monotonic()
    try:
        while True:
            stack.check_alive()
            with engine.connect() as connection:
                status, recipients = connection.execute(
                    select(col(Campaign.status), col(Campaign.recipients)).where(
                        col(Campaign.id) == campaign_id
                    )
                ).one()
                waiting = connection.execute(
                    select(func.count())
                    .where(col(Message.campaign_id) == campaign_id)
                    .where(col(Message.status).in_(pending))
                ).scalar_one()
            if str(status) in ("sending", "completed") and recipients and not waiting:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"campaign {campaign_id}: {waiting:,} still pending")
            if time.monotonic() - shown > 5:
                shown = time.monotonic()
                console.print(f"  {recipients - waiting:,}/{recipients:,} final")
            # The rates come from the rows' own times, so a slower poll costs no precision; a
            # count every 50 ms was an eighth of PostgreSQL's CPU during a run.
            time.sleep(POLL_SECONDS)
    finally:
        engine.dispose()


def run(
    subscribers: int,
    var_dir: Path,
    window: int,
    workers: int,
    console: Console,
    rate: float = 0,
    metrics: bool = True,
    smsc: tuple[str, int] | None = None,
    text: str = flow.DEMO_TEXT,
    database_url: str | None = None,
) -> Figures:
    """Run the benchmark campaign, then (with the simulator and no rate) the simulator's
    ceiling, in one stack."""
    stats_file = var_dir / "smsc-stats.json"
    simulator_args = ["--stats-file", str(stats_file)]
    if rate:
        simulator_args += ["--max-rate", str(rate)]  # the SMSC holds the same contract
    config = StackConfig(
        var_dir=var_dir,
        database_url=database_url,
        smsc=smsc,
        smsc_ids="auto" if smsc else "dec",
        rate=rate,
        window=window,
        workers=workers,
        simulator_args=simulator_args,
        environment={} if metrics else {"DISPATCHER_METRICS_ENABLED": "false"},
    )
    with Stack(config) as stack:
        seeded = flow.seed(stack.settings.effective_database_url, subscribers)
        pids = dispatcher_processes(stack)
        with httpx.Client(base_url=stack.api_url, timeout=60) as client:
            cpu_before = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
            started = time.monotonic()
            campaign_id = flow.run_campaign(client, seeded, text=text)
            wait_until_final(stack, campaign_id, 3600, console)
            cpu = {name: process_cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            wall = time.monotonic() - started
        submits, receipts, end_to_end, window_seconds = measure(stack, campaign_id)
        steady = steady_rate(stack, campaign_id)
        deciles = decile_rates(stack, campaign_id)
        worker_mb = max(stack.peak_memory_mb(name) for name in stack.worker_names)
        api_mb = stack.peak_memory_mb("api")
        for name in stack.worker_names:
            stack.stop(name)
        ceiling = None
        if not rate and smsc is None:
            ceiling = asyncio.run(
                measure_ceiling(
                    stack.smsc_host,
                    stack.smsc_port,
                    messages=min(subscribers, 100_000),
                    window=window,
                    system_id=config.system_id,
                    password=config.password,
                )
            )
        stack.stop("smsc-sim")
    throttled = smsc_submits = 0
    if smsc is None:
        stats = read_stats(stats_file)
        throttled, smsc_submits = stats.throttled, stats.submits
    return Figures(
        subscribers,
        submits,
        receipts,
        end_to_end,
        wall,
        workers,
        worker_mb,
        api_mb,
        ceiling,
        rate=rate,
        steady_rate=steady,
        throttled=throttled,
        smsc_submits=smsc_submits,
        worker_cpu_seconds=sum(cpu[name] for name in stack.worker_names),
        cpu_seconds=cpu,
        end_to_end_seconds=window_seconds,
        deciles=deciles,
    )


def report(figures: Figures, console: Console) -> None:
    """Print the figures; the last line is `end-to-end: <N> msg/s` for scripts."""
    console.print(f"messages:            {figures.messages:,}")
    console.print(
        f"end-to-end window:   {figures.end_to_end_seconds:,.2f} s (approval → last final, "
        f"from the rows; {figures.wall_seconds:,.1f} s wall with the API calls)"
    )
    console.print(f"submits/s:           {figures.submits_per_second:,.0f}")
    console.print(f"receipts/s:          {figures.receipts_per_second:,.0f}")
    first, last = figures.deciles
    if first and last:
        console.print(
            f"first/last 10 %:     {first:,.0f} / {last:,.0f} msg/s final (a slow-down shows here)"
        )
    else:  # a tenth of a short campaign can end within one store (one timestamp)
        console.print("first/last 10 %:     n/a (too few messages to tell)")
    console.print(f"workers:             {figures.workers} (one bind each, one SMSC account)")
    console.print(f"worker peak memory:  {figures.worker_peak_mb:,.0f} MB (the largest)")
    console.print(f"api peak memory:     {figures.api_peak_mb:,.0f} MB")
    cpu = figures.cpu_seconds or {}
    parts = ", ".join(f"{name} {seconds:,.2f} s" for name, seconds in cpu.items())
    console.print(f"CPU:                 {parts}")
    if figures.rate:
        deviation = (figures.steady_rate - figures.rate) / figures.rate
        attempts = figures.smsc_submits + figures.throttled
        share = figures.throttled / attempts if attempts else 0.0
        console.print(f"contracted rate:     {figures.rate:,.0f} submits/s (the SMSC enforces it)")
        console.print(
            f"steady rate:         {figures.steady_rate:,.1f} submits/s ({deviation:+.1%}), "
            "10th to 90th percentile of submits"
        )
        console.print(f"throttled:           {figures.throttled:,} of {attempts:,} ({share:.2%})")
    ceiling = figures.ceiling
    if ceiling is not None:
        ratio = figures.end_to_end_per_second / ceiling.receipts_per_second
        console.print(
            f"simulator ceiling:   {ceiling.submits_per_second:,.0f} submits/s, "
            f"{ceiling.receipts_per_second:,.0f} msg/s with receipts "
            f"({ceiling.messages:,} messages, minimal client)"
        )
        console.print(f"dispatcher/ceiling:  {ratio:.2f}")
    per_message = sum(cpu.values()) / figures.messages * 1e6 if figures.messages else 0
    print(f"CPU per message: {per_message:.0f} us (all dispatcher processes)", flush=True)
    print(f"end-to-end: {figures.end_to_end_per_second:.0f} msg/s", flush=True)
