"""Benchmark of the registry import: `python -m dispatcher.import_bench --rows 2000000`.

Generates a synthetic registry in a child process (so neither its time nor its memory is
counted), imports it into the configured database (DISPATCHER_DATABASE_URL; without one, a
fresh SQLite file under --var-dir), then imports it again to show that a re-import changes
nothing. Prints rows/s and the peak memory of this process.

The subscriber table must be empty to start with; --wipe empties it first. Use a scratch
database: the run leaves 2 million synthetic subscribers in it.
"""

import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import delete, func, select
from sqlmodel import Session

from campaigns.models import Subscriber
from dispatcher import migrate
from dispatcher.commands.subscribers import import_file, print_summary
from dispatcher.db import make_engine
from dispatcher.settings import get_settings


def main(
    rows: Annotated[int, typer.Option(min=1, help="Rows of the generated registry")] = 2_000_000,
    wipe: Annotated[bool, typer.Option(help="Delete every subscriber first")] = False,
    var_dir: Annotated[Path, typer.Option(help="Where the files go")] = Path("var/import-bench"),
) -> None:
    """Generate a registry, import it twice, print the rates and the peak memory."""
    console = Console()
    var_dir.mkdir(parents=True, exist_ok=True)
    url = get_settings().database_url
    if url is None:
        (var_dir / "bench.db").unlink(missing_ok=True)
        url = f"sqlite:///{(var_dir / 'bench.db').resolve()}"
    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        if wipe:
            session.execute(delete(Subscriber))
            session.commit()
        elif session.execute(select(func.count()).select_from(Subscriber)).scalar_one():
            console.print("[red]The subscriber table is not empty: use a scratch database, --wipe")
            raise typer.Exit(2)
    registry = var_dir / "registry.csv"
    shown = engine.url.render_as_string(hide_password=True)
    console.print(f"[bold]Import benchmark[/]: {rows:,} rows into {shown}")
    _generate(registry, rows, console)
    runs = []
    for name in ("First import", "Re-import"):
        console.rule(name)
        summary, seconds = import_file(registry, var_dir / "rejections.csv", console, engine=engine)
        print_summary(console, summary, seconds, var_dir / "rejections.csv")
        runs.append((name, summary.read / seconds, summary.inserted, summary.updated))
    engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    console.rule("Result")
    for name, rate, inserted, updated in runs:
        console.print(f"{name}: {rate:,.0f} rows/s ({inserted:,} inserted, {updated:,} updated)")
    console.print(f"Peak memory of the importing process: {peak:,.0f} MB")
    if runs[1][2:] != (0, 0):
        console.print("[red]The re-import changed the registry")
        raise typer.Exit(1)


def _generate(path: Path, rows: int, console: Console) -> None:
    started = time.perf_counter()
    command = [sys.executable, "-m", "dispatcher", "subscribers", "generate"]
    subprocess.run([*command, "--count", str(rows), "--out", str(path)], check=True)
    seconds = time.perf_counter() - started
    size = path.stat().st_size / 1e6
    console.print(f"Generated {path} ({size:,.0f} MB) in {seconds:.1f} s, not counted below")


if __name__ == "__main__":
    typer.run(main)
