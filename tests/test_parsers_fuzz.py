"""Hypothesis fuzz of what reads outside input: receipts, the simulator's PDUs, CSV imports.

Each may refuse its input only with its own typed error (or, for the receipt parser, by
answering None): any other exception would end the bind, the SMSC session or the import with a
crash instead of a refusal. `DISPATCHER_FUZZ_EXAMPLES` scales the examples (`make fuzz`).
"""

import csv
import io
import itertools
import os
import struct
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session

from campaigns import areas, registry
from campaigns.errors import InvalidInput
from campaigns.numbers import Rejection
from dispatcher.sending import receipts
from dispatcher.sending.smsc_ids import IdBase, key, receipt_key
from dispatcher.smsc import pdu

SCALE = max(1, int(os.environ.get("DISPATCHER_FUZZ_EXAMPLES", "4")) // 4)
FAST = settings(max_examples=300 * SCALE, deadline=None)
SLOW = settings(
    max_examples=40 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- delivery receipts -------------------------------------------------------------------------

FIELD_VALUES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["DELIVRD", "UNDELIV", "REJECTD", "000", "0x1f", "ff", "²", "٣", "9" * 5000]),
)


@st.composite
def receipt_texts(draw: st.DrawFn) -> bytes:
    """Receipt-like texts: the standard fields in any order and form, among noise."""
    parts = draw(
        st.lists(
            st.one_of(
                st.tuples(
                    st.sampled_from(["id", "stat", "err", "ID", "Stat", "sub"]), FIELD_VALUES
                ).map(lambda kv: f"{kv[0]}:{kv[1]}"),
                st.text(max_size=10),
            ),
            max_size=8,
        )
    )
    return " ".join(parts).encode(draw(st.sampled_from(["latin-1", "utf-8"])), "replace")


@FAST
@given(
    receipted_message_id=st.one_of(st.none(), st.binary(max_size=70), st.text(max_size=70)),
    message_state=st.one_of(st.none(), st.integers(min_value=0, max_value=255)),
    text=st.one_of(st.none(), st.binary(max_size=200), receipt_texts()),
)
@example(receipted_message_id=None, message_state=None, text=b"id:1 stat:DELIVRD err:\xb2")
def test_a_receipt_is_read_or_answered_none_never_a_crash(
    receipted_message_id: bytes | str | None, message_state: int | None, text: bytes | None
) -> None:
    found = receipts.parse(
        receipted_message_id=receipted_message_id, message_state=message_state, text=text
    )
    if found is not None:
        assert found.smsc_message_id and len(found.smsc_message_id) <= 64
        for submit, receipt in itertools.product(IdBase, repeat=2):
            receipt_key(found.smsc_message_id, submit=submit, receipt=receipt)


@FAST
@given(smsc_id=st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=64))
def test_an_id_and_its_padded_upper_case_form_have_one_key(smsc_id: str) -> None:
    written = smsc_id.upper().rjust(64, "0")
    assert receipt_key(written, submit=IdBase.HEX, receipt=IdBase.HEX) == key(smsc_id)


# --- the simulator's PDU decoder ---------------------------------------------------------------

C_STRING = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=20)
OCTET = st.integers(min_value=0, max_value=255)


@st.composite
def short_messages(draw: st.DrawFn) -> pdu.ShortMessage:
    """Any submit_sm / deliver_sm the codec can write."""
    return pdu.ShortMessage(
        source_addr=draw(C_STRING),
        destination_addr=draw(C_STRING),
        short_message=draw(st.binary(max_size=254)),
        source_addr_ton=draw(OCTET),
        source_addr_npi=draw(OCTET),
        dest_addr_ton=draw(OCTET),
        dest_addr_npi=draw(OCTET),
        service_type=draw(C_STRING),
        esm_class=draw(OCTET),
        protocol_id=draw(OCTET),
        priority_flag=draw(OCTET),
        schedule_delivery_time=draw(C_STRING),
        validity_period=draw(C_STRING),
        registered_delivery=draw(OCTET),
        replace_if_present_flag=draw(OCTET),
        data_coding=draw(OCTET),
        sm_default_msg_id=draw(OCTET),
        tlvs=draw(
            st.dictionaries(
                st.integers(min_value=0, max_value=0xFFFF), st.binary(max_size=40), max_size=4
            )
        ),
    )


