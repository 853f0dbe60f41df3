"""Running trials: a stack per fault, a campaign, the fault at a third, then the evidence."""

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from sqlalchemy import text
from sqlalchemy.engine import make_url

from dispatcher import demo as flow
from dispatcher import embedded_redis
from dispatcher.chaos.evidence import Result, examine
from dispatcher.chaos.faults import BY_NAME, FAULTS, is_postgres
from dispatcher.chaos.report import print_results
from dispatcher.chaos.trial import ChaosSettings, Fault, Trial
from dispatcher.db import make_engine
from dispatcher.stack import Stack, StackConfig, wait_until


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
                    lambda: trial.accepted_count() >= threshold,
                    120,
                    f"{threshold:,.0f} messages accepted by the SMSC",
                )
                console.print(f"  {fault.title}: injected at {trial.accepted_count():,} accepted")
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
