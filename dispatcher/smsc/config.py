"""What the SMSC simulator is told (configuration, faults) and what it counts (statistics)."""

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dispatcher.smsc import pdu
from dispatcher.smsc.receipt_styles import ID_STYLES, PER_MESSAGE

__all__ = ["NO_ANSWER", "OUTCOMES", "Faults", "SimulatorConfig", "SimulatorStats", "read_stats"]

OUTCOMES = tuple(pdu.MESSAGE_STATES)
NO_ANSWER = -1  # what `Simulator.submit_fault` returns for a submit_sm to swallow


def _fraction(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a fraction between 0 and 1, not {value!r}")
    return float(value)


def _errors(value: Mapping[int, float]) -> Mapping[int, float]:
    errors: dict[int, float] = {}
    for status, fraction in value.items():
        if not 0 < int(status) <= 0xFFFFFFFF:
            raise ValueError(f"error status must be a non-zero command_status, not {status!r}")
        errors[int(status)] = _fraction(f"error fraction of 0x{int(status):02x}", fraction)
    return MappingProxyType(errors)


@dataclass
class Faults:
    """The faults a simulator injects, changeable while it runs (on its event loop).

    `errors` maps a command_status to the fraction of submit_sm answered with it, `no_answer`
    is the fraction of submit_sm never answered; one draw per submit_sm decides between them.
    `errors` is read-only: assign a new mapping to change it. From another thread use
    `ThreadedSimulator.set_faults`, `stall`, `resume` instead of assigning here.
    """

    errors: Mapping[int, float] = field(default_factory=dict)
    no_answer: float = 0.0
    ignore_enquire_link: bool = False
    vendor_pdu_every: int = 0  # after every N accepted submits on a session, a vendor PDU
    stalled: bool = False  # read nothing, answer nothing, keep the connections open

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "errors":
            value = _errors(value)
            self._check_total(value, getattr(self, "no_answer", 0.0))
        elif name == "no_answer":
            value = _fraction("no_answer", value)
            self._check_total(getattr(self, "errors", {}), value)
        elif name == "vendor_pdu_every" and value < 0:
            raise ValueError("vendor_pdu_every must be >= 0 (0: never)")
        elif name in ("ignore_enquire_link", "stalled"):
            value = bool(value)
        object.__setattr__(self, name, value)
        listener: Callable[[], None] | None = self.__dict__.get("_listener")
        if listener is not None:
            listener()

    @staticmethod
    def _check_total(errors: Mapping[int, float], no_answer: float) -> None:
        if sum(errors.values()) + no_answer > 1.0 + 1e-9:
            raise ValueError("error fractions and no_answer add up to more than 1")

    def watch(self, listener: Callable[[], None] | None) -> None:
        """Call `listener` after every change (the simulator owning these faults)."""
        self.__dict__["_listener"] = listener

    @property
    def submit_draws(self) -> tuple[tuple[float, int], ...]:
        """Cumulative thresholds for one uniform draw: (upper bound, NO_ANSWER or status)."""
        draws: list[tuple[float, int]] = []
        total = 0.0
        if self.no_answer:
            total += self.no_answer
            draws.append((total, NO_ANSWER))
        for status, fraction in sorted(self.errors.items()):
            if fraction:
                total += fraction
                draws.append((total, status))
        return tuple(draws)


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulated SMSC listens, authenticates, answers, records and fails."""

    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str | None = None
    password: str | None = None
    receipt_delay: float = 0.0
    outcomes: Mapping[str, float] = field(default_factory=lambda: {"DELIVRD": 1.0})
    max_rate: float | None = None  # submits/s per system_id, all its sessions together
    burst: float | None = None  # the rate bucket's capacity; default max(1, max_rate / 10)
    max_sessions: int | None = None  # live binds per system_id
    latency: float = 0.0
    answer_unbind: bool = True
    seed: int | None = None
    keep_messages: int = 0  # how many accepted submit_sm to keep in `Simulator.accepted`
    record: str | Path | None = None  # append every accepted submit_sm to this file
    stats_file: str | Path | None = None  # SimulatorStats as JSON, rewritten every 0.5 s
    # The initial faults (see Faults).
    errors: Mapping[int, float] = field(default_factory=dict)
    no_answer: float = 0.0
    ignore_enquire_link: bool = False
    vendor_pdu_every: int = 0
    stalled: bool = False
    # How ids are written and receipts sent (see receipt_styles).
    submit_ids: str = "dec"  # the id's style in submit_sm_resp: one of ID_STYLES
    receipt_ids: str | None = None  # its style in receipts; None: as submit_ids
    receipt_tlvs: bool = True  # False: receipts carry only the text
    late_receipts: float = 0.0  # fraction of receipts sent late_delay seconds later
    late_delay: float = 0.0
    repeat_receipts: float = 0.0  # fraction of receipts sent twice, REPEAT_GAP apart
    receipt_per_message: str | None = None  # "first"/"last": one receipt per whole message

    def __post_init__(self) -> None:
        unknown = set(self.outcomes) - set(OUTCOMES)
        if unknown:
            raise ValueError(f"unknown outcomes {sorted(unknown)}; use {', '.join(OUTCOMES)}")
        if any(weight < 0 for weight in self.outcomes.values()) or not any(
            weight > 0 for weight in self.outcomes.values()
        ):
            raise ValueError("outcome weights must be >= 0 with at least one > 0")
        if self.receipt_delay < 0 or self.latency < 0:
            raise ValueError("receipt_delay and latency must be >= 0")
        if self.max_rate is not None and self.max_rate <= 0:
            raise ValueError("max_rate must be > 0 (or None for no limit)")
        if self.burst is not None and (self.max_rate is None or self.burst < 1):
            raise ValueError("burst needs a max_rate and must be >= 1")
        if self.max_sessions is not None and self.max_sessions < 1:
            raise ValueError("max_sessions must be >= 1 (or None for no limit)")
        self._check_receipt_style()
        self.faults()  # validates them

    def _check_receipt_style(self) -> None:
        styles = ", ".join(ID_STYLES)
        for name, style in (("submit_ids", self.submit_ids), ("receipt_ids", self.receipt_ids)):
            if style is not None and style not in ID_STYLES:
                raise ValueError(f"{name} must be one of {styles}, not {style!r}")
        _fraction("late_receipts", self.late_receipts)
        _fraction("repeat_receipts", self.repeat_receipts)
        if self.late_delay < 0:
            raise ValueError(f"late_delay must be >= 0 seconds, not {self.late_delay!r}")
        if self.receipt_per_message is not None and self.receipt_per_message not in PER_MESSAGE:
            raise ValueError(
                f"receipt_per_message must be first, last or None, not {self.receipt_per_message!r}"
            )

    @property
    def effective_burst(self) -> float:
        """The rate bucket's capacity: `burst`, or a tenth of a second's worth (at least 1)."""
        if self.burst is not None:
            return self.burst
        return max(1.0, (self.max_rate or 0.0) / 10)

    def faults(self) -> Faults:
        """A new Faults object holding the configured faults."""
        return Faults(
            errors=self.errors,
            no_answer=self.no_answer,
            ignore_enquire_link=self.ignore_enquire_link,
            vendor_pdu_every=self.vendor_pdu_every,
            stalled=self.stalled,
        )


@dataclass
class SimulatorStats:
    """Counters since the simulator was created; `submits` counts accepted submit_sm only."""

    binds: int = 0
    bind_failures: int = 0  # refused binds, sessions_refused included
    sessions_refused: int = 0  # binds refused because max_sessions were bound
    sessions_bound: int = 0  # bound sessions now (not a counter)
    submits: int = 0
    rejected: int = 0
    throttled: int = 0
    errors: dict[int, int] = field(default_factory=dict)  # injected error status -> submit_sm
    unanswered: int = 0  # submit_sm swallowed by the no_answer fault
    receipts_sent: int = 0
    receipts_acked: int = 0
    receipts_nacked: int = 0
    receipts_late: int = 0  # sent late_delay seconds after the others
    receipts_repeated: int = 0  # sent a second time
    enquire_links: int = 0  # answered
    enquire_links_ignored: int = 0
    unbinds: int = 0
    generic_nacks: int = 0  # sent
    vendor_pdus_sent: int = 0
    generic_nacks_received: int = 0  # answering a vendor PDU
    connections_dropped: int = 0  # by drop_connections()
    last_submit: float = 0.0  # time.monotonic() of the last accepted submit_sm

    def to_json(self) -> str:
        """The counters as one JSON object (error statuses as decimal strings)."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "SimulatorStats":
        """Counters written by `to_json`; unknown keys are ignored."""
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in names}
        values["errors"] = {int(status): count for status, count in data.get("errors", {}).items()}
        return cls(**values)


def read_stats(path: str | os.PathLike[str]) -> SimulatorStats:
    """The statistics a simulator started with `stats_file=path` wrote last."""
    return SimulatorStats.from_json(Path(path).read_text())
