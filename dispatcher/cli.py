"""The `dispatcher` command: API, worker, SMSC simulator, demo and benchmark."""

import logging
import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from dispatcher.commands import audit as audit_commands
from dispatcher.commands import people as people_commands
from dispatcher.commands import reports as report_commands
from dispatcher.commands import subscribers as subscriber_commands
from dispatcher.commands.sign import keygen, sign
from dispatcher.settings import get_settings
from dispatcher.smsc.command import smsc_sim

app = typer.Typer(help="Public-information SMS dispatcher.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_commands.app, name="audit")
app.add_typer(subscriber_commands.app, name="subscribers")
app.add_typer(subscriber_commands.optout_app, name="optout")
app.command("smsc-sim")(smsc_sim)
app.add_typer(people_commands.authorities_app, name="authorities")
app.add_typer(people_commands.users_app, name="users")
app.command("sign")(sign)
app.command("keygen")(keygen)
app.command("report")(report_commands.report)
app.command("export")(report_commands.export)


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Listen address [default: settings]")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [default: settings]")] = None,
) -> None:
    """Serve the HTTP API."""
    from dispatcher.api.server import serve

    settings = get_settings()
    serve(settings, host or settings.api_host, port or settings.api_port)


@app.command()
def worker() -> None:
    """Run a worker: expand campaigns, send over the SMSC accounts' binds, record receipts."""
    from dispatcher.db import get_engine
    from dispatcher.sending.worker import run_worker

    _logging()
    raise typer.Exit(run_worker(get_settings(), get_engine()))


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Migrate the database to the latest schema (or REVISION) and load the built-in areas."""
    from campaigns import areas
    from dispatcher import migrate
    from dispatcher.db import session_scope

    migrate.upgrade(get_settings().effective_database_url, revision)
    if revision == "head":
        with session_scope() as session:
            added = areas.seed(session)
        typer.echo(f"database at head; {added} built-in area records added")


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter("expected HOST:PORT")
    return host, int(port)


@app.command()
def demo(
    subscribers: Annotated[int, typer.Option(min=1, help="Synthetic subscribers")] = 20_000,
    smsc: Annotated[
        str | None, typer.Option(help="HOST:PORT of an external SMSC instead of the simulator")
    ] = None,
    system_id: Annotated[str, typer.Option(help="SMPP system_id")] = "dispatcher",
    password: Annotated[str, typer.Option(help="SMPP password")] = "secret",
    rate: Annotated[
        float, typer.Option(min=0, help="Contracted submits/s, all workers together; 0 = none")
    ] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes, one bind each")] = 1,
    receipt_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for a receipt before `unknown`")
    ] = 60,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds")] = 1800,
    var_dir: Annotated[Path, typer.Option(help="Working directory, emptied first")] = Path(
        "var/demo"
    ),
) -> None:
    """Run the whole flow on this machine with embedded defaults and show it working."""
    from dispatcher import demo as flow
    from dispatcher.stack import Stack, StackConfig

    console = Console()
    _fresh(var_dir)
    config = StackConfig(
        var_dir=var_dir,
        smsc=_host_port(smsc) if smsc else None,
        smsc_ids="auto" if smsc else "dec",  # another SMSC's ids are learnt
        system_id=system_id,
        password=password,
        rate=rate,
        workers=workers,
        receipt_timeout=receipt_timeout,
    )
    with Stack(config) as stack:
        console.print(
            f"[bold]Dispatcher demo[/]: API {stack.api_url}, SMSC "
            f"{stack.smsc_host}:{stack.smsc_port}, logs in {stack.logs}"
        )
        database_url = stack.settings.effective_database_url
        seeded = flow.seed(database_url, subscribers)
        console.print(
            "Seeded 1 authority (its admin, a submitter, an approver) and "
            f"{subscribers:,} subscribers in Gia Lai"
        )
        with httpx.Client(base_url=stack.api_url, timeout=30) as client:
            campaign_id = flow.run_campaign(client, seeded)
            console.print(f"Campaign {campaign_id} created, submitted and approved via the API")
            flow.print_preview(console, client, seeded.approver_token, campaign_id)
            body = flow.watch(
                stack,
                client,
                seeded.approver_token,
                campaign_id,
                timeout,
                console,
                stall=receipt_timeout + 120,
            )
        flow.print_report(console, body)
        pending = flow.count_pending(database_url, campaign_id)
    if body["status"] != "completed" or pending:
        console.print(f"[red]Not every message reached a final state ({pending} pending)")
        raise typer.Exit(1)
    console.print("[green]Every message reached a final state.")


@app.command("seed-demo")
def seed_demo(
    subscribers: Annotated[int, typer.Option(min=1, help="Synthetic subscribers")] = 20_000,
) -> None:
    """Seed the configured database with the demo's authority, two users and subscribers."""
    from dispatcher import demo as flow

    seeded = flow.seed(get_settings().effective_database_url, subscribers)
    typer.echo(f"submitter token: {seeded.submitter_token}")
    typer.echo(f"approver token:  {seeded.approver_token}")


