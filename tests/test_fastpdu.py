"""fastpdu against smpplib itself: the same bytes out, the same values in, or a fallback.

Every expectation here comes from smpplib (its make_pdu, generate and parse_pdu, its tables of
parameters), never from fastpdu's own tables, so a divergence in either direction fails.
"""

import struct
from typing import Any

import pytest
import smpplib.client
import smpplib.command
import smpplib.consts
import smpplib.smpp
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dispatcher.sending.fastpdu import (
    DELIVER_SM,
    DELIVER_SM_RESP,
    ENQUIRE_LINK_RESP,
    GENERIC_NACK,
    MAX_SHORT_MESSAGE,
    SUBMIT_SM_RESP,
    UNBIND_RESP,
    BadLength,
    DeliverSm,
    Pdu,
    RawPdu,
    SubmitSmResp,
    SubmitTemplate,
    encode_response,
    read_pdus,
)

PROPERTY = settings(max_examples=200, deadline=None)

OPTIONAL = smpplib.consts.OPTIONAL_PARAMS
# The TLVs smpplib's DeliverSM knows, by tag, with its Param (type, size).
DELIVER_TLVS = {
    OPTIONAL[name]: param
    for name, param in smpplib.command.DeliverSM.params.items()
    if name in OPTIONAL
}
DELIVER_FIELDS = (
    "short_message",
    "receipted_message_id",
    "message_state",
    "network_error_code",
    "message_payload",
)

PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
LATIN1 = st.characters(min_codepoint=1, max_codepoint=0xFF)
DIGITS = "0123456789"
UINT32 = st.integers(0, 0xFFFFFFFF)
SEQUENCE = st.integers(1, 0x7FFFFFFF)


def _client() -> smpplib.client.Client:
    return smpplib.client.Client(
        "127.0.0.1", 1, logger_name="tests.fastpdu", allow_unknown_opt_params=True
    )


def _make(command: str, sequence: int, status: int = 0, **fields: Any) -> bytes:
    pdu = smpplib.smpp.make_pdu(command, client=_client(), **fields)
    pdu.sequence = sequence
    pdu.status = status
    raw: bytes = pdu.generate()
    return raw


def _parse(raw: bytes) -> Any:
    return smpplib.smpp.parse_pdu(raw, client=_client(), allow_unknown_opt_params=True)


def _pdu(command_id: int, status: int, sequence: int, body: bytes) -> bytes:
    return struct.pack(">LLLL", 16 + len(body), command_id, status, sequence) + body


def _with_body(raw: bytes, body: bytes) -> bytes:
    command_id, status, sequence = struct.unpack_from(">LLL", raw, 4)
    return _pdu(command_id, status, sequence, body)


def _tlv(tag: int, value: bytes) -> bytes:
    return struct.pack(">HH", tag, len(value)) + value


