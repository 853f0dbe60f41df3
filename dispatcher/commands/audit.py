"""`dispatcher audit`: check the audit log."""

import typer
from sqlmodel import Session

from campaigns import audit
from dispatcher.db import get_engine

app = typer.Typer(help="The audit log.", no_args_is_help=True)


@app.command()
def verify() -> None:
    """Recompute the audit log's hash chain; exit 1 if it was altered."""
    with Session(get_engine()) as session:
        result = audit.verify(session=session)
    if not result.ok:
        typer.echo(f"audit log broken: {result.problem}", err=True)
        raise typer.Exit(1)
    typer.echo(f"audit log intact: {result.entries} entries")
