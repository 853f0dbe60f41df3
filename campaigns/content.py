"""Message content: GSM-7 or UCS-2, segment counts, and splitting into concatenated SMPP parts.

Everything starts from the NFC form of the text. A GSM-7 part's `short_message` holds unpacked
septets (one GSM 03.38 code per octet, 0x1B before an extension character); a UCS-2 part's holds
UTF-16-BE, so a character outside the Basic Multilingual Plane (an emoji) takes two units.
"""

import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from campaigns import gsm7


class Encoding(StrEnum):
    """The alphabet a message is sent in."""

    GSM7 = "gsm7"
    UCS2 = "ucs2"


DATA_CODING = {Encoding.GSM7: 0x00, Encoding.UCS2: 0x08}
ESM_CLASS_UDHI = 0x40

# Octets one unit takes in a part's payload (an unpacked septet, or a UTF-16 code unit).
_UNIT_OCTETS = {Encoding.GSM7: 1, Encoding.UCS2: 2}
# Units that fit in a single message without a user data header.
_SINGLE_UNITS = {Encoding.GSM7: 160, Encoding.UCS2: 70}
# Units per part of a concatenated message, by whether the reference is 16-bit.
_PART_UNITS = {
    (Encoding.GSM7, False): 153,
    (Encoding.GSM7, True): 152,
    (Encoding.UCS2, False): 67,
    (Encoding.UCS2, True): 66,
}
_IEI_CONCAT_8BIT = 0x00
_IEI_CONCAT_16BIT = 0x08
_MAX_PARTS_LIMIT = 255  # the "total" field of the concatenation header is one octet

# Letters with no canonical decomposition that a Vietnamese unaccented text maps by hand.
# U+00D0 (Ð, Icelandic eth) is often typed for Đ, which it looks identical to.
_UNACCENTED_LETTERS = str.maketrans({"đ": "d", "Đ": "D", "Ð": "D"})


@dataclass(frozen=True)
class ContentInfo:
    """What a preview shows about a message text."""

    encoding: Encoding
    characters: int  # user-perceived characters (len of the NFC text)
    units: int  # septets (GSM-7, extension characters count 2) or UTF-16 code units (UCS-2)
    segments: int


@dataclass(frozen=True)
class Part:
    """One submit_sm worth of a message."""

    data_coding: int
    udhi: bool  # set esm_class |= ESM_CLASS_UDHI
    short_message: bytes  # UDH (if any) + encoded payload


@dataclass(frozen=True)
class Concatenation:
    """The concatenation information element of a part's user data header."""

    reference: int
    total: int
    sequence: int


class ContentError(ValueError):
    """The message text cannot be sent as it is."""


class ContentEmpty(ContentError):
    """The message text is empty or only whitespace."""

    def __init__(self) -> None:
        super().__init__("message text is empty")


class ContentTooLong(ContentError):
    """The message text needs more parts than allowed."""

    def __init__(self, *, parts: int, max_parts: int) -> None:
        super().__init__(
            f"message text needs {parts} SMS parts, more than the maximum of {max_parts}; "
            "shorten it (an unaccented text fits about twice as much per part)"
        )
        self.parts = parts
        self.max_parts = max_parts


def normalise(text: str) -> str:
    """Return the NFC form of the text."""
    return unicodedata.normalize("NFC", text)


def non_gsm7_characters(text: str) -> list[str]:
    """Return the distinct characters of the NFC text that force UCS-2, in order of appearance."""
    return list(dict.fromkeys(c for c in normalise(text) if c not in gsm7.CODES))


def analyse(text: str, *, sixteen_bit_reference: bool = False) -> ContentInfo:
    """Describe the text's encoding, length and number of SMS segments."""
    nfc = _prepared(text)
    encoding, pieces = _encoded(nfc)
    payloads = _payloads(encoding, pieces, sixteen_bit_reference=sixteen_bit_reference)
    return ContentInfo(
        encoding=encoding,
        characters=len(nfc),
        units=sum(len(piece) for piece in pieces) // _UNIT_OCTETS[encoding],
        segments=len(payloads),
    )


def split(
    text: str, *, reference: int, max_parts: int = 10, sixteen_bit_reference: bool = False
) -> list[Part]:
    """Split the text into SMPP parts, with a concatenation UDH when there is more than one."""
    reference_limit = 0xFFFF if sixteen_bit_reference else 0xFF
    if not 0 <= reference <= reference_limit:
        raise ValueError(f"reference {reference} is outside 0..{reference_limit}")
    if not 1 <= max_parts <= _MAX_PARTS_LIMIT:
        raise ValueError(f"max_parts {max_parts} is outside 1..{_MAX_PARTS_LIMIT}")
    encoding, pieces = _encoded(_prepared(text))
    payloads = _payloads(encoding, pieces, sixteen_bit_reference=sixteen_bit_reference)
    if len(payloads) > max_parts:
        raise ContentTooLong(parts=len(payloads), max_parts=max_parts)
    data_coding = DATA_CODING[encoding]
    if len(payloads) == 1:
        return [Part(data_coding=data_coding, udhi=False, short_message=payloads[0])]
    total = len(payloads)
    return [
        Part(
            data_coding=data_coding,
            udhi=True,
            short_message=_udh(reference, total, sequence, sixteen_bit_reference) + payload,
        )
        for sequence, payload in enumerate(payloads, start=1)
    ]


