"""An SMPP 3.4 SMSC simulator for tests and benchmarks, and a client measuring its ceiling."""

from dispatcher.smsc.config import Faults, SimulatorConfig, SimulatorStats, read_stats
from dispatcher.smsc.record import read_record, read_record_parts
from dispatcher.smsc.simulator import Simulator
from dispatcher.smsc.threaded import ThreadedSimulator, serve_in_thread

__all__ = [
    "Faults",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "ThreadedSimulator",
    "read_record",
    "read_record_parts",
    "read_stats",
    "serve_in_thread",
]
