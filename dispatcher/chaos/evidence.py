"""What happened: the database against the SMSC's record, and one trial's result."""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from campaigns import audit
from campaigns.models import Message, MessageStatus
from dispatcher.chaos.trial import Fault, Trial
from dispatcher.db import make_engine
from dispatcher.smsc.simulator import read_record


@dataclass(frozen=True)
class Row:
    """One message of the campaign at the end."""

    msisdn: str
    status: str
    doubt: str | None
    claimed_by: int | None


@dataclass(frozen=True)
class Evidence:
    """The database against the SMSC's record."""

    rows: dict[int, Row]
    accepted: Counter[str]  # destination -> accepted by the SMSC
    audit_problem: str | None = None  # the audit chain's first break, if any

    def times_accepted(self, message_id: int) -> int:
        """How many times the SMSC accepted that message's destination."""
        return self.accepted[self.rows[message_id].msisdn.lstrip("+")]

    @property
    def sent_twice(self) -> list[int]:
        """Messages whose destination the SMSC accepted more than once, not in doubt."""
        return [m for m, r in self.rows.items() if r.doubt is None and self.times_accepted(m) > 1]

    @property
    def lost(self) -> list[int]:
        """Messages never accepted, not in doubt and not refused by the SMSC."""
        return [
            m
            for m, r in self.rows.items()
            if r.doubt is None and r.status != MessageStatus.FAILED and not self.times_accepted(m)
        ]

    @property
    def in_doubt(self) -> list[int]:
        """Messages with a doubt."""
        return [m for m, r in self.rows.items() if r.doubt is not None]

    @property
    def no_receipt(self) -> list[int]:
        """Accepted, not in doubt, and `unknown`: no receipt was stored before the timeout."""
        return [
            m
            for m, r in self.rows.items()
            if r.doubt is None and r.status == MessageStatus.UNKNOWN and self.times_accepted(m)
        ]

    @property
    def doubts(self) -> Counter[str]:
        """In-doubt messages by reason."""
        return Counter(r.doubt for r in self.rows.values() if r.doubt is not None)

    def in_doubt_by_worker(self) -> Counter[int | None]:
        """In-doubt messages by the worker that held them (one bind per worker)."""
        return Counter(r.claimed_by for r in self.rows.values() if r.doubt is not None)

    @property
    def by_status(self) -> dict[str, int]:
        """Messages by status, from the database."""
        return dict(Counter(r.status for r in self.rows.values()))

    @property
    def strangers(self) -> int:
        """Destinations the SMSC accepted that are no message of the campaign."""
        ours = {r.msisdn.lstrip("+") for r in self.rows.values()}
        return sum(1 for destination in self.accepted if destination not in ours)


def examine(database_url: str, campaign_id: int, record: Path) -> Evidence:
    """Every message of the campaign, and what the SMSC recorded."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                select(
                    col(Message.id),
                    col(Message.msisdn),
                    col(Message.status),
                    col(Message.doubt),
                    col(Message.claimed_by),
                ).where(col(Message.campaign_id) == campaign_id)
            ).all()
        with Session(engine) as session:
            verification = audit.verify(session=session)
    finally:
        engine.dispose()
    rows = {
        mid: Row(msisdn, str(status), doubt, claimed_by)
        for mid, msisdn, status, doubt, claimed_by in found
        if mid is not None
    }
    return Evidence(rows, read_record(record), verification.problem)


@dataclass
class Result:
    """One row of the table."""

    fault: Fault
    skipped: str | None = None
    error: str | None = None
    report: dict[str, Any] | None = None
    seconds: float | None = None  # from the fault to the campaign completed
    evidence: Evidence | None = None
    trial: Trial | None = None

    @property
    def ok(self) -> bool:
        """Completed with nothing sent twice and nothing lost (or skipped)."""
        if self.skipped:
            return True
        if self.error or self.evidence is None or self.report is None:
            return False
        return (
            self.report["status"] == "completed"
            and not self.evidence.sent_twice
            and not self.evidence.lost
            and self.evidence.audit_problem is None
        )
