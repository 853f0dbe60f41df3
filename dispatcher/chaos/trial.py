"""What a chaos trial is: its settings, the campaign under one fault, and the fault."""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dispatcher import demo as flow
from dispatcher.smsc.simulator import read_record
from dispatcher.stack import Stack


@dataclass(frozen=True)
class ChaosSettings:
    """How each trial's campaign runs."""

    messages: int = 20_000
    workers: int = 2
    rate: float = 1000.0  # submits/s of the account, all binds together
    window: int = 100
    receipt_timeout: float = 30.0
    smsc_latency: float = 0.02  # seconds the simulator takes to answer a submit_sm
    receipt_delay: float = 0.5  # seconds from its answer to the delivery receipt
    fault_at: float = 1 / 3  # fraction of the messages the SMSC accepted before the fault
    timeout: float = 600.0  # seconds from the fault to completion before giving up
    redis_outage: float = 2.0  # seconds the restarted Redis stays away
    queue_name: str = "dispatcher"
    environment: dict[str, str] = field(default_factory=dict)  # more DISPATCHER_* settings

    def describe(self) -> str:
        """The settings as one line."""
        return (
            f"{self.messages:,} messages per campaign, {self.workers} workers (one bind each), "
            f"rate {self.rate:g}/s, window {self.window}, receipt timeout "
            f"{self.receipt_timeout:g} s, SMSC latency {self.smsc_latency:g} s and receipts "
            f"after {self.receipt_delay:g} s, fault after {self.fault_at:.0%} accepted, "
            f"Redis outage {self.redis_outage:g} s"
            + "".join(f", {key}={value}" for key, value in sorted(self.environment.items()))
        )


@dataclass
class DeadWorker:
    """What a killed worker held when it died."""

    worker_id: int
    held: dict[int, str]  # message id -> msisdn, `submitting` and claimed by it
    noted: set[int] | None  # its write-ahead log: what it may have written (None: lost)

    @property
    def never_written(self) -> dict[int, str]:
        """Held and not in its write-ahead log: never reached the SMSC, to be sent by another."""
        noted = self.noted or set()
        return {mid: msisdn for mid, msisdn in self.held.items() if mid not in noted}


@dataclass
class Trial:
    """One campaign under one fault, while it runs."""

    stack: Stack
    api: httpx.Client
    seeded: flow.Seeded
    campaign_id: int
    record: Path
    settings: ChaosSettings
    fault_time: float = 0.0  # time.monotonic() when the fault was injected
    notes: list[str] = field(default_factory=list)
    milestones: dict[str, Callable[[], bool]] = field(default_factory=dict)
    reached: dict[str, float] = field(default_factory=dict)  # milestone -> seconds after fault
    dead: DeadWorker | None = None
    stopped_exit_code: int | None = None
    watched_pids: dict[str, int] = field(default_factory=dict)  # must outlive the fault
    api_statuses: Counter[str] = field(default_factory=Counter)  # during an outage
    accepted_before: Counter[str] | None = None  # what a killed SMSC had accepted
    accepted_while_away: int | None = None  # submits the SMSC accepted during an outage

    @property
    def database_url(self) -> str:
        """The trial's database."""
        return self.stack.settings.effective_database_url

    def accepted(self) -> Counter[str]:
        """Destination (E.164 without +) -> messages the SMSC accepted, across restarts."""
        return read_record(self.record)

    def accepted_count(self) -> int:
        """Submits the SMSC accepted so far (0 before its record exists)."""
        try:
            return sum(self.accepted().values())
        except FileNotFoundError:
            return 0

    def note(self, line: str) -> None:
        """Something the fault observed, shown in the table."""
        self.notes.append(line)


@dataclass(frozen=True)
class Fault:
    """A fault: its name on the command line, its title in the table, how to inject it."""

    name: str
    title: str
    inject: Callable[[Trial], None]
    needs_postgres: bool = False
    owns_redis: bool = False  # restarts Redis: only ever the stack's own embedded one
