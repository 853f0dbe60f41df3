"""What metrics add to each message's CPU, timed in a loop; not a test: a probe.

    .venv/bin/python -m tests.metrics_cost

Per message a worker observes one submit latency, counts one receipt and observes one delivery
latency; once a second per bind the publisher turns the bind's counters into metrics.
"""

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from dispatcher.sending import metrics
from dispatcher.sending.accounts import Pacer
from dispatcher.sending.bind import BindSession
from dispatcher.sending.matching import ReceiptMatcher
from dispatcher.settings import AccountSettings
from dispatcher.watching.publisher import Publisher

N = 200_000


def per_call(work: Callable[[], None], calls: int) -> float:
    """CPU µs per call of the loop `work` runs."""
    started = time.process_time()
    work()
    return (time.process_time() - started) / calls * 1e6


def main() -> None:
    """Print the cost of each hook and of a publisher tick."""
    observe = metrics.submit_latency("smsc1")
    counters: Counter[str] = Counter()
    at = datetime.now(UTC)
    sent = [at - timedelta(seconds=0.3)] * 500

    def latencies() -> None:
        for _ in range(N):
            observe(0.0012)

    def receipts() -> None:
        for _ in range(N):
            counters["receipt:delivered"] += 1

    def deliveries() -> None:
        for _ in range(N // 500):
            metrics.delivered(at, sent)

    costs = [per_call(latencies, N), per_call(receipts, N), per_call(deliveries, N)]
    print(
        f"submit latency {costs[0]:.2f} µs, receipt count {costs[1]:.2f} µs, "
        f"delivery latency {costs[2]:.2f} µs: {sum(costs):.2f} µs per message"
    )
    bind = BindSession(
        AccountSettings(),
        pacer=Pacer(None),
        on_answers=lambda answers: None,
        on_receipt=lambda receipt, ack: None,
        name="smsc1#0",
    )
    publisher = Publisher(
        redis=None,  # type: ignore[arg-type]  (tick() does not write)
        namespace="probe",
        binds=lambda: [bind],
        matcher=ReceiptMatcher(engine=None),  # type: ignore[arg-type]
        worker_id=lambda: 1,
    )

    def ticks() -> None:
        for _ in range(2000):
            for key in ("status:ESME_ROK", "receipt:delivered", "status:ESME_RTHROTTLED"):
                bind.counters[key] += 3000
            publisher.tick()

    print(f"publisher tick, one bind: {per_call(ticks, 2000):.0f} µs per second")


if __name__ == "__main__":
    main()
