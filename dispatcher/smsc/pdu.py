"""A minimal SMPP 3.4 PDU codec: the header, the PDUs an SMSC simulator meets, and receipts."""

import struct
from dataclasses import dataclass, field
from enum import IntEnum

HEADER = struct.Struct(">IIII")
HEADER_SIZE = HEADER.size
MAX_PDU_SIZE = 64 * 1024
RESPONSE_BIT = 0x80000000
_TLV_HEADER = struct.Struct(">HH")
_NUL = b"\x00"


class CommandId(IntEnum):
    """SMPP 3.4 command_id values (§5.1.2.1)."""

    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015


class Status(IntEnum):
    """SMPP 3.4 command_status values used here (§5.1.3)."""

    OK = 0x00
    INVALID_COMMAND_LENGTH = 0x02
    INVALID_COMMAND_ID = 0x03
    INVALID_BIND_STATUS = 0x04
    ALREADY_BOUND = 0x05
    SYSTEM_ERROR = 0x08
    INVALID_DESTINATION = 0x0B
    BIND_FAILED = 0x0D
    INVALID_PASSWORD = 0x0E
    THROTTLED = 0x58


class Tag(IntEnum):
    """TLV tags used here (§5.3.2)."""

    RECEIPTED_MESSAGE_ID = 0x001E
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427


# Receipt `stat:` value -> message_state TLV value (§5.2.28), and the `err:` reported with it.
MESSAGE_STATES = {"DELIVRD": 2, "UNDELIV": 5, "EXPIRED": 3, "REJECTD": 8}
RECEIPT_ERRORS = {"DELIVRD": "000", "UNDELIV": "001", "EXPIRED": "002", "REJECTD": "003"}
RECEIPT_ESM_CLASS = 0x04


class PduError(ValueError):
    """A PDU body that does not parse."""


@dataclass(slots=True)
class BindRequest:
    """The body of bind_transmitter, bind_receiver and bind_transceiver."""

    system_id: str
    password: str
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(slots=True)
class ShortMessage:
    """The body of submit_sm and deliver_sm, which share one layout (§4.4.1, §4.6.1)."""

    source_addr: str
    destination_addr: str
    short_message: bytes = b""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    service_type: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    tlvs: dict[int, bytes] = field(default_factory=dict)


def _cstring(body: bytes, pos: int) -> tuple[str, int]:
    end = body.find(_NUL, pos)
    if end < 0:
        raise PduError("unterminated C-octet string")
    return body[pos:end].decode("latin-1"), end + 1


def _cbytes(value: str) -> bytes:
    return value.encode("latin-1") + _NUL


def parse_tlvs(body: bytes, pos: int) -> dict[int, bytes]:
    """All TLVs from `pos` on, by tag; callers read the tags they know and skip the rest."""
    tlvs: dict[int, bytes] = {}
    end = len(body)
    while pos + 4 <= end:
        tag, length = _TLV_HEADER.unpack_from(body, pos)
        pos += 4
        if pos + length > end:
            raise PduError(f"TLV 0x{tag:04x} overruns the PDU")
        tlvs[tag] = body[pos : pos + length]
        pos += length
    return tlvs


def parse_bind(body: bytes) -> BindRequest:
    """Parse the body of a bind_* request."""
    system_id, pos = _cstring(body, 0)
    password, pos = _cstring(body, pos)
    system_type, pos = _cstring(body, pos)
    if pos + 3 > len(body):
        raise PduError("bind body too short")
    version, ton, npi = body[pos], body[pos + 1], body[pos + 2]
    address_range, _ = _cstring(body, pos + 3)
    return BindRequest(system_id, password, system_type, version, ton, npi, address_range)


def parse_short_message(body: bytes) -> ShortMessage:
    """Parse the body of a submit_sm or deliver_sm, TLVs included."""
    try:
        service_type, pos = _cstring(body, 0)
        source_ton, source_npi = body[pos], body[pos + 1]
        source_addr, pos = _cstring(body, pos + 2)
        dest_ton, dest_npi = body[pos], body[pos + 1]
        destination_addr, pos = _cstring(body, pos + 2)
        esm_class, protocol_id, priority_flag = body[pos], body[pos + 1], body[pos + 2]
        schedule, pos = _cstring(body, pos + 3)
        validity, pos = _cstring(body, pos)
        registered, replace, coding, default_id, sm_length = body[pos : pos + 5]
    except (IndexError, ValueError) as error:
        raise PduError(f"short message body too short: {error}") from error
    pos += 5
    if pos + sm_length > len(body):
        raise PduError("short_message overruns the PDU")
    return ShortMessage(
        source_addr,
        destination_addr,
        body[pos : pos + sm_length],
        source_ton,
        source_npi,
        dest_ton,
        dest_npi,
        service_type,
        esm_class,
        protocol_id,
        priority_flag,
        schedule,
        validity,
        registered,
        replace,
        coding,
        default_id,
        parse_tlvs(body, pos + sm_length),
    )


def pack(command_id: int, sequence: int, body: bytes = b"", status: int = Status.OK) -> bytes:
    """One whole PDU: header and body."""
    return HEADER.pack(HEADER_SIZE + len(body), command_id, status, sequence) + body


def encode_tlv(tag: int, value: bytes) -> bytes:
    """One TLV: tag, length, value."""
    return _TLV_HEADER.pack(tag, len(value)) + value


