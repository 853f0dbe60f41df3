"""An SMPP 3.4 SMSC simulator for tests and benchmarks, and a client measuring its ceiling."""

from dispatcher.smsc.simulator import (
    Simulator,
    SimulatorConfig,
    SimulatorStats,
    ThreadedSimulator,
    serve_in_thread,
)

__all__ = [
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "ThreadedSimulator",
    "serve_in_thread",
]
