"""Reading delivery receipts: TLVs first, then the text, every state and vendor spelling."""

import pytest

from campaigns.models import MessageStatus
from dispatcher.sending.receipts import Receipt, is_receipt, parse

TEXT = b"id:7 sub:001 dlvrd:001 submit date:2002021200 done date:2002021201 stat:DELIVRD err:000"


@pytest.mark.parametrize(
    ("tlv_id", "state", "text", "expected"),
    [
        (b"ABC123", 2, TEXT, Receipt("ABC123", "DELIVRD", 0)),
        (None, None, TEXT, Receipt("7", "DELIVRD", 0)),
        (
            None,
            None,
            TEXT.replace(b"DELIVRD", b"UNDELIV").replace(b"000", b"001"),
            Receipt("7", "UNDELIV", 1),
        ),
        ("9", 3, b"", Receipt("9", "EXPIRED", None)),
        (None, 8, TEXT, Receipt("7", "REJECTD", 0)),
        (None, None, b"id:5 stat:REJECTD err:00B", Receipt("5", "REJECTD", 11)),
    ],
)
def test_receipt_read_from_tlvs_first_then_text(
    tlv_id: bytes | str | None, state: int | None, text: bytes, expected: Receipt
) -> None:
    assert parse(receipted_message_id=tlv_id, message_state=state, text=text) == expected


def test_the_first_id_and_stat_before_the_echoed_text_win() -> None:
    text = (
        b"id:12 sub:001 dlvrd:000 submit date:2002021200 done date:2002021201 stat:UNDELIV "
        b"err:001 text:id:99 stat:DELIVRD err:000 and stat:DELIVRD again"
    )
    receipt = parse(receipted_message_id=None, message_state=None, text=text)
    assert receipt == Receipt("12", "UNDELIV", 1)
    assert receipt.status == MessageStatus.UNDELIVERABLE


@pytest.mark.parametrize(
    ("stat", "status"),
    [
        ("DELIVRD", MessageStatus.DELIVERED),
        ("DELIVERED", MessageStatus.DELIVERED),
        ("delivrd", MessageStatus.DELIVERED),
        ("EXPIRED", MessageStatus.EXPIRED),
        ("DELETED", MessageStatus.FAILED),
        ("UNDELIV", MessageStatus.UNDELIVERABLE),
        ("UNDELIVERABLE", MessageStatus.UNDELIVERABLE),
        ("REJECTD", MessageStatus.REJECTED),
        ("REJECTED", MessageStatus.REJECTED),
        # Intermediate: recorded, never final.
        ("ENROUTE", None),
        ("ACCEPTD", None),
        ("ACKED", None),
        ("UNKNOWN", None),
        ("BUFFRED", None),
        # Unheard of: kept as written, not final, not dropped.
        ("WHATEVER", None),
    ],
)
def test_every_state_and_vendor_spelling(stat: str, status: MessageStatus | None) -> None:
    receipt = parse(
        receipted_message_id=None, message_state=None, text=f"id:1 stat:{stat}".encode()
    )
    assert receipt is not None
    assert receipt.state == stat.upper() and receipt.status == status


@pytest.mark.parametrize(("state", "final"), [(1, False), (2, True), (6, False), (7, False)])
def test_tlv_message_state_unknown_or_enroute_is_not_final(state: int, final: bool) -> None:
    receipt = parse(receipted_message_id="1", message_state=state, text=None)
    assert receipt is not None and (receipt.status is not None) == final


def test_network_error_code_is_kept() -> None:
    receipt = parse(
        receipted_message_id="1",
        message_state=5,
        text=b"id:1 stat:UNDELIV err:00B",
        network_error_code=b"\x03\x00\x0b",
        account="smsc1",
    )
    assert receipt == Receipt("1", "UNDELIV", 11, 0x03000B, "smsc1")


def test_unreadable_receipt_is_none() -> None:
    assert parse(receipted_message_id=None, message_state=None, text=b"hello") is None
    assert parse(receipted_message_id=None, message_state=None, text=b"id:5 text:x") is None


def test_receipt_esm_class() -> None:
    assert is_receipt(0x04) and not is_receipt(0x00) and not is_receipt(0x40)
