"""What a delivery receipt says: read from a deliver_sm, TLVs first, then the receipt text.

A receipt carries the SMSC's id of the message it reports on, the state it reached, and the
error codes. States are final (delivered, expired, deleted, undeliverable, rejected) or
intermediate (en route, accepted, unknown, buffered…): an intermediate one is recorded on the
part but ends nothing. Unknown spellings are recorded as they are, and end nothing either.
Matching and storing receipts is `matching.py`'s job.
"""

import re
from dataclasses import dataclass

from campaigns.models import MessageStatus

RECEIPT_ESM_CLASS = 0x04
M = MessageStatus

# SMPP 3.4 §5.2.28 message_state (0 and 9 from SMPP 5.0), by the name the text writes.
STATE_NAMES = {
    0: "SCHEDULED",
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
    9: "SKIPPED",
}
# Receipt text `stat:` values (SMPP 3.4 Appendix B) and the spellings vendors use instead.
FINAL_STATES = {
    "DELIVRD": M.DELIVERED,
    "DELIVERED": M.DELIVERED,
    "DELIVER": M.DELIVERED,
    "EXPIRED": M.EXPIRED,
    "EXPIRD": M.EXPIRED,
    "DELETED": M.FAILED,
    "DELETD": M.FAILED,
    "UNDELIV": M.UNDELIVERABLE,
    "UNDELIVERABLE": M.UNDELIVERABLE,
    "UNDELIVERED": M.UNDELIVERABLE,
    "UNDELIVRD": M.UNDELIVERABLE,
    "REJECTD": M.REJECTED,
    "REJECTED": M.REJECTED,
    "FAILED": M.FAILED,
    "SKIPPED": M.FAILED,
}
# Known to say "not yet": recorded on the part, the message still awaits its final receipt.
INTERMEDIATE_STATES = frozenset(
    {"SCHEDULED", "ENROUTE", "ACCEPTD", "ACCEPTED", "UNKNOWN", "ACKED", "BUFFRED", "BUFFERED"}
)
_FIELD = re.compile(r"\b(id|stat|err):\s*(\S+)", re.IGNORECASE)
_TEXT = re.compile(r"\btext:", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the network reported for one submitted message (or part)."""

    smsc_message_id: str  # as the SMSC wrote it in the receipt
    state: str  # as reported, e.g. DELIVRD, ENROUTE (a TLV state by its text name)
    error_code: int | None = None  # the text's err:
    network_error: int | None = None  # network_error_code TLV: type << 16 | code
    account: str = ""  # the SMSC account whose bind received it

    @property
    def status(self) -> MessageStatus | None:
        """The final status this receipt reports; None if it is intermediate or unknown."""
        return FINAL_STATES.get(self.state)


def is_receipt(esm_class: int) -> bool:
    """Whether a deliver_sm with this esm_class is a delivery receipt."""
    return esm_class & 0x3C == RECEIPT_ESM_CLASS


def parse(
    *,
    receipted_message_id: bytes | str | None,
    message_state: int | None,
    text: bytes | None,
    network_error_code: bytes | None = None,
    account: str = "",
) -> Receipt | None:
    """A receipt from the TLVs where present, completed from the text; None if unreadable.

    In the text only what comes before `text:` counts (that field echoes the message, which may
    itself contain `id:` or `stat:`), and the first `id:`, `stat:` and `err:` win.
    """
    fields = _text_fields(_decode(text))
    smsc_id = _decode(receipted_message_id) or fields.get("id", "")
    if message_state is not None and message_state in STATE_NAMES:
        state = STATE_NAMES[message_state]
    else:
        state = fields.get("stat", "").upper()
    if not smsc_id or not state or len(smsc_id) > 64:
        return None
    return Receipt(
        smsc_message_id=smsc_id,
        state=state[:16],
        error_code=_error_code(fields.get("err", "")),
        network_error=_network_error(network_error_code),
        account=account,
    )


def _text_fields(text: str) -> dict[str, str]:
    echoed = _TEXT.search(text)
    head = text[: echoed.start()] if echoed else text
    fields: dict[str, str] = {}
    for name, value in _FIELD.findall(head):
        fields.setdefault(name.lower(), value)
    return fields


def _decode(value: bytes | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1").rstrip("\x00").strip()
    return value.rstrip("\x00").strip()


def _error_code(value: str) -> int | None:
    if not value or not value.isascii() or len(value) > 10:
        return None  # "²" is a digit to isdigit(), and a huge number is no error code
    if value.isdigit():
        return int(value)
    if all(c in "0123456789abcdefABCDEF" for c in value):
        return int(value, 16)
    return None


def _network_error(value: bytes | str | None) -> int | None:
    if isinstance(value, str):
        value = value.encode("latin-1")
    if not value:
        return None
    return int.from_bytes(value[:3], "big")
