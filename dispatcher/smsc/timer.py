"""A timer releasing items a fixed delay after they were pushed, for the simulator's event loop."""

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["FifoTimer"]

_T = TypeVar("_T")


class FifoTimer(Generic[_T]):
    """Releases items a fixed delay after they were pushed, in order, on one timer handle."""

    def __init__(
        self,
        delay: float,
        release: Callable[[_T], None],
        after: Callable[[], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.delay = delay
        self._release = release
        self._after = after
        self._items: deque[tuple[float, _T]] = deque()
        self._handle: asyncio.TimerHandle | None = None

    def push(self, item: _T) -> None:
        """Release `item` `delay` seconds from now, after every item pushed before it."""
        due = self._loop.time() + self.delay
        self._items.append((due, item))
        if self._handle is None:
            self._handle = self._loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._handle = None
        limit = self._loop.time() + 0.001
        items = self._items
        while items and items[0][0] <= limit:
            self._release(items.popleft()[1])
        self._after()
        if items:
            self._handle = self._loop.call_at(items[0][0], self._fire)

    def cancel(self) -> None:
        """Drop every item not yet released."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._items.clear()
