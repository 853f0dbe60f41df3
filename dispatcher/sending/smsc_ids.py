"""SMSC message ids: how each account's SMSC writes them, and the one form they are compared in.

An SMSC hands out an id in submit_sm_resp and quotes it again in the delivery receipt, not
always in the same way: upper-case or zero-padded, or decimal in one place and hex in the other
(Kannel's `msg-id-type`). Each account declares how its SMSC writes ids on each side (`dec`,
`hex`, `text` for opaque ids compared exactly, or `auto`), and every id is stored and looked up
as a *key*: the submit_sm_resp id with case and leading zeros removed, and a receipt id
converted to that form. Keys are compared only within one account, so the ids of two SMSCs
never meet.

`auto` learns a side's base from what the SMSC writes: a hex letter proves hex, any other
character proves opaque text, and `DEC_AFTER` ids of digits only prove decimal (a hex SMSC
writes a letter in far fewer). Until both sides are known, a receipt whose key depends on them
is not matched at all: a guessed match could report a message delivered that was not.
"""

from dataclasses import dataclass, field
from enum import StrEnum

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
DEC_AFTER = 50  # ids of digits only, with no hex letter among them, before `auto` says decimal


class IdBase(StrEnum):
    """How one side of an SMSC writes message ids."""

    AUTO = "auto"
    DEC = "dec"
    HEX = "hex"
    TEXT = "text"  # opaque: compared exactly


def _strip(value: str) -> str:
    return value.strip().rstrip("\x00").strip()


def key(smsc_id: str) -> str:
    """The form an id is stored and compared in: hex and decimal ids lose case and leading zeros."""
    value = _strip(smsc_id)
    if value and all(c in _HEX_DIGITS for c in value):
        return value.lower().lstrip("0") or "0"
    return value


def receipt_key(receipt_id: str, *, submit: IdBase, receipt: IdBase) -> str | None:
    """The key a receipt's id stands for, given both sides' bases; None if it cannot be known."""
    value = _strip(receipt_id)
    if not value:
        return None
    if not all(c in _HEX_DIGITS for c in value):
        return value  # opaque on this side: only an identical id can match
    if IdBase.TEXT in (submit, receipt) or submit == receipt != IdBase.AUTO:
        return key(value)
    if submit == IdBase.DEC and receipt == IdBase.HEX:
        return str(int(value, 16))
    if submit == IdBase.HEX and receipt == IdBase.DEC:
        return format(int(value), "x") if value.isdigit() else None
    return None  # a side is not known yet


@dataclass
class SideEvidence:
    """What one side of an `auto` account has shown so far."""

    digits_only: int = 0
    hex_letters: bool = False
    opaque: bool = False

    def see(self, smsc_id: str) -> None:
        """Learn from one id as the SMSC wrote it."""
        value = _strip(smsc_id)
        if not value:
            return
        if not all(c in _HEX_DIGITS for c in value):
            self.opaque = True
        elif value.isdigit():
            self.digits_only += 1
        else:
            self.hex_letters = True

    def base(self) -> IdBase:
        """The base this evidence proves, or AUTO while it proves none."""
        if self.opaque:
            return IdBase.TEXT
        if self.hex_letters:
            return IdBase.HEX
        return IdBase.DEC if self.digits_only >= DEC_AFTER else IdBase.AUTO


@dataclass
class AccountIds:
    """One account's id formats: declared, or learnt from the ids it writes."""

    submit_declared: IdBase = IdBase.AUTO
    receipt_declared: IdBase = IdBase.AUTO
    submit_seen: SideEvidence = field(default_factory=SideEvidence)
    receipt_seen: SideEvidence = field(default_factory=SideEvidence)

    @property
    def submit(self) -> IdBase:
        """How submit_sm_resp ids are written, as far as known."""
        if self.submit_declared != IdBase.AUTO:
            return self.submit_declared
        return self.submit_seen.base()

    @property
    def receipt(self) -> IdBase:
        """How receipt ids are written, as far as known."""
        if self.receipt_declared != IdBase.AUTO:
            return self.receipt_declared
        return self.receipt_seen.base()

    def receipt_key(self, receipt_id: str) -> str | None:
        """The key of a receipt's id, or None while this account's formats are not known."""
        return receipt_key(receipt_id, submit=self.submit, receipt=self.receipt)