def _text(value: Any) -> str | None:
    """How the bind reads smpplib's message_id."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").rstrip("\x00")
    return str(value)


def _read_one(raw: bytes) -> Pdu:
    buffer = bytearray(raw)
    pdus = read_pdus(buffer)
    assert len(pdus) == 1
    assert buffer == b""
    return pdus[0]


def assert_same(fast: Pdu, raw: bytes) -> None:
    """What fastpdu read from `raw` is what smpplib reads, or `raw` handed back untouched."""
    _, command_id, status, sequence = struct.unpack_from(">LLLL", raw)
    if isinstance(fast, RawPdu):
        assert fast == RawPdu(command_id, status, sequence, raw)
        assert type(fast.raw) is bytes
        return
    pdu = _parse(raw)
    if isinstance(fast, SubmitSmResp):
        assert pdu.command == "submit_sm_resp"
        assert fast == SubmitSmResp(pdu.sequence, pdu.status, _text(pdu.message_id))
        return
    assert pdu.command == "deliver_sm"
    assert fast.sequence == pdu.sequence
    assert type(pdu.esm_class) is int
    assert fast.esm_class == pdu.esm_class
    for name in DELIVER_FIELDS:
        theirs = getattr(pdu, name, None)
        ours = getattr(fast, name)
        assert (type(ours), ours) == (type(theirs), theirs), name


# --- submit_sm out ------------------------------------------------------------------------------


@PROPERTY
@given(
    source_addr_ton=st.integers(0, 6),
    source_addr_npi=st.integers(0, 18),
    source_addr=st.text(LATIN1, max_size=24),
    dest_addr_ton=st.integers(0, 6),
    dest_addr_npi=st.integers(0, 18),
    destination_addr=st.text(DIGITS, min_size=1, max_size=24),
    esm_class=st.integers(0, 255),
    data_coding=st.one_of(st.sampled_from([0, 1, 3, 8, 0x18]), st.integers(0, 255)),
    validity_period=st.one_of(
        st.none(),
        st.just(""),
        st.from_regex(r"\A[0-9]{15}[+\-R]\Z"),
        st.text(PRINTABLE, max_size=20),
    ),
    registered_delivery=st.integers(0, 255),
    short_message=st.binary(max_size=MAX_SHORT_MESSAGE),
    sequence=SEQUENCE,
)
@example(  # the shape the sender writes
    source_addr_ton=5,
    source_addr_npi=0,
    source_addr="GIALAI",
    dest_addr_ton=1,
    dest_addr_npi=1,
    destination_addr="84901234567",
    esm_class=0x40,
    data_coding=8,
    validity_period="261204183000000+",
    registered_delivery=1,
    short_message=b"\x05\x00\x03\x01\x02\x01" + b"\x00A" * 67,
    sequence=1,
)
@example(  # smpplib cuts what is too long for its field
    source_addr_ton=0,
    source_addr_npi=0,
    source_addr="ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    dest_addr_ton=1,
    dest_addr_npi=1,
    destination_addr="8490123456789012345678",
    esm_class=0,
    data_coding=0,
    validity_period="261204183000000+0",
    registered_delivery=1,
    short_message=b"",
    sequence=0x7FFFFFFF,
)
def test_submit_sm_is_smpplibs(
    source_addr_ton: int,
    source_addr_npi: int,
    source_addr: str,
    dest_addr_ton: int,
    dest_addr_npi: int,
    destination_addr: str,
    esm_class: int,
    data_coding: int,
    validity_period: str | None,
    registered_delivery: int,
    short_message: bytes,
    sequence: int,
) -> None:
    fields: dict[str, Any] = {
        "source_addr_ton": source_addr_ton,
        "source_addr_npi": source_addr_npi,
        "source_addr": source_addr,
        "dest_addr_ton": dest_addr_ton,
        "dest_addr_npi": dest_addr_npi,
        "esm_class": esm_class,
        "data_coding": data_coding,
        "validity_period": validity_period,
        "registered_delivery": registered_delivery,
        "short_message": short_message,
    }
    ours = SubmitTemplate(**fields).encode(sequence, destination_addr)
    assert ours == _make("submit_sm", sequence, destination_addr=destination_addr, **fields)

    pdu = _parse(ours)
    assert (pdu.command, pdu.status, pdu.sequence) == ("submit_sm", 0, sequence)
    assert pdu.service_type == b""
    assert (pdu.source_addr_ton, pdu.source_addr_npi) == (source_addr_ton, source_addr_npi)
    assert pdu.source_addr == source_addr[:20].encode("latin-1")
    assert (pdu.dest_addr_ton, pdu.dest_addr_npi) == (dest_addr_ton, dest_addr_npi)
    assert pdu.destination_addr == destination_addr[:20].encode()
    assert (pdu.esm_class, pdu.protocol_id, pdu.priority_flag) == (esm_class, 0, 0)
    assert pdu.schedule_delivery_time == b""
    assert pdu.validity_period == (validity_period or "")[:16].encode()
    assert (pdu.registered_delivery, pdu.replace_if_present_flag) == (registered_delivery, 0)
    assert (pdu.data_coding, pdu.sm_default_msg_id) == (data_coding, 0)
    assert pdu.sm_length == len(short_message)
    # smpplib stops at the end of the body: an empty short_message reads back as None
    assert pdu.short_message == (short_message or None)


def test_one_template_serves_many_destinations() -> None:
    template = SubmitTemplate(
        source_addr_ton=5,
        source_addr_npi=0,
        source_addr="GIALAI",
        dest_addr_ton=1,
        dest_addr_npi=1,
        esm_class=0,
        data_coding=0,
        validity_period=None,
        registered_delivery=1,
        short_message=b"Hello",
    )
    first = template.encode(1, "84901234567")
    second = template.encode(2, "8490")
    assert _parse(first).destination_addr == b"84901234567"
    assert _parse(second).destination_addr == b"8490"
    assert len(first) - len(second) == 7


def test_short_message_over_254_octets_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 254"):
        SubmitTemplate(
            source_addr_ton=0,
            source_addr_npi=0,
            source_addr="",
            dest_addr_ton=1,
            dest_addr_npi=1,
            esm_class=0,
            data_coding=0,
            validity_period=None,
            registered_delivery=1,
            short_message=bytes(MAX_SHORT_MESSAGE + 1),
        )


# --- responses out ------------------------------------------------------------------------------

RESPONSES = {
    "deliver_sm_resp": DELIVER_SM_RESP,
    "enquire_link_resp": ENQUIRE_LINK_RESP,
    "generic_nack": GENERIC_NACK,
    "unbind_resp": UNBIND_RESP,
}


@PROPERTY
@given(command=st.sampled_from(sorted(RESPONSES)), sequence=UINT32, status=UINT32)
def test_responses_are_smpplibs(command: str, sequence: int, status: int) -> None:
    ours = encode_response(RESPONSES[command], sequence, status)
    assert ours == _make(command, sequence, status)
    assert encode_response(RESPONSES[command], sequence) == _make(command, sequence)


def test_deliver_sm_resp_carries_an_empty_message_id() -> None:
    expected = bytes.fromhex("00000011 80000005 00000000 00000007 00")
    assert encode_response(DELIVER_SM_RESP, 7) == expected


def test_a_response_without_a_fast_encoding_is_refused() -> None:
    with pytest.raises(ValueError, match="0x80000004"):
        encode_response(SUBMIT_SM_RESP, 1)


# --- PDUs in ------------------------------------------------------------------------------------

UNKNOWN_TAG = st.integers(0, 0xFFFF).filter(lambda tag: tag not in OPTIONAL.values())
RECEIPT_ID = st.text(PRINTABLE, min_size=1, max_size=64)


def _tlv_for(tag: int, draw: st.DrawFn) -> bytes:
    """A well-formed TLV for a tag smpplib's DeliverSM knows."""
    param = DELIVER_TLVS[tag]
    if param.type is int:
        return _tlv(tag, draw(st.binary(min_size=param.size, max_size=param.size)))
    if param.type is str:
        value = draw(st.binary(max_size=40).map(lambda b: b.replace(b"\0", b"")))
        return _tlv(tag, value + b"\0")
    return _tlv(tag, draw(st.binary(max_size=300)))


