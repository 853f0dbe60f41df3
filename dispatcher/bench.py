"""End-to-end benchmark: one large campaign against the simulator, with no rate limit."""

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from rich.console import Console
from sqlalchemy import func, select
from sqlmodel import col

from campaigns.models import Campaign, Message
from dispatcher import demo as flow
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


def _rate(count: int, first: datetime | None, last: datetime | None) -> float:
    if first is None or last is None or last <= first:
        return 0.0
    return count / (last - first).total_seconds()


def measure(stack: Stack, campaign_id: int, wall: float) -> tuple[float, float, float]:
    """Submits/s, receipts/s and end-to-end msg/s of a finished campaign, from its rows."""
    engine = make_engine(stack.settings.effective_database_url)
    with engine.connect() as connection:
        count, first_submit, last_submit, last_done = connection.execute(
            select(
                func.count(),
                func.min(col(Message.submitted_at)),
                func.max(col(Message.submitted_at)),
                func.max(col(Message.done_at)),
            ).where(col(Message.campaign_id) == campaign_id)
        ).one()
        approved_at = connection.execute(
            select(col(Campaign.approved_at)).where(col(Campaign.id) == campaign_id)
        ).scalar_one()
        first_done = connection.execute(
            select(func.min(col(Message.done_at))).where(col(Message.campaign_id) == campaign_id)
        ).scalar_one()
    engine.dispose()
    return (
        _rate(count, first_submit, last_submit),
        _rate(count, first_done, last_done),
        count / wall if wall else _rate(count, approved_at, last_done),
    )


def steady_rate(stack: Stack, campaign_id: int) -> float:
    """Submits/s between the 10th and the 90th percentile of the campaign's submit times."""
    engine = make_engine(stack.settings.effective_database_url)
    with engine.connect() as connection:
        times = sorted(
            t
            for t in connection.execute(
                select(col(Message.submitted_at)).where(col(Message.campaign_id) == campaign_id)
            ).scalars()
            if t is not None
        )
    engine.dispose()
    if len(times) < 10:
        return 0.0
    low, high = len(times) // 10, len(times) * 9 // 10
    span = (times[high] - times[low]).total_seconds()
    return (high - low) / span if span > 0 else 0.0


def run(
    subscribers: int,
    var_dir: Path,
    window: int,
    workers: int,
    console: Console,
    rate: float = 0,
    metrics: bool = True,
) -> Figures:
    """Run the benchmark campaign, then (without a rate) the simulator's ceiling, in one stack."""
    stats_file = var_dir / "smsc-stats.json"
    simulator_args = ["--stats-file", str(stats_file)]
    if rate:
        simulator_args += ["--max-rate", str(rate)]  # the SMSC holds the same contract
    config = StackConfig(
        var_dir=var_dir,
        rate=rate,
        window=window,
        workers=workers,
        simulator_args=simulator_args,
        environment={} if metrics else {"DISPATCHER_METRICS_ENABLED": "false"},
    )
    with Stack(config) as stack:
        seeded = flow.seed(stack.settings.effective_database_url, subscribers)
        with httpx.Client(base_url=stack.api_url, timeout=60) as client:
            cpu_before = sum(stack.cpu_seconds(name) for name in stack.worker_names)
            started = time.monotonic()
            campaign_id = flow.run_campaign(client, seeded)
            flow.watch(stack, client, seeded.approver_token, campaign_id, 3600, console)
            wall = time.monotonic() - started
            cpu = sum(stack.cpu_seconds(name) for name in stack.worker_names) - cpu_before
        submits, receipts, end_to_end = measure(stack, campaign_id, wall)
        steady = steady_rate(stack, campaign_id)
        worker_mb = max(stack.peak_memory_mb(name) for name in stack.worker_names)
        api_mb = stack.peak_memory_mb("api")
        for name in stack.worker_names:
            stack.stop(name)
        ceiling = None
        if not rate:
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
    smsc = read_stats(stats_file)
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
        throttled=smsc.throttled,
        smsc_submits=smsc.submits,
        worker_cpu_seconds=cpu,
    )


def report(figures: Figures, console: Console) -> None:
    """Print the figures; the last line is `end-to-end: <N> msg/s` for scripts."""
    console.print(f"messages:            {figures.messages:,}")
    console.print(f"wall time:           {figures.wall_seconds:,.1f} s (approve → all final)")
    console.print(f"submits/s:           {figures.submits_per_second:,.0f}")
    console.print(f"receipts/s:          {figures.receipts_per_second:,.0f}")
    console.print(f"workers:             {figures.workers} (one bind each, one SMSC account)")
    console.print(f"worker peak memory:  {figures.worker_peak_mb:,.0f} MB (the largest)")
    console.print(f"api peak memory:     {figures.api_peak_mb:,.0f} MB")
    per_message = figures.worker_cpu_seconds / figures.messages * 1e6 if figures.messages else 0
    console.print(
        f"worker CPU:          {figures.worker_cpu_seconds:,.1f} s "
        f"({per_message:,.0f} µs per message, all workers)"
    )
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
    print(f"end-to-end: {figures.end_to_end_per_second:.0f} msg/s", flush=True)
