"""Which characters the words of a campaign may hold.

What an approver reads must be what subscribers receive:
- no control characters (a text may break lines: line feed and carriage return are allowed
  in the message text only);
- no bidirectional controls (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C): they make
  a text display in another order than it is sent;
- something visible: a text of only spaces, zero-width or other invisible characters is empty.
"""

import unicodedata
from typing import Final

BIDI_CONTROLS: Final = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
INVISIBLE: Final = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")
"""Blank characters Unicode counts as letters or symbols (Hangul fillers, a blank braille cell)."""
LINE_BREAKS: Final = frozenset("\n\r")


def _invisible(ch: str) -> bool:
    return ch.isspace() or ch in INVISIBLE or unicodedata.category(ch) in ("Cc", "Cf", "Zs")


def problem(value: str, *, multiline: bool = False) -> str | None:
    """What is wrong with `value` under the rules above, or None."""
    for ch in value:
        if ch in BIDI_CONTROLS:
            return f"a bidirectional control character (U+{ord(ch):04X}) is not allowed"
        if unicodedata.category(ch) in ("Cc", "Cs") and not (multiline and ch in LINE_BREAKS):
            return f"control character U+{ord(ch):04X} is not allowed"
    if value and all(_invisible(ch) for ch in value):
        return "holds nothing visible"
    return None
