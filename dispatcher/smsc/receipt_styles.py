"""How the simulated SMSC writes message ids and sends receipts, like SMSCs that are not ours.

Message ids may be written in one style in the submit_sm_resp and another in the receipt (the
`receipted_message_id` TLV and the text's `id:`), the TLVs may be left out, a fraction of the
receipts may come late or twice, and a concatenated message may get one receipt for all its
segments, carrying the id of its first or last segment.
"""

import functools
import random
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from dispatcher.smsc import pdu
from dispatcher.smsc.pdu import ShortMessage
from dispatcher.smsc.record import segment

if TYPE_CHECKING:
    from dispatcher.smsc.config import SimulatorConfig, SimulatorStats
    from dispatcher.smsc.session import _Receipt

__all__ = [
    "ID_STYLES",
    "PER_MESSAGE",
    "REPEAT_GAP",
    "ReceiptStyle",
    "stamp",
]

# Style name -> how the simulator's numeric message id is written.
ID_STYLES: Mapping[str, Callable[[int], str]] = MappingProxyType(
    {
        "dec": str,
        "dec0": lambda number: f"{number:020d}",
        "hex": lambda number: f"{number:x}",
        "HEX": lambda number: f"{number:X}",
        "hex0": lambda number: f"{number:016x}",
        "HEX0": lambda number: f"{number:016X}",
    }
)
PER_MESSAGE = ("first", "last")  # which segment's id a whole message's receipt carries
REPEAT_GAP = 0.2  # seconds between a repeated receipt and its copy
_MAX_OPEN_MESSAGES = 100_000  # concatenated messages awaiting segments, oldest dropped first

_PartKey = tuple[str, str, int]  # (system_id, destination_addr, concatenation reference)


@functools.lru_cache(maxsize=8)
def _minute_stamp(minute: int) -> str:
    return time.strftime("%y%m%d%H%M", time.gmtime(minute * 60))


def stamp(now: float) -> str:
    """A receipt date (YYMMDDhhmm, UTC) for the epoch time `now`."""
    return _minute_stamp(int(now // 60))


class ReceiptStyle:
    """The configured way of writing ids and sending receipts, with its own random draws."""

    def __init__(self, config: "SimulatorConfig", stats: "SimulatorStats") -> None:
        self.submit_id: Callable[[int], str] = ID_STYLES[config.submit_ids]
        receipt_style = config.receipt_ids or config.submit_ids
        # None: the receipt writes the id as the submit_sm_resp did (no second formatting).
        self.receipt_id: Callable[[int], str] | None = (
            None if receipt_style == config.submit_ids else ID_STYLES[receipt_style]
        )
        self.late_delay = config.receipt_delay + config.late_delay
        self.per_message = config.receipt_per_message
        self.reorders = config.late_receipts > 0 or config.repeat_receipts > 0
        self._with_tlvs = config.receipt_tlvs
        self._late = config.late_receipts
        self._repeat = config.repeat_receipts
        self._stats = stats
        self._rng = random.Random(config.seed)  # apart from the outcome and fault draws
        self._parts: dict[_PartKey, dict[int, _Receipt | None]] = {}

    def draw(self, receipt: "_Receipt") -> bool:
        """Whether `receipt` goes late; marks it to be sent twice when it should be."""
        late = self._late > 0 and self._rng.random() < self._late
        if late:
            self._stats.receipts_late += 1
        if self._repeat > 0 and self._rng.random() < self._repeat:
            receipt.repeat = True
            self._stats.receipts_repeated += 1
        return late

    def one_per_message(
        self, system_id: str, message: ShortMessage, receipt: "_Receipt | None"
    ) -> "_Receipt | None":
        """`receipt` of a single-part message; for a segment, its whole message's once complete.

        The whole message's receipt is that of its segment numbered 1 (`first`) or last
        (`last`): its id, outcome and registered_delivery; the other segments get none.
        """
        part = segment(message)
        if part is None or part[1] < 2:
            return receipt
        reference, total, sequence = part
        key = (system_id, message.destination_addr, reference)
        parts = self._parts.get(key)
        if parts is None:
            if len(self._parts) >= _MAX_OPEN_MESSAGES:
                del self._parts[next(iter(self._parts))]
            parts = self._parts[key] = {}
        parts[sequence] = receipt
        if len(parts) < total:
            return None
        del self._parts[key]
        return parts.get(total if self.per_message == "last" else 1)

    def message(self, receipt: "_Receipt") -> ShortMessage:
        """The deliver_sm body that reports `receipt` back to the submitter."""
        return pdu.receipt_for(
            receipt.submit,
            message_id=receipt.message_id,
            stat=receipt.stat,
            submit_date=receipt.submit_date,
            done_date=stamp(time.time()),
            with_tlvs=self._with_tlvs,
        )
