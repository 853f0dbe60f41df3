"""Failed authentication per client address: too many in a minute and the address must wait.

Kept in each API process's memory, not in Redis: a token is 256 random bits, so the limit is
not what stops guessing; it keeps a prober from flooding the database and the log, and it must
keep working when Redis is away (authentication does not otherwise need Redis). With N API
processes an address gets at most N times the limit, which is still negligible against 2^256.

While an address is over the limit every request from it is answered 429 with `Retry-After`,
before its token is looked up. The audit log gets at most two entries per address and minute
(`auth.failed` at the first failure of a minute, with the count of its previous minute, and
`auth.blocked` when the limit is reached), never one per failure.
"""

import math
import threading
import time
from dataclasses import dataclass
from typing import Final

WINDOW_SECONDS: Final = 60.0
MAX_ADDRESSES: Final = 100_000  # beyond this, finished windows are forgotten


@dataclass
class _Window:
    started: float
    failures: int = 0


@dataclass(frozen=True)
class AuditNote:
    """An aggregate audit entry to write: its action and details."""

    action: str
    details: dict[str, object]


class FailedAuth:
    """Failures per client address in fixed one-minute windows; safe from any thread."""

    def __init__(self, limit: int, window: float = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str, now: float | None = None) -> int | None:
        """Seconds the address must still wait, or None if it may try."""
        now = time.monotonic() if now is None else now
        with self._lock:
            found = self._windows.get(address)
            if found is None or found.failures < self.limit:
                return None
            left = found.started + self.window - now
        return math.ceil(left) if left > 0 else None

    def failed(self, address: str, now: float | None = None) -> list[AuditNote]:
        """Count one failure; return the audit entries it calls for (usually none)."""
        now = time.monotonic() if now is None else now
        notes: list[AuditNote] = []
        with self._lock:
            found = self._windows.get(address)
            if found is None or now - found.started >= self.window:
                previous = found.failures if found is not None else 0
                found = self._windows[address] = _Window(now)
                notes.append(
                    AuditNote(
                        "auth.failed", {"address": address, "previous_minute_failures": previous}
                    )
                )
                self._forget(now)
            found.failures += 1
            if found.failures == self.limit:
                wait = math.ceil(found.started + self.window - now)
                notes.append(
                    AuditNote(
                        "auth.blocked",
                        {"address": address, "failures": found.failures, "retry_after": wait},
                    )
                )
        return notes

    def _forget(self, now: float) -> None:
        if len(self._windows) <= MAX_ADDRESSES:
            return
        for address in [a for a, w in self._windows.items() if now - w.started >= self.window]:
            del self._windows[address]
