"""Tests for message content: encoding detection, segment counts, splitting, unaccented text."""

import math
import unicodedata

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from campaigns import gsm7
from campaigns.content import (
    Concatenation,
    ContentEmpty,
    ContentError,
    ContentInfo,
    ContentTooLong,
    Encoding,
    Part,
    analyse,
    concatenation,
    decode_part,
    non_gsm7_characters,
    normalise,
    split,
    unaccented,
)

EXTENSION = "^{}\\[~]|€\f"
BASIC = "".join(sorted(gsm7.BASIC_CHARACTERS))
VIETNAMESE_LOWER = (
    "aăâbcdđeêghiklmnoôơpqrstuưvxyáàảãạắằẳẵặấầẩẫậéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ"
)
VIETNAMESE = VIETNAMESE_LOWER + VIETNAMESE_LOWER.upper()
EMOJI = "😀🎉👍🇻🇳"
UCS2_LETTER = "ắ"  # one UTF-16 unit, not GSM-7


def _udh_length(part: Part) -> int:
    return 1 + part.short_message[0] if part.udhi else 0


def _air_octets(part: Part) -> int:
    """Octets the part takes on the air interface (GSM-7 packed with fill bits after the UDH)."""
    udh = _udh_length(part)
    payload = len(part.short_message) - udh
    if part.data_coding == 0x00:
        return math.ceil((udh * 8 + payload * 7) / 8)
    return udh + payload


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 153, ContentInfo(Encoding.GSM7, 153, 153, 1)),
        ("a" * 154, ContentInfo(Encoding.GSM7, 154, 154, 1)),
        ("a" * 160, ContentInfo(Encoding.GSM7, 160, 160, 1)),
        ("a" * 161, ContentInfo(Encoding.GSM7, 161, 161, 2)),
        ("a" * 306, ContentInfo(Encoding.GSM7, 306, 306, 2)),
        ("a" * 307, ContentInfo(Encoding.GSM7, 307, 307, 3)),
        (UCS2_LETTER * 70, ContentInfo(Encoding.UCS2, 70, 70, 1)),
        (UCS2_LETTER * 71, ContentInfo(Encoding.UCS2, 71, 71, 2)),
        (UCS2_LETTER * 134, ContentInfo(Encoding.UCS2, 134, 134, 2)),
        (UCS2_LETTER * 135, ContentInfo(Encoding.UCS2, 135, 135, 3)),
        (UCS2_LETTER * 153, ContentInfo(Encoding.UCS2, 153, 153, 3)),
        (UCS2_LETTER * 160, ContentInfo(Encoding.UCS2, 160, 160, 3)),
        (UCS2_LETTER * 161, ContentInfo(Encoding.UCS2, 161, 161, 3)),
        (UCS2_LETTER * 202, ContentInfo(Encoding.UCS2, 202, 202, 4)),
        ("😀" * 35, ContentInfo(Encoding.UCS2, 35, 70, 1)),
        ("😀" * 35 + "a", ContentInfo(Encoding.UCS2, 36, 71, 2)),
        ("€" * 80, ContentInfo(Encoding.GSM7, 80, 160, 1)),
        ("€" * 80 + "a", ContentInfo(Encoding.GSM7, 81, 161, 2)),
        (
            "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà",
            ContentInfo(Encoding.GSM7, 44, 44, 1),
        ),
        ("`", ContentInfo(Encoding.UCS2, 1, 1, 1)),  # the backtick is not in GSM 03.38
    ],
)
def test_analyse_boundaries(text: str, expected: ContentInfo) -> None:
    assert analyse(text) == expected
    assert len(split(text, reference=1, max_parts=255)) == expected.segments


@pytest.mark.parametrize("char", list(EXTENSION))
def test_extension_characters_count_twice(char: str) -> None:
    assert analyse("x" + char) == ContentInfo(Encoding.GSM7, 2, 3, 1)
    assert analyse("a" * 158 + char).segments == 1
    assert analyse("a" * 159 + char).segments == 2
    (part,) = split("x" + char, reference=0)
    assert part.short_message == b"x" + gsm7.CODES[char]
    assert part.short_message[1] == gsm7.ESCAPE


@pytest.mark.parametrize(
    ("prefix", "first_part_septets"),
    [(152, 152), (153, 153), (151, 153)],
)
def test_escape_pair_never_cut(prefix: int, first_part_septets: int) -> None:
    text = "a" * prefix + "€" + "b" * 100
    first, second = split(text, reference=7)
    assert len(first.short_message) - _udh_length(first) == first_part_septets
    assert decode_part(first) + decode_part(second) == text
    if prefix >= 152:
        assert decode_part(second).startswith("€")
    else:
        assert decode_part(first).endswith("€")


def test_escape_at_position_152_changes_segment_count() -> None:
    text = "a" * 152 + "€" + "b" * 152  # 306 septets, but the € cannot straddle parts
    assert analyse(text) == ContentInfo(Encoding.GSM7, 305, 306, 3)
    assert len(split(text, reference=1)) == 3


