"""The SMPP hot path in plain bytes: submit_sm and short responses out, bulk PDUs in.

smpplib builds one command object per PDU and parses every PDU through generic field tables:
some 80 µs of CPU a message for its submit_sm, submit_sm_resp and receipt. The sender needs
only a handful of shapes at volume: submit_sm with the same content for many destinations,
submit_sm_resp, deliver_sm (receipts) and their short answers. This module writes and reads
exactly those with `struct` and bytes operations, byte for byte and value for value as
smpplib 2.2 does (tests/test_fastpdu.py proves it against smpplib), quirks included. Whatever
it cannot be sure to read as smpplib would comes back as a `RawPdu` for smpplib to parse;
smpplib stays the library for every other PDU (bind, unbind, the rare ones).
"""

import struct
import timeit
from collections.abc import Callable
from typing import NamedTuple

HEADER = struct.Struct(">LLLL")  # command_length, command_id, command_status, sequence_number
MIN_PDU = HEADER.size
MAX_PDU = 64 * 1024
MAX_SHORT_MESSAGE = 254  # SMPP 3.4 §5.2.21: sm_length is at most 254

GENERIC_NACK = 0x80000000
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005
UNBIND_RESP = 0x80000006
ENQUIRE_LINK_RESP = 0x80000015

# deliver_sm TLVs read here, by tag
_RECEIPTED_MESSAGE_ID = 0x001E
_NETWORK_ERROR_CODE = 0x0423
_MESSAGE_PAYLOAD = 0x0424
_MESSAGE_STATE = 0x0427

# The other TLVs smpplib's DeliverSM knows. smpplib reads an integer TLV by the size it expects,
# whatever length the TLV states, so one whose length differs would be misread: such a PDU goes
# to smpplib. Its string and octet-string TLVs (source_subaddress, dest_subaddress, callback_num)
# are read by their stated length and can be skipped like unknown ones.
_DELIVER_INT_TLV_SIZES = {
    0x0006: 1,  # dest_network_type
    0x000E: 1,  # source_network_type
    0x0019: 1,  # payload_type
    0x0201: 1,  # privacy_indicator
    0x0204: 2,  # user_message_reference
    0x0205: 1,  # user_response_code
    0x020A: 2,  # source_port
    0x020B: 2,  # destination_port
    0x020C: 2,  # sar_msg_ref_num
    0x020D: 1,  # language_indicator
    0x020E: 1,  # sar_total_segments
    0x020F: 1,  # sar_segment_seqnum
    0x0426: 1,  # more_messages_to_send
    0x1383: 2,  # its_session_info
}
# Tags smpplib names (consts.OPTIONAL_PARAMS) but its DeliverSM does not have, from
# dest_addr_subunit (0x0005) to its_reply_type (0x1380): its parse raises KeyError on them, even
# with allow_unknown_opt_params. Tags it does not name at all it skips, as this module does.
# fmt: off
_DELIVER_FOREIGN_TLVS = frozenset({
    0x0005, 0x0007, 0x0008, 0x000D, 0x000F, 0x0010, 0x0017, 0x001D, 0x0030, 0x0210, 0x0302,
    0x0303, 0x0304, 0x0420, 0x0421, 0x0422, 0x0425, 0x0501, 0x1201, 0x1203, 0x1204, 0x130C,
    0x1380,
})
# fmt: on

_TLV_HEADER = struct.Struct(">HH")
_pack_header = HEADER.pack
_unpack_header = HEADER.unpack_from
_unpack_tlv = _TLV_HEADER.unpack_from


class BadLength(ValueError):
    """A PDU header states a command_length outside 16..65536: the stream cannot be trusted."""

    def __init__(self, length: int, decoded: "list[Pdu]") -> None:
        super().__init__(f"bad command_length {length}")
        self.length = length
        self.decoded = decoded  # the whole PDUs that came before it in the buffer


def _c_string(value: str | None, max_size: int) -> bytes:
    """A C-octet string as smpplib writes it: cut to max_size - 1 characters, latin-1, NUL."""
    text = value or ""
    return text[: max_size - 1].encode("latin-1") + b"\0"


