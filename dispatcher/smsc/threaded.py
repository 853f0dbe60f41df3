"""The SMSC simulator on its own event loop in a daemon thread, for tests of sync code."""

import asyncio
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from dispatcher.smsc.simulator import SimulatorConfig, SimulatorStats


class ThreadedSimulator:
    """A simulator on its own event loop in a daemon thread, for tests of sync code."""

    def __init__(self, config: "SimulatorConfig") -> None:
        # Imported here because simulator.py re-exports this module's names.
        from dispatcher.smsc.simulator import Simulator

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
            asyncio.run_coroutine_threadsafe(self.simulator.start(), self._loop).result(10.0)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
            raise
        self._port = self.simulator.port

    @property
    def port(self) -> int:
        """The port actually listened on."""
        return self._port

    @property
    def stats(self) -> "SimulatorStats":
        """The live counters (updated by the simulator thread)."""
        return self.simulator.stats

    def stop(self) -> None:
        """Stop the simulator and its thread; safe to call twice."""
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self.simulator.stop(), self._loop)
        try:
            future.result(10.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve_in_thread(config: "SimulatorConfig") -> ThreadedSimulator:
    """Start a simulator in a daemon thread; call `.stop()` (or use `with`) when done."""
    threaded = ThreadedSimulator(config)
    threaded.start()
    return threaded