@pytest.mark.parametrize(
    ("prefix", "first_part_units"),
    [(66, 66), (65, 67), (67, 67)],
)
def test_surrogate_pair_never_cut(prefix: int, first_part_units: int) -> None:
    text = UCS2_LETTER * prefix + "😀" + UCS2_LETTER * 40
    first, second = split(text, reference=200)
    assert (len(first.short_message) - _udh_length(first)) // 2 == first_part_units
    assert decode_part(first) + decode_part(second) == text


def test_surrogate_pair_cut_avoided_with_sixteen_bit_reference() -> None:
    text = UCS2_LETTER * 65 + "😀" + UCS2_LETTER * 40
    first, second = split(text, reference=0x1234, sixteen_bit_reference=True)
    assert decode_part(first) == UCS2_LETTER * 65
    assert decode_part(second).startswith("😀")


@pytest.mark.parametrize(
    ("sixteen_bit_reference", "udh", "gsm_units", "ucs2_units"),
    [
        (False, bytes([0x05, 0x00, 0x03, 0x34, 2, 1]), 153, 67),
        (True, bytes([0x06, 0x08, 0x04, 0x12, 0x34, 2, 1]), 152, 66),
    ],
)
def test_concatenation_header(
    sixteen_bit_reference: bool, udh: bytes, gsm_units: int, ucs2_units: int
) -> None:
    reference = 0x1234 if sixteen_bit_reference else 0x34
    for text, units, octets, data_coding in [
        ("x" * 200, gsm_units, 1, 0x00),
        (UCS2_LETTER * 100, ucs2_units, 2, 0x08),
    ]:
        parts = split(text, reference=reference, sixteen_bit_reference=sixteen_bit_reference)
        assert len(parts) == 2
        assert all(p.udhi and p.data_coding == data_coding for p in parts)
        assert parts[0].short_message[: len(udh)] == udh
        assert len(parts[0].short_message) == len(udh) + units * octets
        assert parts[1].short_message[len(udh) - 1] == 2  # sequence number
        assert [concatenation(p) for p in parts] == [
            Concatenation(reference, 2, sequence) for sequence in (1, 2)
        ]


def test_single_part_has_no_header() -> None:
    (part,) = split("Xin chao", reference=9)
    assert part == Part(data_coding=0x00, udhi=False, short_message=b"Xin chao")
    assert concatenation(part) is None
    (ucs2,) = split("Xin chào 😀", reference=9)
    assert ucs2 == Part(0x08, False, "Xin chào 😀".encode("utf-16-be"))


@pytest.mark.parametrize(
    ("text", "plain", "plain_units"),
    [
        ("Đắk Đoa", "Dak Doa", 7),
        ("Ðắk Ðoa", "Dak Doa", 7),  # U+00D0 typed for Đ
        ("Phường Hội Thương, thành phố Pleiku", "Phuong Hoi Thuong, thanh pho Pleiku", 35),
        (
            "Bộ Y tế khuyến cáo: đeo khẩu trang, rửa tay thường xuyên [nCoV] €0",
            "Bo Y te khuyen cao: deo khau trang, rua tay thuong xuyen [nCoV] €0",
            69,
        ),
    ],
)
def test_vietnamese_unaccented(text: str, plain: str, plain_units: int) -> None:
    assert analyse(text).encoding is Encoding.UCS2
    assert unaccented(text) == plain
    assert analyse(plain) == ContentInfo(Encoding.GSM7, len(plain), plain_units, 1)


def test_unaccented_keeps_what_cannot_be_mapped() -> None:
    text = "“Sơ tán” – ngay 😀 ที่"  # Thai marks are outside U+0300..U+036F and stay
    plain = unaccented(text)
    assert plain == "“So tan” – ngay 😀 ที่"
    assert analyse(plain).encoding is Encoding.UCS2
    assert non_gsm7_characters(plain) == ["“", "”", "–", "😀", "ท", "\u0e35", "\u0e48"]


def test_text_is_nfc_normalised_first() -> None:
    decomposed = unicodedata.normalize("NFD", "Đắk Đoa")
    assert decomposed != "Đắk Đoa"
    assert analyse(decomposed) == analyse("Đắk Đoa")
    assert decode_part(split(decomposed, reference=0)[0]) == "Đắk Đoa"
    assert analyse("e\u0301") == ContentInfo(Encoding.GSM7, 1, 1, 1)  # é composes into GSM-7


@pytest.mark.parametrize(
    ("text", "max_parts", "needed"),
    [
        ("a" * 161, 1, 2),
        ("a" * 1531, 10, 11),
        (UCS2_LETTER * 671, 10, 11),
        ("€" * 500, 3, 7),
    ],
)
def test_too_long_is_refused(text: str, max_parts: int, needed: int) -> None:
    with pytest.raises(ContentTooLong, match=rf"needs {needed} SMS parts.*maximum of {max_parts}"):
        split(text, reference=1, max_parts=max_parts)
    assert analyse(text).segments == needed
    assert len(split(text, reference=1, max_parts=needed)) == needed


