"""Fault injection: one campaign per fault, checked against what the SMSC says it accepted.

Each trial starts a stack of its own (the simulator as a child process with `--record`, the
API, N worker processes), seeds the demo's authority and subscribers, runs a campaign through
the HTTP API, injects one fault once the SMSC has accepted about a third of the messages, waits
for the campaign to complete and then compares the database with the simulator's record:

- sent twice: destinations the SMSC accepted more than once that are not marked in doubt;
- lost: messages the SMSC never accepted that are not in doubt and were not refused (`failed`);
- in doubt: messages with a `doubt`, which the dispatcher owns up to.

The faults are plain functions of a `Trial` so that `dispatcher chaos` and tests/test_faults.py
inject them with one code.
"""

from dispatcher.chaos.evidence import Evidence, Result, Row, examine
from dispatcher.chaos.faults import AFTER, BY_NAME, FAULTS, is_postgres
from dispatcher.chaos.runner import main, run_all, run_trial
from dispatcher.chaos.trial import ChaosSettings, DeadWorker, Fault, Trial

__all__ = [
    "AFTER",
    "BY_NAME",
    "FAULTS",
    "ChaosSettings",
    "DeadWorker",
    "Evidence",
    "Fault",
    "Result",
    "Row",
    "Trial",
    "examine",
    "is_postgres",
    "main",
    "run_all",
    "run_trial",
]