class SubmitTemplate:
    """One submit_sm, fixed but for its sequence number and destination_addr.

    Built once per content part; `encode` then writes the PDU smpplib's
    `make_pdu("submit_sm", ...)` would generate with these fields, an empty service_type and
    schedule_delivery_time, protocol_id, priority_flag, replace_if_present_flag and
    sm_default_msg_id 0, and no optional parameters. As in smpplib, source_addr and
    destination_addr are cut to 20 characters and validity_period to 16, None and "" both
    write an empty validity_period, and an empty short_message writes sm_length 0 and no octets.
    """

    __slots__ = ("_before", "_after", "_fixed_length")

    def __init__(
        self,
        *,
        source_addr_ton: int,
        source_addr_npi: int,
        source_addr: str,
        dest_addr_ton: int,
        dest_addr_npi: int,
        esm_class: int,
        data_coding: int,
        validity_period: str | None,
        registered_delivery: int,
        short_message: bytes,
    ) -> None:
        if len(short_message) > MAX_SHORT_MESSAGE:
            raise ValueError(
                f"short_message of {len(short_message)} octets; at most {MAX_SHORT_MESSAGE}"
            )
        self._before = b"".join(
            (
                b"\0",  # service_type
                struct.pack(">BB", source_addr_ton, source_addr_npi),
                _c_string(source_addr, 21),
                struct.pack(">BB", dest_addr_ton, dest_addr_npi),
            )
        )
        self._after = b"".join(
            (
                b"\0",  # destination_addr's terminator
                struct.pack(">BBB", esm_class, 0, 0),  # protocol_id, priority_flag
                b"\0",  # schedule_delivery_time
                _c_string(validity_period, 17),
                # replace_if_present_flag, sm_default_msg_id, sm_length
                struct.pack(">BBBBB", registered_delivery, 0, data_coding, 0, len(short_message)),
                short_message,
            )
        )
        self._fixed_length = MIN_PDU + len(self._before) + len(self._after)

    def encode(self, sequence: int, destination_addr: str) -> bytes:
        """The whole submit_sm PDU for this destination under this sequence number."""
        destination = destination_addr[:20].encode("latin-1")
        return b"".join(
            (
                _pack_header(self._fixed_length + len(destination), SUBMIT_SM, 0, sequence),
                self._before,
                destination,
                self._after,
            )
        )


# smpplib's deliver_sm_resp carries message_id as an empty C-string; the others have no body.
_RESPONSE_BODIES = {
    DELIVER_SM_RESP: b"\0",
    ENQUIRE_LINK_RESP: b"",
    GENERIC_NACK: b"",
    UNBIND_RESP: b"",
}
_RESPONSES = {
    command_id: (MIN_PDU + len(body), body) for command_id, body in _RESPONSE_BODIES.items()
}


def encode_response(command_id: int, sequence: int, status: int = 0) -> bytes:
    """deliver_sm_resp, enquire_link_resp, generic_nack or unbind_resp, as smpplib writes it."""
    try:
        length, body = _RESPONSES[command_id]
    except KeyError:
        raise ValueError(f"no fast encoding for command 0x{command_id:08X}") from None
    return _pack_header(length, command_id, status, sequence) + body


class SubmitSmResp(NamedTuple):
    """A submit_sm_resp; message_id as `bind` reads smpplib's (None when the body is empty)."""

    sequence: int
    status: int
    message_id: str | None


class DeliverSm(NamedTuple):
    """A deliver_sm, with the values smpplib's parse_pdu gives the same bytes.

    short_message is None when sm_length is 0 and nothing follows it (smpplib stops there),
    b"" when sm_length is 0 and TLVs follow. receipted_message_id is the TLV's octets without
    its NUL terminator; message_payload is its own TLV and does not fill short_message.
    """

    sequence: int
    esm_class: int
    short_message: bytes | None
    receipted_message_id: bytes | None
    message_state: int | None
    network_error_code: bytes | None
    message_payload: bytes | None


class RawPdu(NamedTuple):
    """Any other PDU, or one this module could not be sure to read as smpplib: parse `raw` there."""

    command_id: int
    status: int
    sequence: int
    raw: bytes