@pytest.mark.parametrize("text", ["", " ", "\n\t ", "\u3000"])
def test_empty_is_refused(text: str) -> None:
    with pytest.raises(ContentEmpty):
        analyse(text)
    with pytest.raises(ContentEmpty):
        split(text, reference=1)


def test_unpaired_surrogate_is_refused() -> None:
    with pytest.raises(ContentError, match="surrogate"):
        split("abc\ud800", reference=1)


@pytest.mark.parametrize(
    ("reference", "max_parts", "sixteen_bit_reference"),
    [(256, 10, False), (-1, 10, False), (65536, 10, True), (1, 0, False), (1, 256, False)],
)
def test_invalid_arguments(reference: int, max_parts: int, sixteen_bit_reference: bool) -> None:
    with pytest.raises(ValueError, match="outside"):
        split(
            "hello",
            reference=reference,
            max_parts=max_parts,
            sixteen_bit_reference=sixteen_bit_reference,
        )


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        (Part(0x00, False, bytes([0x1B, 0x1B])), " "),  # reserved double escape shows a space
        (Part(0x00, False, bytes([0x1B, 0x41])), "A"),  # unknown extension: default character
        (Part(0x00, True, bytes([0x05, 0x00, 0x03, 1, 1, 1, 0x00, 0x02])), "@$"),
    ],
)
def test_decode_part(part: Part, expected: str) -> None:
    assert decode_part(part) == expected


@pytest.mark.parametrize(
    "part",
    [
        Part(0x00, False, bytes([0x80])),
        Part(0x00, False, bytes([0x41, 0x1B])),
        Part(0x08, False, b"\x00"),
        Part(0x08, False, b"\xd8\x3d"),  # lone high surrogate
        Part(0x04, False, b"\x00"),
        Part(0x00, True, bytes([0x05, 0x00])),
    ],
)
def test_decode_part_rejects_malformed(part: Part) -> None:
    with pytest.raises(ContentError):
        decode_part(part)


_biased_alphabet = st.one_of(
    st.sampled_from(BASIC),
    st.sampled_from(EXTENSION),
    st.sampled_from(VIETNAMESE),
    st.sampled_from(EMOJI),
    st.characters(codec="utf-8"),
)
_texts = st.one_of(
    st.text(),
    st.text(alphabet=_biased_alphabet, max_size=900),
    st.text(alphabet=st.sampled_from(BASIC + EXTENSION), min_size=140, max_size=700),
    st.text(alphabet=st.sampled_from(VIETNAMESE + EMOJI + " "), min_size=60, max_size=400),
)


@settings(max_examples=200, deadline=None)
@given(
    text=_texts,
    max_parts=st.integers(min_value=1, max_value=12),
    sixteen_bit_reference=st.booleans(),
    reference=st.integers(min_value=0, max_value=0xFFFF),
)
def test_split_round_trips(
    text: str, max_parts: int, sixteen_bit_reference: bool, reference: int
) -> None:
    if not sixteen_bit_reference:
        reference &= 0xFF
    nfc = normalise(text)
    if not nfc.strip():
        with pytest.raises(ContentEmpty):
            split(text, reference=reference, sixteen_bit_reference=sixteen_bit_reference)
        return
    info = analyse(text, sixteen_bit_reference=sixteen_bit_reference)
    event(f"{info.encoding}, {'refused' if info.segments > max_parts else 'split'}")
    event(f"{info.encoding}, segments={min(info.segments, 3)}")
    if info.segments > max_parts:
        with pytest.raises(ContentTooLong):
            split(
                text,
                reference=reference,
                max_parts=max_parts,
                sixteen_bit_reference=sixteen_bit_reference,
            )
        return
    parts = split(
        text, reference=reference, max_parts=max_parts, sixteen_bit_reference=sixteen_bit_reference
    )
    assert len(parts) == info.segments
    assert "".join(decode_part(p) for p in parts) == nfc
    assert info.characters == len(nfc)
    expected_coding = 0x00 if info.encoding is Encoding.GSM7 else 0x08
    for sequence, part in enumerate(parts, start=1):
        assert part.data_coding == expected_coding
        assert _air_octets(part) <= 140
        assert part.udhi == (len(parts) > 1)
        if part.udhi:
            header = concatenation(part)
            assert header is not None
            assert (header.reference, header.total, header.sequence) == (
                reference,
                len(parts),
                sequence,
            )


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(VIETNAMESE + BASIC + EXTENSION), min_size=1))
def test_unaccented_vietnamese_is_gsm7(text: str) -> None:
    plain = unaccented(text)
    assert not non_gsm7_characters(plain)
    assert unaccented(plain) == plain
    if plain.strip():
        assert analyse(plain).encoding is Encoding.GSM7
        assert analyse(plain).characters == len(normalise(text))
