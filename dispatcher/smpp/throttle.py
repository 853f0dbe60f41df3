"""A token bucket: at most `rate` events per second, with a small burst allowance."""

import time


class TokenBucket:
    """Rate limit for one bind; `rate` 0 means unlimited."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate / 10)
        self._tokens = self.capacity
        self._stamp = time.monotonic()

    def take(self) -> bool:
        """Consume one token if one is available."""
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until the next token is due."""
        if self.rate <= 0 or self._tokens >= 1:
            return 0.0
        return (1 - self._tokens) / self.rate
