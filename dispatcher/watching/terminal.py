"""`dispatcher status`: the operator page's figures as rich tables, for an engineer on the box."""

import time
from datetime import UTC, datetime

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dispatcher.watching.snapshot import Snapshot, Watcher


def render(snapshot: Snapshot) -> RenderableType:
    """The snapshot as a group of tables, headed by its age and any source that failed."""
    age = snapshot.age()
    taken = datetime.fromtimestamp(snapshot.taken_at, UTC).strftime("%H:%M:%S UTC")
    head = Text(f"Figures as of {taken} ({age:.1f} s old)" if age != float("inf") else taken)
    if snapshot.stale():
        head.append("  STALE", style="bold white on red")
    parts: list[RenderableType] = [head]
    for source, problem in snapshot.problems.items():
        parts.append(Text(f"{source} is not answering: {problem}", style="red"))
    parts += [_accounts(snapshot), _queues(snapshot), _campaigns(snapshot)]
    return Group(*parts)


def _accounts(snapshot: Snapshot) -> Table:
    table = Table(title="SMSC accounts and binds", title_justify="left")
    for column in ("account", "bind", "worker", "state", "window", "submits/s", "last minute"):
        table.add_column(column)
    for account in snapshot.redis.accounts if snapshot.redis else []:
        contract = f"{account.contracted:.0f}" if account.contracted else "no limit"
        codes = ", ".join(f"{code} {count}" for code, count in account.answers.items())
        table.add_row(
            account.name,
            f"{account.up}/{len(account.binds)} up",
            "",
            "",
            "",
            f"{account.achieved:.0f} of {contract}",
            codes or "no errors",
        )
        for bind in account.binds:
            style = "green" if bind.state == "up" else "red"
            table.add_row(
                "",
                bind.name,
                bind.holder or "-",
                Text(bind.state, style=style),
                f"{bind.window_in_use}/{bind.window}",
                f"{bind.rate:.0f}",
                ", ".join(f"{code} {count}" for code, count in bind.answers.items()),
            )
    return table


def _queues(snapshot: Snapshot) -> Table:
    table = Table(title="Queues", title_justify="left")
    cells = []
    if snapshot.database:
        for lane, depth in snapshot.database.lanes.items():
            table.add_column(f"{lane} queue", justify="right")
            cells.append(f"{depth:,}")
        table.add_column("in doubt", justify="right")
        cells.append(f"{snapshot.database.in_doubt:,}")
    if snapshot.redis:
        table.add_column("unmatched receipts", justify="right")
        cells.append(f"{snapshot.redis.unmatched:,}")
    table.add_row(*cells)
    return table


def _campaigns(snapshot: Snapshot) -> Table:
    table = Table(title="Campaigns not yet final", title_justify="left")
    for column in ("#", "campaign", "authority", "priority", "status", "progress", "rate", "ETA"):
        table.add_column(column)
    for c in snapshot.database.campaigns if snapshot.database else []:
        title = ("[EXERCISE] " if c.exercise else "") + c.title
        progress = (
            f"{c.percent(c.delivered + c.failed):.1f}% · {c.delivered:,} delivered · "
            f"{c.failed:,} failed · {c.pending:,} pending of {c.recipients:,}"
        )
        eta = (
            "-"
            if c.eta_seconds is None
            else f"{int(c.eta_seconds // 60)} min {int(c.eta_seconds % 60)} s"
        )
        table.add_row(
            str(c.id),
            title,
            c.authority,
            c.priority,
            c.status,
            progress,
            "-" if c.rate is None else f"{c.rate:.0f}/s",
            eta,
        )
    return table


def show(watcher: Watcher, console: Console, *, once: bool, interval: float) -> None:
    """Print one snapshot (rates over `interval`), or refresh a live view until interrupted."""
    watcher.take()
    if once:
        time.sleep(interval)
        console.print(render(watcher.take()))
        return
    with Live(render(watcher.last), console=console, refresh_per_second=4) as view:
        try:
            while True:
                time.sleep(interval)
                view.update(render(watcher.take()))
        except KeyboardInterrupt:
            pass
