"""The chaos table and each trial's notes, for the console."""

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from dispatcher.chaos.evidence import Result
from dispatcher.chaos.trial import ChaosSettings


def notes(result: Result) -> list[str]:
    """What a trial observed beyond the counts."""
    found = list(result.trial.notes) if result.trial else []
    if result.trial:
        reached = result.trial.reached
        found += [f"{name} {seconds:.1f} s after the fault" for name, seconds in reached.items()]
        found += [f"{name}: never" for name in result.trial.milestones if name not in reached]
    if result.evidence is not None and result.evidence.doubts:
        doubts = result.evidence.doubts
        found.append("in doubt: " + ", ".join(f"{k} {v}" for k, v in sorted(doubts.items())))
    if result.evidence is not None and result.evidence.no_receipt:
        found.append(
            f"{len(result.evidence.no_receipt)} accepted once but no receipt stored "
            "(unknown at the receipt timeout)"
        )
    if result.evidence is not None and result.evidence.audit_problem:
        found.append(f"[red]audit chain broken: {result.evidence.audit_problem}[/]")
    if result.error:
        found.append(f"[red]{result.error}[/]")
    return found


def table(results: Sequence[Result]) -> Table:
    """The results as a table, one row per fault."""
    out = Table(title="Faults injected mid-campaign")
    out.add_column("fault")
    for name in ("sent twice", "lost", "in doubt", "s to complete"):
        out.add_column(name, justify="right")
    out.add_column("final counts by status")
    for result in results:
        title = result.fault.title
        if result.skipped:
            out.add_row(title, "—", "—", "—", "—", result.skipped)
            continue
        evidence, report = result.evidence, result.report
        counts = report["by_status"] if report else (evidence.by_status if evidence else {})
        status = report["status"] if report else "not final"
        bad = "[red]" if not result.ok else ""
        out.add_row(
            f"{bad}{title}",
            f"{bad}{len(evidence.sent_twice)}" if evidence else "?",
            f"{bad}{len(evidence.lost)}" if evidence else "?",
            str(len(evidence.in_doubt)) if evidence else "?",
            f"{result.seconds:.1f}" if result.seconds is not None else "—",
            f"{status}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())),
        )
    return out


def print_results(console: Console, results: Sequence[Result], settings: ChaosSettings) -> None:
    """The table, then each fault's notes, then the settings."""
    console.print(table(results))
    for result in results:
        found = notes(result)
        if found:
            console.print(f"{result.fault.title}: " + "; ".join(found))
    console.print(f"Settings: {settings.describe()}")