@app.command()
def bench(
    subscribers: Annotated[
        int | None,
        typer.Option(min=1, help="Recipients [default: 200,000; with --rate, 40 s worth]"),
    ] = None,
    window: Annotated[int, typer.Option(min=1, help="Outstanding submit_sm per bind")] = 100,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes, one bind each")] = 2,
    rate: Annotated[
        float,
        typer.Option(
            min=0,
            help="Contracted submits/s for the account, enforced by the simulator too "
            "(burst rate/10); 0 = no limit",
        ),
    ] = 0,
    var_dir: Annotated[Path, typer.Option(help="Working directory, emptied first")] = Path(
        "var/bench"
    ),
    metrics: Annotated[
        bool, typer.Option(help="Workers record latencies and publish live figures")
    ] = True,
    smsc: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT",
            help="An external SMSC (any system_id and password) instead of the simulator",
        ),
    ] = None,
    text: Annotated[str | None, typer.Option(help="The message [default: the demo's]")] = None,
) -> None:
    """Benchmark one campaign end to end against the simulator or an external SMSC."""
    from dispatcher import bench as benchmark
    from dispatcher.demo import DEMO_TEXT

    console = Console()
    _fresh(var_dir)
    count = subscribers or (int(rate * 40) if rate else 200_000)
    address = None
    if smsc is not None:
        host, _, port = smsc.rpartition(":")
        if not host or not port.isdigit():
            raise typer.BadParameter("expected HOST:PORT", param_hint="--smsc")
        address = (host, int(port))
    figures = benchmark.run(
        count, var_dir, window, workers, console, rate, metrics, address, text or DEMO_TEXT
    )
    benchmark.report(figures, console)


@app.command()
def status(
    once: Annotated[bool, typer.Option("--once", help="Print one snapshot and exit")] = False,
    interval: Annotated[
        float,
        typer.Option(
            min=0.2, help="Seconds between refreshes (and over which --once measures rates)"
        ),
    ] = 1.0,
) -> None:
    """Show the SMSC binds, queues and campaigns live, as the operator page does."""
    from dispatcher.watching.feed import watcher_for
    from dispatcher.watching.terminal import show

    show(watcher_for(get_settings()), Console(), once=once, interval=interval)


@app.command()
def chaos(
    messages: Annotated[int, typer.Option(min=1, help="Recipients of each campaign")] = 20_000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes, one bind each")] = 2,
    rate: Annotated[float, typer.Option(min=0, help="Submits/s of the account")] = 1000,
    receipt_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for a receipt before `unknown`")
    ] = 30,
    database_url: Annotated[
        str | None,
        typer.Option(help="PostgreSQL to use, a schema chaos_<fault> per fault (default SQLite)"),
    ] = None,
    fault: Annotated[
        list[str] | None, typer.Option(help="Only this fault (repeatable), e.g. worker-kill")
    ] = None,
    var_dir: Annotated[Path, typer.Option(help="Working directory, emptied first")] = Path(
        "var/chaos"
    ),
) -> None:
    """Inject each fault into a campaign of its own; exit 1 if anything was sent twice or lost."""
    from dispatcher import chaos as faults

    settings = faults.ChaosSettings(
        messages=messages, workers=workers, rate=rate, receipt_timeout=receipt_timeout
    )
    try:
        code = faults.main(
            settings=settings,
            var_dir=var_dir,
            database_url=database_url,
            only=fault or (),
            console=Console(),
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    raise typer.Exit(code)


def _fresh(var_dir: Path) -> None:
    """Empty the demo's directory, stopping an embedded Redis left running there."""
    from dispatcher.bench import fresh

    fresh(var_dir)
