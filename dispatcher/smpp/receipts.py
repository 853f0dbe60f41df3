"""Delivery receipts: from a deliver_sm's TLVs first, then from its receipt text."""

import re
from dataclasses import dataclass

from campaigns.models import MessageStatus

# SMPP 3.4 §5.2.28 message_state values.
_STATE_BY_TLV = {
    2: MessageStatus.DELIVERED,
    3: MessageStatus.EXPIRED,
    4: MessageStatus.FAILED,  # DELETED
    5: MessageStatus.UNDELIVERABLE,
    7: MessageStatus.UNKNOWN,
    8: MessageStatus.REJECTED,
}
# Receipt text `stat:` values (SMPP 3.4 Appendix B).
_STATE_BY_STAT = {
    "DELIVRD": MessageStatus.DELIVERED,
    "EXPIRED": MessageStatus.EXPIRED,
    "DELETED": MessageStatus.FAILED,
    "UNDELIV": MessageStatus.UNDELIVERABLE,
    "UNKNOWN": MessageStatus.UNKNOWN,
    "REJECTD": MessageStatus.REJECTED,
}
_FIELD = re.compile(r"(id|stat|err):\s*(\S+)", re.IGNORECASE)

RECEIPT_ESM_CLASS = 0x04


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the network reported for one submitted message."""

    smsc_message_id: str
    status: MessageStatus
    error_code: int | None


def is_receipt(esm_class: int) -> bool:
    """Whether a deliver_sm with this esm_class is a delivery receipt."""
    return esm_class & 0x3C == RECEIPT_ESM_CLASS


def parse(
    *, receipted_message_id: bytes | str | None, message_state: int | None, text: bytes | None
) -> Receipt | None:
    """A receipt from the TLVs where present, completed from the text; None if unreadable."""
    fields = {key.lower(): value for key, value in _FIELD.findall(_decode(text))}
    smsc_id = _decode(receipted_message_id) or fields.get("id", "")
    status = _STATE_BY_TLV.get(message_state or 0) or _STATE_BY_STAT.get(
        fields.get("stat", "").upper()
    )
    if not smsc_id or status is None:
        return None
    return Receipt(
        smsc_message_id=smsc_id,
        status=status,
        error_code=_error_code(fields.get("err", "")),
    )


def candidate_ids(smsc_message_id: str) -> list[str]:
    """Forms the same id may have been stored in: as written, and hex ↔ decimal."""
    candidates = [smsc_message_id]
    if smsc_message_id.isdigit():
        candidates += [format(int(smsc_message_id), "x"), format(int(smsc_message_id), "X")]
    if _is_hex(smsc_message_id):
        candidates.append(str(int(smsc_message_id, 16)))
    return list(dict.fromkeys(candidates))


def _decode(value: bytes | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1").rstrip("\x00").strip()
    return value.rstrip("\x00").strip()


def _error_code(value: str) -> int | None:
    if value.isdigit():
        return int(value)
    return int(value, 16) if _is_hex(value) else None


def _is_hex(value: str) -> bool:
    return bool(value) and all(c in "0123456789abcdefABCDEF" for c in value)
