"""A worker's CPU by part of the sending path, from a py-spy profile (`make profile`).

`py-spy record --subprocesses --nonblocking -f raw` writes one line per distinct stack with its
sample count. This sums the worker processes' samples into the parts of the path a message
takes (start-up imports left out), each as a share of the worker's CPU and, given the CPU per
message `dispatcher bench` printed, in microseconds per message.

    python -m dispatcher.flame var/profile.raw --us 130
"""

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

# The first part whose marker is in a stack takes its samples.
PARTS = [
    ("start-up (imports)", ["_find_and_load"]),
    ("SMPP PDUs: smpplib objects", ["smpplib/"]),
    ("SMPP PDUs: fast path", ["fastpdu.py"]),
    ("write-ahead log (Redis)", ["WireLog.", "wirelog.py"]),
    ("bind thread: socket, window, answers", ["BindSession."]),
    ("claims (database)", ["claim (dispatcher/sending/claims.py"]),
    ("storing answers (database)", ["apply_answers"]),
    ("receipts: match and store (database)", ["ReceiptMatcher."]),
    ("BEGIN/COMMIT and the pool", ["Engine.begin", "do_commit", "_begin_immediate"]),
    ("feeder, campaigns, heartbeat", ["Sending.", "Feeder.", "workers.py"]),
    ("asyncio loop and thread hand-offs", ["base_events.py", "thread.py", "selectors.py"]),
]
OTHER = "other"


def summarise(raw: Path, process: str = "dispatcher worker") -> Counter[str]:
    """Samples per part, over the processes whose command line contains `process`."""
    samples: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if process not in stack or not count.isdigit():
            continue
        part = next((name for name, markers in PARTS if any(m in stack for m in markers)), OTHER)
        samples[part] += int(count)
    return samples


def main(
    raw: Annotated[Path, typer.Argument(help="py-spy's raw output")],
    us: Annotated[float, typer.Option(help="Worker CPU per message, µs (0: shares only)")] = 0,
) -> None:
    """Print each part's share of the workers' CPU (and µs per message)."""
    samples = summarise(raw)
    running = sum(n for part, n in samples.items() if part != PARTS[0][0])
    if not running:
        raise typer.BadParameter("no worker samples in this profile")
    for part in [name for name, _ in PARTS[1:]] + [OTHER]:
        share = samples[part] / running
        micro = f"  ~{us * share:4.0f} µs" if us else ""
        print(f"{part:40s} {100 * share:5.1f} %{micro}")


if __name__ == "__main__":
    typer.run(main)
