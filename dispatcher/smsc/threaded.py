"""The SMSC simulator on its own event loop in a daemon thread, for tests of sync code."""

import asyncio
import concurrent.futures
import dataclasses
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

from dispatcher.smsc.config import Faults, SimulatorConfig, SimulatorStats
from dispatcher.smsc.simulator import Simulator

__all__ = ["ThreadedSimulator", "serve_in_thread"]

_T = TypeVar("_T")
_CALL_TIMEOUT = 10.0


class ThreadedSimulator:
    """A simulator on its own event loop in a daemon thread, for tests of sync code.

    Its fault methods (`set_faults`, `stall`, `resume`, `drop_connections`) may be called from
    any thread: they run on the simulator's loop and return once done there.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self.simulator = Simulator(config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="smsc-simulator", daemon=True)
        self._port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def start(self) -> None:
        """Start the thread and the simulator on it; raise what the simulator's start raised."""
        self._thread.start()
        try:
            future = asyncio.run_coroutine_threadsafe(self.simulator.start(), self._loop)
            future.result(_CALL_TIMEOUT)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_CALL_TIMEOUT)
            raise
        self._port = self.simulator.port

    @property
    def port(self) -> int:
        """The port actually listened on."""
        return self._port

    @property
    def stats(self) -> SimulatorStats:
        """The live counters (updated by the simulator thread)."""
        return self.simulator.stats

    @property
    def faults(self) -> Faults:
        """The faults in force; read them here, change them with `set_faults`."""
        return self.simulator.faults

    def _call(self, function: Callable[[], _T]) -> _T:
        """Run `function` on the simulator's loop and return its result here."""
        if not self._thread.is_alive() or threading.current_thread() is self._thread:
            return function()  # no loop to race with, or already on it
        result: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(function())
            except BaseException as error:
                result.set_exception(error)

        self._loop.call_soon_threadsafe(run)
        return result.result(_CALL_TIMEOUT)

    def set_faults(self, **changes: Any) -> None:
        """Change faults (Faults field names) at once; ValueError leaves them all unchanged."""
        dataclasses.replace(self.simulator.faults, **changes)  # validates them together

        def apply() -> None:
            for name, value in changes.items():
                setattr(self.simulator.faults, name, value)

        self._call(apply)

    def stall(self) -> None:
        """Read nothing and answer nothing on any session until `resume()`."""
        self._call(self.simulator.stall)

    def resume(self) -> None:
        """End a stall."""
        self._call(self.simulator.resume)

    def drop_connections(self) -> int:
        """Abort every ESME connection now; the number aborted."""
        return self._call(self.simulator.drop_connections)

    def stop(self) -> None:
        """Stop the simulator and its thread; safe to call twice."""
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self.simulator.stop(), self._loop)
        try:
            future.result(_CALL_TIMEOUT)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_CALL_TIMEOUT)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve_in_thread(config: SimulatorConfig) -> ThreadedSimulator:
    """Start a simulator in a daemon thread; call `.stop()` (or use `with`) when done."""
    threaded = ThreadedSimulator(config)
    threaded.start()
    return threaded