Pdu = SubmitSmResp | DeliverSm | RawPdu


def read_pdus(buffer: bytearray) -> list[Pdu]:
    """Every whole PDU at the start of `buffer`, in order, removed from it; a partial one stays.

    Raises BadLength (with the PDUs decoded before it) on a command_length outside 16..65536.
    """
    data = bytes(buffer)
    size = len(data)
    pdus: list[Pdu] = []
    offset = 0
    while size - offset >= MIN_PDU:
        length, command_id, status, sequence = _unpack_header(data, offset)
        if length < MIN_PDU or length > MAX_PDU:
            del buffer[:offset]
            raise BadLength(length, pdus)
        end = offset + length
        if end > size:
            break
        pdu: Pdu | None = None
        if command_id == SUBMIT_SM_RESP:
            pdu = _submit_sm_resp(data, offset + MIN_PDU, end, status, sequence)
        elif command_id == DELIVER_SM:
            pdu = _deliver_sm(data, offset + MIN_PDU, end, sequence)
        pdus.append(pdu or RawPdu(command_id, status, sequence, data[offset:end]))
        offset = end
    del buffer[:offset]
    return pdus


def _submit_sm_resp(
    data: bytes, start: int, end: int, status: int, sequence: int
) -> SubmitSmResp | None:
    if start == end:
        return SubmitSmResp(sequence, status, None)
    if data.find(b"\0", start, end) != end - 1:
        # No terminator, or bytes after it: smpplib reads those as TLVs (or worse).
        return None
    return SubmitSmResp(sequence, status, data[start : end - 1].decode("ascii", "replace"))


def _deliver_sm(data: bytes, pos: int, end: int, sequence: int) -> DeliverSm | None:
    """The deliver_sm whose body is data[pos:end]; None where smpplib might read it otherwise."""
    find = data.find
    pos = find(b"\0", pos, end) + 1  # service_type
    if not pos:
        return None
    pos = find(b"\0", pos + 2, end) + 1  # source_addr_ton, source_addr_npi, source_addr
    if not pos:
        return None
    pos = find(b"\0", pos + 2, end) + 1  # dest_addr_ton, dest_addr_npi, destination_addr
    if not pos:
        return None
    esm_at = pos  # esm_class, protocol_id, priority_flag, schedule_delivery_time
    pos = find(b"\0", pos + 3, end) + 1
    if not pos:
        return None
    pos = find(b"\0", pos, end) + 1  # validity_period
    if not pos or pos + 5 > end:
        return None
    # registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id, sm_length
    sm_length = data[pos + 4]
    pos += 5
    if pos + sm_length > end:
        return None
    if sm_length == 0 and pos == end:
        short_message = None  # smpplib stops at the end of the body and keeps its default
    else:
        short_message = data[pos : pos + sm_length]
        pos += sm_length
    tlvs = _deliver_tlvs(data, pos, end)
    if tlvs is None:
        return None
    return DeliverSm(sequence, data[esm_at], short_message, *tlvs)


_DeliverTlvs = tuple[bytes | None, int | None, bytes | None, bytes | None]


def _deliver_tlvs(data: bytes, pos: int, end: int) -> _DeliverTlvs | None:
    """receipted_message_id, message_state, network_error_code and message_payload, as smpplib."""
    receipted_message_id = message_state = network_error_code = message_payload = None
    while pos < end:
        if pos + 4 > end:
            return None
        tag, length = _unpack_tlv(data, pos)
        pos += 4
        value_end = pos + length
        if value_end > end:
            return None
        if tag == _RECEIPTED_MESSAGE_ID:
            # smpplib drops the last octet whatever it is: read only a NUL-terminated one
            if not length or data[value_end - 1]:
                return None
            receipted_message_id = data[pos : value_end - 1]
        elif tag == _MESSAGE_STATE:
            if length != 1:
                return None
            message_state = data[pos]
        elif tag == _NETWORK_ERROR_CODE:
            network_error_code = data[pos:value_end]
        elif tag == _MESSAGE_PAYLOAD:
            message_payload = data[pos:value_end]
        elif tag in _DELIVER_FOREIGN_TLVS:
            return None
        elif _DELIVER_INT_TLV_SIZES.get(tag, length) != length:
            return None
        pos = value_end
    return receipted_message_id, message_state, network_error_code, message_payload


