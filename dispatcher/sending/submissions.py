"""What a bind is handed (messages with their content) and what it hands back (answers)."""

import math
import time
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Part:
    """One submit_sm worth of a message."""

    data_coding: int
    esm_class: int
    short_message: bytes


@dataclass(frozen=True, slots=True)
class Content:
    """What every message of a campaign carries."""

    campaign_id: int
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    parts: tuple[Part, ...]
    validity_period: str = ""  # SMPP absolute time; empty: the SMSC's default
    expires_at: float = math.inf  # epoch seconds after which nothing more is submitted
    urgent: bool = False


@dataclass(slots=True, eq=False)
class Submission:
    """One message in a bind's hands, from the claim to its last answer."""

    message_id: int
    msisdn: str
    content: Content
    order: int = 0  # arrival order on the bind: older first within a priority
    attempts: int = 0  # the most submit_sm answered for one of its parts
    last_status: int | None = None
    first_try: float = 0.0  # time.monotonic() of its first submit_sm
    tries: dict[int, int] = field(default_factory=dict)  # part → submit_sm answered
    accepted: int = 0  # parts the SMSC took
    started: bool = False  # a part was written: it cannot simply go back to the queue
    done: bool = False
    trail: "list[Answer]" = field(default_factory=list)  # what was heard of it, in order

    @property
    def priority(self) -> int:
        """Lower goes first: urgent campaigns before normal ones."""
        return 0 if self.content.urgent else 1


class Outcome(StrEnum):
    """What became of a message (or of one part, for ACCEPTED)."""

    ACCEPTED = "accepted"  # the SMSC took a part and gave its id
    FAILED = "failed"  # refused for good, or temporary errors ran out of attempts or time
    SKIPPED = "skipped"  # never written: its campaign was cancelled, paused or expired
    RETURNED = "returned"  # never written: back to the queue (a stop, a link or session lost)
    IN_DOUBT = "in_doubt"  # written and never answered: it may or may not have reached the SMSC
    RESENT = "resent"  # written, never answered, written again: it may arrive twice


@dataclass(frozen=True, slots=True)
class Answer:
    """One thing a bind learnt about a message, to be stored."""

    message_id: int
    outcome: Outcome
    part_no: int = 0
    smsc_message_id: str | None = None
    command_status: int | None = None
    attempts: int = 0
    final: bool = True  # for ACCEPTED: the message's last part, so it is now submitted
    reason: str | None = None  # SKIPPED: cancelled/paused/expired; IN_DOUBT, RESENT: why
    at: float = field(default_factory=time.time)
    account: str = ""  # the SMSC account that answered: its ids are compared among its own
