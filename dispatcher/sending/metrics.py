"""The sending engine's Prometheus metrics, in this worker's registry.

Most figures are counted on each bind's own thread in `BindSession.counters` (answers by
status, throttles, retries, receipts by state) and turned into these metrics once a second by
`dispatcher.watching.publisher`; only the two latencies are recorded where they happen. Labels
are account, bind (`account#slot`), command_status names, receipt states and retry reasons:
bounded sets, never a subscriber number.
"""

from collections.abc import Callable, Iterable
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

SUBMITS = Counter(
    "dispatcher_submits",
    "submit_sm answered by the SMSC, by command_status name",
    ["account", "bind", "command_status"],
)
RECEIPTS = Counter(
    "dispatcher_receipts", "Delivery receipts received, by final state", ["account", "state"]
)
THROTTLED = Counter(
    "dispatcher_throttled",
    "submit_sm answered ESME_RTHROTTLED or ESME_RMSGQFUL (sent again, the bind paused)",
    ["account"],
)
RETRIES = Counter(
    "dispatcher_retries",
    "Parts sent again after a temporary error, by the error's name",
    ["account", "reason"],
)
BIND_UP = Gauge("dispatcher_bind_up", "1 while the bind is bound, else 0", ["account", "bind"])
WINDOW_IN_USE = Gauge(
    "dispatcher_window_in_use", "submit_sm written and not yet answered", ["account", "bind"]
)
WINDOW_SIZE = Gauge("dispatcher_window_size", "The bind's window", ["account", "bind"])
UNMATCHED = Gauge(
    "dispatcher_receipts_unmatched",
    "Receipts stored that match no message yet (their answer not stored, or ambiguous)",
)
ABANDONED = Gauge(
    "dispatcher_receipts_abandoned",
    "Receipts given up on after DISPATCHER_UNMATCHED_RECEIPT_TTL (kept a week)",
)
SUBMIT_LATENCY = Histogram(
    "dispatcher_submit_latency_seconds",
    "From writing a submit_sm to its submit_sm_resp",
    ["account"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DELIVERY_LATENCY = Histogram(
    "dispatcher_delivery_latency_seconds",
    "From a message's submit answer to its final delivery receipt",
    buckets=(0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
)

_enabled = True


def enable(on: bool) -> None:
    """Record the latencies or not (DISPATCHER_METRICS_ENABLED); counts cost nothing extra."""
    global _enabled
    _enabled = on


def enabled() -> bool:
    """Whether metrics are recorded in this process."""
    return _enabled


def _ignore(_: float) -> None:
    return None


def submit_latency(account: str) -> Callable[[float], None]:
    """What a bind calls with each submit_sm's seconds to its answer."""
    return SUBMIT_LATENCY.labels(account).observe if _enabled else _ignore


def delivered(at: datetime, submitted: Iterable[datetime | None]) -> None:
    """Record the delivery latency of parts whose final receipt was stored at `at`."""
    if not _enabled:
        return
    for when in submitted:
        if when is not None:
            DELIVERY_LATENCY.observe(max(0.0, (at - when).total_seconds()))
