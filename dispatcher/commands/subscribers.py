"""`dispatcher subscribers` and `dispatcher optout`: the registry and opt-outs from CSV files.

Each import runs in one transaction, committed at the end: a file is taken whole or not at all.
Rejected rows go to the `--rejections` CSV with their line and raw value (for the operator to
fix at the source); nothing printed or logged here shows a number.
"""

import csv
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, BinaryIO, TextIO

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from sqlalchemy import Engine

from campaigns import areas, optouts, registry, spreadsheet, synthetic
from campaigns.errors import InvalidInput
from campaigns.optouts import NumbersSummary
from campaigns.registry import ImportSummary, OnRejection, RowRejection, Staged
from dispatcher.db import session_scope

app = typer.Typer(help="The operator's subscriber registry.", no_args_is_help=True)
optout_app = typer.Typer(help="Numbers left out of non-urgent campaigns.", no_args_is_help=True)

ACTOR = "cli"
REJECTION_COLUMNS = ("line", "column", "raw", "reason")

RejectionsOption = Annotated[
    Path | None,
    typer.Option("--rejections", help="Write rejected rows (line, column, raw, reason) here"),
]


@app.command("import")
def import_registry(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Registry CSV")],
    rejections: RejectionsOption = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows staged at a time")] = 20_000,
) -> None:
    """Upsert subscribers (msisdn, area_code[, status]) from a CSV; re-running changes nothing."""
    console = Console(stderr=True)
    try:
        summary, seconds = import_file(file, rejections, console, chunk_rows=chunk_rows)
    except InvalidInput as error:
        console.print(f"[red]{file}: {error}")
        raise typer.Exit(2) from error
    print_summary(console, summary, seconds, rejections)


def import_file(
    path: Path,
    rejections: Path | None,
    console: Console,
    *,
    chunk_rows: int = registry.CHUNK_ROWS,
    engine: Engine | None = None,
) -> tuple[ImportSummary, float]:
    """Import a registry file with a progress bar; return the summary and the seconds taken."""
    started = time.perf_counter()
    with _rejections_file(rejections) as on_rejection, session_scope(engine) as session:
        added = areas.seed(session)  # the built-in units, where the database lacks them
        if added:
            console.print(f"Added {added} built-in area records")
        with _progress(console) as progress, path.open("rb") as raw:
            reading = progress.add_task("Reading", total=path.stat().st_size, rows=0)

            def advance(staged: Staged) -> None:
                progress.update(reading, rows=staged.read)

            with progress.wrap_file(raw, task_id=reading) as counted:
                staged = registry.stage_subscribers(
                    session=session,
                    lines=_text(counted),
                    on_rejection=on_rejection,
                    on_chunk=advance,
                    chunk_rows=chunk_rows,
                )
        with console.status(f"Merging {staged.staged:,} rows into the registry"):
            summary = registry.merge_subscribers(session=session, staged=staged, actor=ACTOR)
        with console.status("Committing"):
            session.commit()
    return summary, time.perf_counter() - started


@app.command()
def generate(
    count: Annotated[int, typer.Option(min=1, help="Rows to write")],
    out: Annotated[Path, typer.Option(dir_okay=False, help="CSV file to write")],
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same file")] = 2020,
) -> None:
    """Write a realistic synthetic registry CSV, with ~1% messy rows and a few duplicates."""
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="", buffering=1 << 20) as stream:
        stats = synthetic.write_registry(out=stream, count=count, seed=seed)
    seconds = time.perf_counter() - started
    typer.echo(
        f"{out}: {stats.rows:,} rows ({stats.messy:,} messy, {stats.duplicates:,} repeated "
        f"numbers) in {seconds:.1f} s"
    )


@optout_app.command("import")
def import_opt_outs(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="One msisdn a row")],
    rejections: RejectionsOption = None,
    source: Annotated[str, typer.Option(help="Source of rows that name none")] = "import",
) -> None:
    """Add numbers (msisdn[, source]) to the opt-outs; numbers already there keep their record."""
    console = Console(stderr=True)
    started = time.perf_counter()
    try:
        with (
            _rejections_file(rejections) as on_rejection,
            session_scope() as session,
            file.open("rb") as raw,
        ):
            summary = optouts.import_opt_outs(
                session=session,
                lines=_text(raw),
                source=source,
                actor=ACTOR,
                on_rejection=on_rejection,
            )
    except InvalidInput as error:
        console.print(f"[red]{file}: {error}")
        raise typer.Exit(2) from error
    print_summary(console, summary, time.perf_counter() - started, rejections)


def print_summary(
    console: Console,
    summary: ImportSummary | NumbersSummary,
    seconds: float,
    rejections: Path | None,
) -> None:
    """The counts of an import, its rejections by reason, its time and its rate."""
    table = Table(show_header=False, box=None)
    table.add_column(justify="right", style="bold")
    table.add_column()
    counts = ["read", "inserted", "added", "updated", "unchanged", "duplicates"]
    for name in counts:
        if hasattr(summary, name):
            table.add_row(f"{getattr(summary, name):,}", name)
    table.add_row(f"{sum(summary.rejected.values()):,}", "rejected")
    for reason, count in sorted(summary.rejected.items()):
        table.add_row(f"{count:,}", f"  {reason}")
    if isinstance(summary, ImportSummary) and summary.ignored_columns:
        table.add_row("ignored", ", ".join(summary.ignored_columns))
    table.add_row(f"{seconds:,.1f}", "seconds")
    table.add_row(f"{summary.read / seconds if seconds else 0:,.0f}", "rows/s")
    console.print(table)
    if summary.rejected and rejections is not None:
        console.print(f"Rejected rows are in {rejections}")
    elif summary.rejected:
        console.print("Run again with --rejections FILE to get the rejected rows")


def _text(raw: BinaryIO) -> TextIO:
    # UTF-8, a BOM skipped; undecodable bytes become U+FFFD, so such a row is rejected like
    # any other malformed number instead of stopping the import.
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


@contextmanager
def _rejections_file(path: Path | None) -> Iterator[OnRejection | None]:
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as stream:
        yield _writer(stream)


def _writer(stream: TextIO) -> OnRejection:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(REJECTION_COLUMNS)

    def write(row: RowRejection) -> None:
        writer.writerow(spreadsheet.row(row))

    return write


@contextmanager
def _progress(console: Console) -> Iterator[Progress]:
    with Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[rows]:>12,} rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        yield progress