@st.composite
def extra_tlvs(draw: st.DrawFn) -> bytes:
    """TLVs appended by hand: unknown tags, and any tag smpplib's DeliverSM knows."""
    tlvs = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            tlvs.append(_tlv(draw(UNKNOWN_TAG), draw(st.binary(max_size=20))))
        else:
            tlvs.append(_tlv_for(draw(st.sampled_from(sorted(DELIVER_TLVS))), draw))
    return b"".join(tlvs)


@st.composite
def deliver_sms(draw: st.DrawFn) -> bytes:
    """A well-formed deliver_sm as smpplib writes it, perhaps with more TLVs after."""
    fields: dict[str, Any] = {
        "source_addr": draw(st.text(DIGITS, max_size=20)),
        "destination_addr": draw(st.text(PRINTABLE, max_size=20)),
        "esm_class": draw(st.integers(0, 255)),
        "short_message": draw(st.binary(max_size=MAX_SHORT_MESSAGE)),
        "receipted_message_id": draw(st.none() | RECEIPT_ID),
        "message_state": draw(st.none() | st.integers(0, 255)),
        "network_error_code": draw(st.none() | st.binary(min_size=1, max_size=3)),
    }
    given_fields = {name: value for name, value in fields.items() if value is not None}
    raw = _make("deliver_sm", draw(UINT32), draw(UINT32), **given_fields)
    extra = draw(extra_tlvs())
    return _with_body(raw, raw[16:] + extra) if extra else raw


@st.composite
def submit_sm_resps(draw: st.DrawFn) -> bytes:
    """A submit_sm_resp from smpplib, or by hand: empty body, any octets for message_id."""
    sequence, status = draw(UINT32), draw(UINT32)
    kind = draw(st.sampled_from(["smpplib", "empty", "octets"]))
    if kind == "smpplib":
        message_id = draw(st.none() | st.text(PRINTABLE, max_size=64))
        return _make("submit_sm_resp", sequence, status, message_id=message_id)
    if kind == "empty":
        return _pdu(SUBMIT_SM_RESP, status, sequence, b"")
    octets = draw(st.binary(max_size=64)).replace(b"\0", b"")
    return _pdu(SUBMIT_SM_RESP, status, sequence, octets + b"\0")