def _body(message: pdu.ShortMessage) -> bytes:
    return pdu.build_submit_sm(1, message)[pdu.HEADER_SIZE :]


@FAST
@given(message=short_messages())
def test_a_short_message_reads_back_as_written(message: pdu.ShortMessage) -> None:
    assert pdu.parse_short_message(_body(message)) == message


@FAST
@given(
    message=short_messages(),
    cut=st.integers(min_value=0, max_value=400),
    noise=st.binary(max_size=20),
    flip=st.tuples(st.integers(min_value=0, max_value=400), OCTET),
)
def test_a_damaged_short_message_is_a_pdu_error_or_a_message(
    message: pdu.ShortMessage, cut: int, noise: bytes, flip: tuple[int, int]
) -> None:
    body = bytearray(_body(message)[:cut] + noise)
    if body:
        body[flip[0] % len(body)] = flip[1]
    try:
        parsed = pdu.parse_short_message(bytes(body))
    except pdu.PduError:
        return
    pdu.message_text(parsed)  # what the simulator does with it next


@FAST
@given(body=st.binary(max_size=300))
def test_any_bytes_are_a_pdu_error_or_a_pdu(body: bytes) -> None:
    for parse in (pdu.parse_bind, pdu.parse_short_message, lambda b: pdu.parse_tlvs(b, 0)):
        try:
            parse(body)
        except pdu.PduError:
            pass


@FAST
@given(
    system_id=C_STRING,
    password=C_STRING,
    tail=st.binary(max_size=10),
    version=OCTET,
)
def test_a_bind_reads_back_or_is_a_pdu_error(
    system_id: str, password: str, tail: bytes, version: int
) -> None:
    request = pdu.BindRequest(system_id, password, "", version)
    body = pdu.build_bind(pdu.CommandId.BIND_TRANSCEIVER, 1, request)[pdu.HEADER_SIZE :]
    assert pdu.parse_bind(body) == request
    try:
        pdu.parse_bind(body[: len(body) // 2] + tail)
    except pdu.PduError:
        pass


def test_the_header_of_a_generated_pdu_names_its_length() -> None:
    raw = pdu.build_enquire_link(7)
    length, command_id, status, sequence = struct.unpack(">IIII", raw[: pdu.HEADER_SIZE])
    assert (length, command_id, status, sequence) == (len(raw), pdu.CommandId.ENQUIRE_LINK, 0, 7)


# --- the CSV importers -------------------------------------------------------------------------

CELLS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["0912345678", "+84 912 345 678", "01623456789", "64", "622", "active", ""]),
)


@st.composite
def csv_files(draw: st.DrawFn, header: list[str]) -> str:
    """A CSV file: the header (sometimes), rows of numbers and noise, sometimes broken quoting."""
    rows = draw(st.lists(st.lists(CELLS, max_size=len(header) + 2), max_size=30))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    if draw(st.booleans()):
        writer.writerow(header)
    writer.writerows(rows)
    text = out.getvalue()
    if draw(st.booleans()):
        text += draw(st.text(max_size=40))  # a broken or foreign tail
    return text


@FAST
@given(text=csv_files(["msisdn", "source"]))
def test_a_number_file_is_rows_and_rejections_or_an_invalid_input(text: str) -> None:
    try:
        for row in registry.number_rows(io.StringIO(text, newline="")):
            if isinstance(row, registry.RowRejection):
                assert row.reason in {r.value for r in Rejection}
            else:
                assert row.msisdn.startswith("+84")
    except InvalidInput:
        pass


@pytest.fixture
def registry_engine(engine: Engine) -> Iterator[Engine]:
    with Session(engine) as session:
        areas.seed(session)
        session.commit()
    yield engine


@SLOW
@given(text=csv_files(["msisdn", "area_code", "status"]))
def test_a_registry_file_imports_or_is_an_invalid_input(registry_engine: Engine, text: str) -> None:
    with Session(registry_engine) as session:
        try:
            summary = registry.import_subscribers(
                session=session, lines=io.StringIO(text, newline=""), actor="test", chunk_rows=7
            )
        except InvalidInput:
            return
        finally:
            session.rollback()  # every example starts from the same registry
    assert summary.read == summary.staged + sum(summary.rejected.values())
