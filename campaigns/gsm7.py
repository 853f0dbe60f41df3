"""The GSM 03.38 default alphabet and its extension table, as unpacked septets (one per octet)."""

from collections.abc import Mapping
from types import MappingProxyType

ESCAPE = 0x1B

# The default alphabet in code order; position 0x1B is the escape to the extension table.
_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(_BASIC) == 128

# Characters reached through the escape: each costs two septets (0x1B then the code).
_EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

EXTENSION_CHARACTERS = frozenset(_EXTENSION)
BASIC_CHARACTERS = frozenset(_BASIC) - {"\x1b"}

CODES: Mapping[str, bytes] = MappingProxyType(
    {char: bytes([code]) for code, char in enumerate(_BASIC) if code != ESCAPE}
    | {char: bytes([ESCAPE, code]) for char, code in _EXTENSION.items()}
)
"""Each GSM-7 character's unpacked code: one octet, or the escape and the extension code."""

_DECODE_EXTENSION = {code: char for char, code in _EXTENSION.items()}


def decode(octets: bytes) -> str:
    """Decode unpacked GSM-7 septets (one per octet) into text; raise ValueError if malformed."""
    chars: list[str] = []
    escaped = False
    for octet in octets:
        if octet > 0x7F:
            raise ValueError(f"octet 0x{octet:02X} is not a GSM-7 septet")
        if escaped:
            # 03.38: an unknown extension code shows the default-alphabet character,
            # and the reserved double escape shows a space.
            if octet == ESCAPE:
                chars.append(" ")
            else:
                chars.append(_DECODE_EXTENSION.get(octet, _BASIC[octet]))
            escaped = False
        elif octet == ESCAPE:
            escaped = True
        else:
            chars.append(_BASIC[octet])
    if escaped:
        raise ValueError("GSM-7 text ends with a lone escape")
    return "".join(chars)