def _encode_short_message(command_id: int, sequence: int, message: ShortMessage) -> bytes:
    if len(message.short_message) > 254:
        raise PduError("short_message longer than 254 octets; use message_payload")
    m = message
    body = b"".join(
        (
            _cbytes(m.service_type),
            bytes((m.source_addr_ton, m.source_addr_npi)),
            _cbytes(m.source_addr),
            bytes((m.dest_addr_ton, m.dest_addr_npi)),
            _cbytes(m.destination_addr),
            bytes((m.esm_class, m.protocol_id, m.priority_flag)),
            _cbytes(m.schedule_delivery_time),
            _cbytes(m.validity_period),
            bytes((m.registered_delivery, m.replace_if_present_flag, m.data_coding)),
            bytes((m.sm_default_msg_id, len(m.short_message))),
            m.short_message,
            *(encode_tlv(tag, value) for tag, value in m.tlvs.items()),
        )
    )
    return pack(command_id, sequence, body)


def build_submit_sm(sequence: int, message: ShortMessage) -> bytes:
    """A submit_sm PDU."""
    return _encode_short_message(CommandId.SUBMIT_SM, sequence, message)


def build_deliver_sm(sequence: int, message: ShortMessage) -> bytes:
    """A deliver_sm PDU, TLVs included."""
    return _encode_short_message(CommandId.DELIVER_SM, sequence, message)


def build_submit_sm_resp(sequence: int, message_id: str, status: int = Status.OK) -> bytes:
    """A submit_sm_resp; per §4.4.2 the body is left out when the status is an error."""
    body = _cbytes(message_id) if status == Status.OK else b""
    return pack(CommandId.SUBMIT_SM_RESP, sequence, body, status)


def build_bind(command_id: int, sequence: int, request: BindRequest) -> bytes:
    """A bind_transmitter, bind_receiver or bind_transceiver PDU."""
    r = request
    body = b"".join(
        (
            _cbytes(r.system_id),
            _cbytes(r.password),
            _cbytes(r.system_type),
            bytes((r.interface_version, r.addr_ton, r.addr_npi)),
            _cbytes(r.address_range),
        )
    )
    return pack(command_id, sequence, body)


def build_bind_resp(command_id: int, sequence: int, system_id: str, status: int) -> bytes:
    """The response to a bind_* request `command_id`; no body on error (§4.1.2)."""
    body = _cbytes(system_id) if status == Status.OK else b""
    return pack(command_id | RESPONSE_BIT, sequence, body, status)


def build_generic_nack(sequence: int, status: int) -> bytes:
    """A generic_nack with `status`."""
    return pack(CommandId.GENERIC_NACK, sequence, status=status)


def build_deliver_sm_resp(sequence: int, status: int = Status.OK) -> bytes:
    """A deliver_sm_resp (its message_id is unused and left empty)."""
    return pack(CommandId.DELIVER_SM_RESP, sequence, _NUL, status)


def build_enquire_link(sequence: int) -> bytes:
    """An enquire_link PDU."""
    return pack(CommandId.ENQUIRE_LINK, sequence)


def build_enquire_link_resp(sequence: int) -> bytes:
    """An enquire_link_resp PDU."""
    return pack(CommandId.ENQUIRE_LINK_RESP, sequence)


def build_unbind(sequence: int) -> bytes:
    """An unbind PDU."""
    return pack(CommandId.UNBIND, sequence)


def build_unbind_resp(sequence: int) -> bytes:
    """An unbind_resp PDU."""
    return pack(CommandId.UNBIND_RESP, sequence)


def message_text(message: ShortMessage) -> str:
    """The message's text without any UDH, from short_message or else message_payload."""
    raw = message.short_message or message.tlvs.get(Tag.MESSAGE_PAYLOAD, b"")
    if message.esm_class & 0x40 and raw:  # UDHI: skip the user data header
        raw = raw[1 + raw[0] :]
    encoding = "utf-16-be" if message.data_coding == 0x08 else "latin-1"
    return raw.decode(encoding, "replace")


def receipt_text(
    *, message_id: str, stat: str, err: str, submit_date: str, done_date: str, text: str
) -> bytes:
    """The SMPP 3.4 Appendix B delivery receipt text; dates are YYMMDDhhmm."""
    dlvrd = "001" if stat == "DELIVRD" else "000"
    receipt = (
        f"id:{message_id} sub:001 dlvrd:{dlvrd} submit date:{submit_date} "
        f"done date:{done_date} stat:{stat} err:{err} text:{text[:20]}"
    )
    return receipt.encode("ascii", "replace")


def receipt_for(
    submit: ShortMessage,
    *,
    message_id: str,
    stat: str,
    submit_date: str,
    done_date: str,
    with_tlvs: bool = True,
) -> ShortMessage:
    """The deliver_sm body reporting `stat` for `submit`, sent back from its destination.

    Without `with_tlvs` only the text reports it (no receipted_message_id or message_state).
    """
    text = receipt_text(
        message_id=message_id,
        stat=stat,
        err=RECEIPT_ERRORS[stat],
        submit_date=submit_date,
        done_date=done_date,
        text=message_text(submit),
    )
    return ShortMessage(
        source_addr=submit.destination_addr,
        source_addr_ton=submit.dest_addr_ton,
        source_addr_npi=submit.dest_addr_npi,
        destination_addr=submit.source_addr,
        dest_addr_ton=submit.source_addr_ton,
        dest_addr_npi=submit.source_addr_npi,
        esm_class=RECEIPT_ESM_CLASS,
        short_message=text,
        tlvs={
            Tag.RECEIPTED_MESSAGE_ID: _cbytes(message_id),
            Tag.MESSAGE_STATE: bytes((MESSAGE_STATES[stat],)),
        }
        if with_tlvs
        else {},
    )