def unaccented(text: str) -> str:
    """Return the unaccented ("không dấu") form: Latin diacritics stripped, đ/Đ mapped to d/D.

    Only combining diacritical marks (U+0300..U+036F) are dropped, so other scripts keep their
    vowel signs. Characters still outside GSM-7 afterwards (curly quotes, dashes, emoji, other
    scripts) are kept as they are, and the result is then still UCS-2: see non_gsm7_characters.
    """
    decomposed = unicodedata.normalize("NFD", normalise(text).translate(_UNACCENTED_LETTERS))
    stripped = "".join(c for c in decomposed if not 0x300 <= ord(c) <= 0x36F)
    return normalise(stripped)


def decode_part(part: Part) -> str:
    """Decode a part's payload back to text, skipping its user data header if UDHI is set."""
    payload = part.short_message[_udh_length(part) :]
    if part.data_coding == DATA_CODING[Encoding.GSM7]:
        try:
            return gsm7.decode(payload)
        except ValueError as error:
            raise ContentError(str(error)) from error
    if part.data_coding == DATA_CODING[Encoding.UCS2]:
        try:
            return payload.decode("utf-16-be")
        except UnicodeDecodeError as error:
            raise ContentError(f"invalid UCS-2 payload: {error.reason}") from error
    raise ContentError(f"unsupported data_coding 0x{part.data_coding:02X}")


def concatenation(part: Part) -> Concatenation | None:
    """Return the part's concatenation header (8- or 16-bit reference), or None if it has none."""
    header = part.short_message[1 : _udh_length(part)]
    while len(header) >= 2:
        iei, length, data = header[0], header[1], header[2 : 2 + header[1]]
        if len(data) < length:
            raise ContentError("truncated information element in user data header")
        if iei == _IEI_CONCAT_8BIT and length == 3:
            return Concatenation(reference=data[0], total=data[1], sequence=data[2])
        if iei == _IEI_CONCAT_16BIT and length == 4:
            reference = int.from_bytes(data[:2], "big")
            return Concatenation(reference=reference, total=data[2], sequence=data[3])
        header = header[2 + length :]
    return None


def _prepared(text: str) -> str:
    """Return the NFC text, refusing empty text and unpaired surrogates."""
    nfc = normalise(text)
    if not nfc.strip():
        raise ContentEmpty()
    if any("\ud800" <= c <= "\udfff" for c in nfc):
        raise ContentError("message text contains an unpaired surrogate code point")
    return nfc


def _encoded(nfc: str) -> tuple[Encoding, list[bytes]]:
    """Encode each character on its own: GSM-7 if every one fits, else UTF-16-BE."""
    pieces: list[bytes] = []
    for char in nfc:
        code = gsm7.CODES.get(char)
        if code is None:
            return Encoding.UCS2, [c.encode("utf-16-be") for c in nfc]
        pieces.append(code)
    return Encoding.GSM7, pieces


def _payloads(
    encoding: Encoding, pieces: list[bytes], *, sixteen_bit_reference: bool
) -> list[bytes]:
    """Pack encoded characters into part payloads, never cutting an escape or surrogate pair."""
    unit = _UNIT_OCTETS[encoding]
    whole = b"".join(pieces)
    if len(whole) <= _SINGLE_UNITS[encoding] * unit:
        return [whole]
    capacity = _PART_UNITS[encoding, sixteen_bit_reference] * unit
    payloads: list[bytes] = []
    current = bytearray()
    for piece in pieces:
        if len(current) + len(piece) > capacity:
            payloads.append(bytes(current))
            current.clear()
        current += piece
    payloads.append(bytes(current))
    return payloads


def _udh(reference: int, total: int, sequence: int, sixteen_bit_reference: bool) -> bytes:
    """Build the user data header (with its length octet) for one part of a concatenation."""
    if sixteen_bit_reference:
        return bytes([6, _IEI_CONCAT_16BIT, 4, reference >> 8, reference & 0xFF, total, sequence])
    return bytes([5, _IEI_CONCAT_8BIT, 3, reference, total, sequence])


def _udh_length(part: Part) -> int:
    """Return the octets the part's user data header takes, its length octet included."""
    if not part.udhi:
        return 0
    message = part.short_message
    if not message or len(message) < 1 + message[0]:
        raise ContentError("short_message is shorter than its user data header")
    return 1 + message[0]
