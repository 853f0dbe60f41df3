"""`dispatcher report` and `dispatcher export`: a campaign's report and delivery log, from the
database directly (for operators on the host). An export is audited as `cli:<login>`."""

import getpass
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel import Session

from campaigns import disclosure
from campaigns.models import Campaign
from dispatcher.db import get_engine, reading, session_scope
from dispatcher.reports import delivery_log
from dispatcher.reports.summary import Report, build
from dispatcher.settings import get_settings


def _campaign(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        typer.echo(f"no campaign {campaign_id}", err=True)
        raise typer.Exit(1)
    return campaign


def report(campaign_id: Annotated[int, typer.Argument(help="The campaign")]) -> None:
    """Print a campaign's report: by status, area, hour and error, delivery and reach times."""
    with Session(reading(get_engine())) as session:
        figures = build(
            session=session,
            campaign=_campaign(session, campaign_id),
            policy=get_settings().policy,
        )
    print_report(Console(), figures)


def print_report(console: Console, figures: Report) -> None:
    """The report as rich tables."""
    label = " (EXERCISE)" if figures.exercise else ""
    console.print(
        f"[bold]Campaign {figures.campaign_id}{label}[/]: {figures.status}, "
        f"{figures.recipients:,} recipients, {figures.encoding.upper()}, "
        f"{figures.parts_per_message} SMS per message, {figures.total_sms:,} SMS"
    )
    _table(console, "By status", ("status", "messages"), figures.by_status.items())
    _table(
        console,
        "By area",
        ("code", "area", "recipients", "delivered", "failed", "pending", "unknown", "cancelled"),
        (
            (a.code or "-", a.name or "not in the registry", a.recipients, a.delivered, a.failed)
            + (a.pending, a.unknown, a.cancelled)
            for a in figures.by_area
        ),
    )
    _table(
        console,
        "By hour (UTC)",
        ("hour", "submitted", "delivered"),
        ((h.hour.strftime("%Y-%m-%d %H:00"), h.submitted, h.delivered) for h in figures.by_hour),
    )
    _table(
        console,
        "By error",
        ("kind", "code", "name", "status", "messages"),
        (
            (e.kind, "-" if e.code is None else e.code, e.name, e.status, e.messages)
            for e in figures.by_error
        ),
    )
    delays, reached = figures.delivery_seconds, figures.reached
    _table(
        console,
        "Delivery times",
        ("", "p50", "p90", "p99"),
        [
            ("seconds from submit to receipt", delays.p50, delays.p90, delays.p99),
            ("recipients delivered by (UTC)", reached.p50, reached.p90, reached.p99),
        ],
    )


def _table(
    console: Console, title: str, header: tuple[str, ...], rows: Iterable[Sequence[object]]
) -> None:
    rows = [tuple(row) for row in rows]
    table = Table(title=title, title_justify="left")
    for index, name in enumerate(header):
        numeric = all(isinstance(row[index], int | float | None) for row in rows)
        table.add_column(name, justify="right" if numeric and rows else "left")
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    console.print(table)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def export(
    campaign_id: Annotated[int, typer.Argument(help="The campaign")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The CSV file to write")],
    mask: Annotated[bool, typer.Option(help="Mask the subscriber numbers")] = False,
) -> None:
    """Write a campaign's delivery log as CSV, one row per message (audited)."""
    engine = get_engine()
    with session_scope(engine) as session:
        campaign = _campaign(session, campaign_id)
        disclosure.record_export(
            session=session,
            actor=disclosure.cli_actor(getpass.getuser()),
            campaign=campaign,
            masked=mask,
        )
        total = campaign.recipients
    columns = (
        TextColumn("[bold]exporting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    written = 0
    with output.open("w", encoding="utf-8", newline="") as out, Progress(*columns) as progress:
        task = progress.add_task("export", total=total or None)
        for chunk in delivery_log.chunks(engine, campaign_id, masked=mask):
            out.write(chunk.text)
            written += chunk.rows
            progress.advance(task, chunk.rows)
    typer.echo(f"{written:,} messages written to {output}")
