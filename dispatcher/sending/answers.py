"""What each SMPP command_status means for a submit_sm: throttle, retry, or fail for good.

The table is the default an operator gets; each account may override entries in
`DISPATCHER_BINDS` (`"answers": {"0x45": "permanent"}`). A code the table does not name is
temporary: retried a bounded number of times, so an unknown vendor code neither drops a warning
at once nor retries it for ever.
"""

import random
from collections.abc import Mapping
from enum import StrEnum

import smpplib.consts as consts


class Action(StrEnum):
    """What the sender does with an answer."""

    OK = "ok"
    THROTTLE = "throttle"  # the SMSC is over its limit: slow the whole bind, then send again
    TEMPORARY = "temporary"  # send again after a backoff, up to the attempts and time allowed
    PERMANENT = "permanent"  # fail the message at once, keeping the code


ESME_ROK = 0x00
ESME_RALYBND = 0x05
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
GENERIC_NACK = -1  # stands for a generic_nack answer in the table, whatever its status

# SMPP 3.4 §5.1.3; codes not named here are temporary.
DEFAULT_ACTIONS: dict[int, Action] = {
    ESME_ROK: Action.OK,
    ESME_RTHROTTLED: Action.THROTTLE,
    ESME_RMSGQFUL: Action.THROTTLE,
    0x08: Action.TEMPORARY,  # ESME_RSYSERR
    0x45: Action.TEMPORARY,  # ESME_RSUBMITFAIL
    0x64: Action.TEMPORARY,  # ESME_RX_T_APPN
    0xFF: Action.TEMPORARY,  # ESME_RUNKNOWNERR
    GENERIC_NACK: Action.TEMPORARY,
    0x01: Action.PERMANENT,  # ESME_RINVMSGLEN
    0x02: Action.PERMANENT,  # ESME_RINVCMDLEN
    0x03: Action.PERMANENT,  # ESME_RINVCMDID
    0x0A: Action.PERMANENT,  # ESME_RINVSRCADR
    0x0B: Action.PERMANENT,  # ESME_RINVDSTADR
    0x43: Action.PERMANENT,  # ESME_RINVESMCLASS
    0x48: Action.PERMANENT,  # ESME_RINVSRCTON
    0x49: Action.PERMANENT,  # ESME_RINVSRCNPI
    0x50: Action.PERMANENT,  # ESME_RINVDSTTON
    0x51: Action.PERMANENT,  # ESME_RINVDSTNPI
    0x53: Action.PERMANENT,  # ESME_RINVSYSTYP
    0x61: Action.PERMANENT,  # ESME_RINVSCHED
    0x62: Action.PERMANENT,  # ESME_RINVEXPIRY
    0x63: Action.PERMANENT,  # ESME_RINVDFTMSGID
    0x65: Action.PERMANENT,  # ESME_RX_P_APPN
    0x66: Action.PERMANENT,  # ESME_RX_R_APPN
    0xC0: Action.PERMANENT,  # ESME_RINVOPTPARSTREAM
    0xC1: Action.PERMANENT,  # ESME_ROPTPARNOTALLWD
    0xC2: Action.PERMANENT,  # ESME_RINVPARLEN
    0xC3: Action.PERMANENT,  # ESME_RMISSINGOPTPARAM
    0xC4: Action.PERMANENT,  # ESME_RINVOPTPARAMVAL
}

# A refused bind_transceiver: the credentials or the account, not the link.
BIND_REFUSALS = frozenset({0x0D, 0x0E, 0x0F})

_NAMES = {
    int(getattr(consts, name)): name.removeprefix("SMPP_")
    for name in dir(consts)
    if name.startswith("SMPP_ESME_R")
}


def status_name(status: int) -> str:
    """The SMPP name of a command_status, e.g. `ESME_RTHROTTLED`, or its hex form."""
    if status == GENERIC_NACK:
        return "generic_nack"
    return _NAMES.get(status, f"0x{status:02X}")


def parse_status(text: str) -> int:
    """A command_status written as `0x45`, `69` or `generic_nack`."""
    text = text.strip().lower()
    if text == "generic_nack":
        return GENERIC_NACK
    return int(text, 16) if text.startswith("0x") else int(text)


class Answers:
    """One account's table from command_status to action, with its retry policy."""

    def __init__(
        self,
        overrides: Mapping[str, Action] | None = None,
        *,
        max_attempts: int = 5,
        retry_for: float = 600.0,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
    ) -> None:
        self.table = dict(DEFAULT_ACTIONS)
        for code, action in (overrides or {}).items():
            self.table[parse_status(code)] = Action(action)
        self.max_attempts = max_attempts
        self.retry_for = retry_for
        self._backoff = backoff
        self._backoff_max = backoff_max

    def action(self, status: int) -> Action:
        """What to do with a submit_sm answered with `status`."""
        return self.table.get(status, Action.TEMPORARY)

    def retry_delay(self, attempts: int) -> float:
        """Seconds before attempt `attempts + 1`: exponential, with full jitter."""
        ceiling = min(self._backoff_max, self._backoff * 2 ** max(0, attempts - 1))
        return random.uniform(ceiling / 2, ceiling)

    def gives_up(self, attempts: int, first_try: float, now: float) -> bool:
        """Whether a temporary error after `attempts` tries, the first at `first_try`, is final."""
        return attempts >= self.max_attempts or now - first_try >= self.retry_for