def bench() -> None:
    """Print µs per operation, this module against smpplib, on this machine."""
    import smpplib.client
    import smpplib.smpp

    client = smpplib.client.Client(
        "127.0.0.1", 1, logger_name="dispatcher.fastpdu.bench", allow_unknown_opt_params=True
    )
    fields = {
        "source_addr_ton": 5,
        "source_addr_npi": 0,
        "source_addr": "GIALAI",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "esm_class": 0x40,
        "data_coding": 8,
        "validity_period": "261204183000000+",
        "registered_delivery": 1,
    }
    text = bytes(range(140))
    template = SubmitTemplate(
        source_addr_ton=5,
        source_addr_npi=0,
        source_addr="GIALAI",
        dest_addr_ton=1,
        dest_addr_npi=1,
        esm_class=0x40,
        data_coding=8,
        validity_period="261204183000000+",
        registered_delivery=1,
        short_message=text,
    )

    def smpplib_submit() -> bytes:
        pdu = smpplib.smpp.make_pdu(
            "submit_sm",
            client=client,
            destination_addr="84901234567",
            short_message=text,
            **fields,
        )
        pdu.sequence = 7
        return bytes(pdu.generate())

    def smpplib_response() -> bytes:
        pdu = smpplib.smpp.make_pdu("deliver_sm_resp", client=client)
        pdu.sequence = 7
        return bytes(pdu.generate())

    receipt = smpplib.smpp.make_pdu(
        "deliver_sm",
        client=client,
        esm_class=4,
        short_message=b"id:0A1B2C3D4E sub:001 dlvrd:001 submit date:2612041830 "
        b"done date:2612041831 stat:DELIVRD err:000 text:",
        receipted_message_id="0A1B2C3D4E",
        message_state=2,
        network_error_code=b"\x03\x00\x00",
    ).generate()
    answer = smpplib.smpp.make_pdu("submit_sm_resp", client=client, message_id="0A1B2C3D4E")
    answer.sequence = 7
    answers = bytes(answer.generate()) * 1000
    receipts = bytes(receipt) * 1000
    if template.encode(7, "84901234567") != smpplib_submit():
        raise AssertionError("SubmitTemplate differs from smpplib")

    def smpplib_read(stream: bytes) -> int:
        count = offset = 0
        while offset < len(stream):
            length = _unpack_header(stream, offset)[0]
            smpplib.smpp.parse_pdu(
                stream[offset : offset + length], client=client, allow_unknown_opt_params=True
            )
            offset += length
            count += 1
        return count

    def per_call(function: Callable[[], object], calls: int, per: int = 1) -> float:
        best = min(timeit.repeat(function, number=calls, repeat=5))
        return best / (calls * per) * 1e6

    rows = [
        ("submit_sm encode", per_call(lambda: template.encode(7, "84901234567"), 20_000),
         per_call(smpplib_submit, 1_000)),
        ("deliver_sm_resp encode", per_call(lambda: encode_response(DELIVER_SM_RESP, 7), 20_000),
         per_call(smpplib_response, 2_000)),
        ("read submit_sm_resp (per PDU, framing included)",
         per_call(lambda: read_pdus(bytearray(answers)), 50, 1000),
         per_call(lambda: smpplib_read(answers), 2, 1000)),
        ("read deliver_sm receipt (per PDU, framing included)",
         per_call(lambda: read_pdus(bytearray(receipts)), 50, 1000),
         per_call(lambda: smpplib_read(receipts), 2, 1000)),
    ]  # fmt: skip
    print(f"{'µs per operation':52} {'fastpdu':>9} {'smpplib':>9} {'ratio':>7}")
    for name, fast, slow in rows:
        print(f"{name:52} {fast:9.2f} {slow:9.2f} {slow / fast:6.0f}x")


if __name__ == "__main__":
    bench()