@st.composite
def other_pdus(draw: st.DrawFn) -> bytes:
    """A PDU left to smpplib: a command with no fast path, or one smpplib does not know."""
    sequence, status = draw(UINT32), draw(UINT32)
    if draw(st.booleans()):
        command = draw(st.sampled_from(["enquire_link", "unbind", "generic_nack", "unbind_resp"]))
        return _make(command, sequence, status)
    command_id = draw(UINT32.filter(lambda c: c not in (SUBMIT_SM_RESP, DELIVER_SM)))
    return _pdu(command_id, status, sequence, draw(st.binary(max_size=40)))


def _kind(raw: bytes) -> type:
    command_id = struct.unpack_from(">L", raw, 4)[0]
    return {SUBMIT_SM_RESP: SubmitSmResp, DELIVER_SM: DeliverSm}.get(command_id, RawPdu)


@PROPERTY
@given(
    raws=st.lists(st.one_of(deliver_sms(), submit_sm_resps(), other_pdus()), max_size=6),
    data=st.data(),
)
def test_a_stream_read_in_pieces_is_read_as_smpplib_reads_it(
    raws: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(raws)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    buffer = bytearray()
    read: list[Pdu] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        buffer += stream[start:end]
        read += read_pdus(buffer)
        assert len(buffer) < 16 or len(buffer) < struct.unpack_from(">L", buffer)[0]
        assert stream[: end - len(buffer)] == b"".join(raws[: len(read)])
    assert buffer == b""
    assert len(read) == len(raws)
    for fast, raw in zip(read, raws, strict=True):
        assert type(fast) is _kind(raw)  # nothing well-formed falls back to smpplib
        assert_same(fast, raw)


# --- what is not sure is left to smpplib --------------------------------------------------------


@st.composite
def damaged_deliver_sms(draw: st.DrawFn) -> bytes:
    """A deliver_sm damaged in its body: cut, an octet changed, octets added, or random."""
    raw = draw(deliver_sms())
    body = raw[16:]
    damage = draw(st.sampled_from(["cut", "octet", "append", "random"]))
    if damage == "cut":
        body = body[: draw(st.integers(0, len(body)))]
    elif damage == "octet" and body:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
    elif damage == "append":
        body += draw(st.binary(min_size=1, max_size=8))
    else:
        body = draw(st.binary(max_size=80))
    return _with_body(raw, body)


@PROPERTY
@given(raw=damaged_deliver_sms())
def test_a_damaged_deliver_sm_is_read_as_smpplib_reads_it_or_left_to_it(raw: bytes) -> None:
    trailer = _make("enquire_link", 1)  # what a read past the body would see
    buffer = bytearray(raw + trailer)
    damaged, after = read_pdus(buffer)
    assert_same(damaged, raw)
    assert after == RawPdu(0x15, 0, 1, trailer)


@PROPERTY
@given(sequence=UINT32, status=UINT32, body=st.binary(max_size=40))
def test_any_submit_sm_resp_is_read_as_smpplib_reads_it_or_left_to_it(
    sequence: int, status: int, body: bytes
) -> None:
    raw = _pdu(SUBMIT_SM_RESP, status, sequence, body)
    assert_same(_read_one(raw), raw)


def _receipt(*tlvs: bytes, short_message: bytes = b"id:1 stat:DELIVRD") -> bytes:
    raw = _make("deliver_sm", 9, esm_class=4, short_message=short_message)
    return _with_body(raw, raw[16:] + b"".join(tlvs))


MALFORMED = {
    "no body": _pdu(DELIVER_SM, 0, 9, b""),
    "body cut in a C-string": _with_body(_receipt(), b"\x00\x00\x00123"),
    "body cut before sm_length": _with_body(_receipt(), _receipt()[16:32]),
    "no NUL anywhere": _pdu(DELIVER_SM, 0, 9, b"\x01" * 40),
    "sm_length beyond the body": _with_body(_receipt(), _receipt()[16:-3]),
    "sm_length one beyond the body": _with_body(_receipt(), _receipt()[16:-1]),
    "TLV header cut": _receipt(b"\x04\x27\x00"),
    "TLV length beyond the body": _receipt(_tlv(0x001E, b"abc\0")[:-1]),
    "receipted_message_id without NUL": _receipt(_tlv(0x001E, b"abc")),
    "empty receipted_message_id": _receipt(_tlv(0x001E, b"")),
    "message_state of 2 octets": _receipt(_tlv(0x0427, b"\x00\x02")),
    "sar_msg_ref_num of 1 octet": _receipt(_tlv(0x020C, b"\x01")),
    "a TLV smpplib's deliver_sm does not have": _receipt(_tlv(0x0005, b"\x01")),
    "message_id without NUL": _pdu(SUBMIT_SM_RESP, 0, 9, b"abc"),
    "bytes after message_id": _pdu(SUBMIT_SM_RESP, 0, 9, b"abc\0\0\0"),
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_pdu_read_otherwise_by_smpplib_is_left_to_it(raw: bytes) -> None:
    assert _read_one(raw) == RawPdu(*struct.unpack_from(">LLL", raw, 4), raw)


def test_receipt_values_are_smpplibs() -> None:
    raw = _make(
        "deliver_sm",
        9,
        esm_class=4,
        short_message=b"id:0A1B stat:DELIVRD err:000",
        receipted_message_id="0A1B",
        message_state=2,
        network_error_code=b"\x03\x00\x01",
    )
    fast = _read_one(raw)
    assert fast == DeliverSm(
        sequence=9,
        esm_class=4,
        short_message=b"id:0A1B stat:DELIVRD err:000",
        receipted_message_id=b"0A1B",
        message_state=2,
        network_error_code=b"\x03\x00\x01",
        message_payload=None,
    )
    assert_same(fast, raw)


def test_an_empty_short_message_is_none_unless_tlvs_follow_as_in_smpplib() -> None:
    bare = _make("deliver_sm", 9, esm_class=4, short_message=b"")
    with_tlv = _make("deliver_sm", 9, esm_class=4, short_message=b"", message_state=2)
    bare_read, with_tlv_read = _read_one(bare), _read_one(with_tlv)
    assert isinstance(bare_read, DeliverSm) and isinstance(with_tlv_read, DeliverSm)
    assert bare_read.short_message is None
    assert with_tlv_read.short_message == b""
    assert_same(bare_read, bare)
    assert_same(with_tlv_read, with_tlv)


def test_message_payload_stays_out_of_short_message_as_in_smpplib() -> None:
    raw = _receipt(_tlv(0x0424, b"id:1 stat:DELIVRD"), short_message=b"")
    fast = _read_one(raw)
    assert isinstance(fast, DeliverSm)
    assert (fast.short_message, fast.message_payload) == (b"", b"id:1 stat:DELIVRD")
    assert_same(fast, raw)


@pytest.mark.parametrize("tag", sorted(OPTIONAL.values()), ids=hex)
def test_every_tlv_smpplib_names_is_read_as_smpplib_reads_it(tag: int) -> None:
    param = DELIVER_TLVS.get(tag)
    size = getattr(param, "size", 1) if param is None or param.type is int else 4
    value = bytes(range(1, size)) + (b"\0" if param is not None and param.type is str else b"\1")
    raw = _receipt(_tlv(tag, value))
    fast = _read_one(raw)
    if param is None:  # a TLV of another command: smpplib's deliver_sm cannot read it
        assert isinstance(fast, RawPdu)
        with pytest.raises(KeyError):
            _parse(raw)
    else:
        assert isinstance(fast, DeliverSm)
        assert_same(fast, raw)


# --- framing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 15, 65537, 0xFFFFFFFF])
def test_a_bad_command_length_is_refused(length: int) -> None:
    good = _make("enquire_link", 3)
    bad = struct.pack(">LLLL", length, DELIVER_SM, 0, 4)
    buffer = bytearray(good + bad + b"\0" * 32)
    with pytest.raises(BadLength) as refused:
        read_pdus(buffer)
    assert isinstance(refused.value, ValueError)
    assert refused.value.length == length
    assert refused.value.decoded == [RawPdu(0x15, 0, 3, good)]
    assert buffer.startswith(bad)


def test_the_largest_pdu_waits_for_its_last_octet() -> None:
    raw = _pdu(0x00010000, 0, 5, bytes(65536 - 16))
    buffer = bytearray(raw[:-1])
    assert read_pdus(buffer) == []
    assert len(buffer) == 65535
    buffer += raw[-1:]
    assert read_pdus(buffer) == [RawPdu(0x00010000, 0, 5, raw)]
    assert buffer == b""


def test_less_than_a_header_waits() -> None:
    buffer = bytearray(b"\0\0\0")
    assert read_pdus(buffer) == []
    assert buffer == b"\0\0\0"
