"""The record of accepted submit_sm a simulator appends to, and readers for it.

One line per accepted submit_sm: `destination_addr<TAB>smsc_message_id<TAB>segment`, where
segment is `ref/total/seq` for a part of a concatenated message (from the sar_* TLVs or else
a concatenation UDH) and `-` for a single-part message. The simulator writes each batch of
lines with one unbuffered os.write before it writes the answers of that batch, so a killed
simulator has recorded every submit_sm it answered (and perhaps a few whose answer it never
sent). Restarted on the same file, it appends.
"""

import os
from collections import Counter
from collections.abc import Iterator
from typing import NamedTuple

from dispatcher.smsc.pdu import ShortMessage, Tag

__all__ = [
    "RecordEntry",
    "iter_record",
    "read_record",
    "read_record_parts",
    "record_line",
    "segment",
]

_SAR_MSG_REF_NUM = 0x020C
_SAR_TOTAL_SEGMENTS = 0x020E
_SAR_SEGMENT_SEQNUM = 0x020F
_UDHI = 0x40
_IEI_CONCAT_8BIT = 0x00
_IEI_CONCAT_16BIT = 0x08


class RecordEntry(NamedTuple):
    """One accepted submit_sm; ref, total and seq are (0, 1, 1) for a single-part message."""

    destination: str
    message_id: str
    ref: int
    total: int
    seq: int


def segment(message: ShortMessage) -> tuple[int, int, int] | None:
    """(reference, total, sequence) of a concatenated message's part, or None."""
    tlvs = message.tlvs
    total, seq = tlvs.get(_SAR_TOTAL_SEGMENTS), tlvs.get(_SAR_SEGMENT_SEQNUM)
    if total and seq:
        return int.from_bytes(tlvs.get(_SAR_MSG_REF_NUM, b""), "big"), total[0], seq[0]
    if not message.esm_class & _UDHI:
        return None
    raw = message.short_message or tlvs.get(Tag.MESSAGE_PAYLOAD, b"")
    if not raw:
        return None
    pos, end = 1, min(len(raw), 1 + raw[0])
    while pos + 2 <= end:
        iei, length = raw[pos], raw[pos + 1]
        value = raw[pos + 2 : pos + 2 + length]
        if iei == _IEI_CONCAT_8BIT and len(value) == 3:
            return value[0], value[1], value[2]
        if iei == _IEI_CONCAT_16BIT and len(value) == 4:
            return int.from_bytes(value[:2], "big"), value[2], value[3]
        pos += 2 + length
    return None


def record_line(message: ShortMessage, message_id: str) -> str:
    """The record line of an accepted submit_sm, newline included."""
    part = segment(message)
    info = "-" if part is None else f"{part[0]}/{part[1]}/{part[2]}"
    return f"{message.destination_addr}\t{message_id}\t{info}\n"


def iter_record(path: str | os.PathLike[str]) -> Iterator[RecordEntry]:
    """Every whole line of the record; a last line cut short by a kill is left out."""
    with open(path, encoding="latin-1", newline="\n") as lines:
        for line in lines:
            if not line.endswith("\n"):
                return  # torn by a crash mid-write: that submit_sm was never answered
            destination, message_id, info = line[:-1].split("\t")
            if info == "-":
                yield RecordEntry(destination, message_id, 0, 1, 1)
            else:
                ref, total, seq = (int(field) for field in info.split("/"))
                yield RecordEntry(destination, message_id, ref, total, seq)


def read_record(path: str | os.PathLike[str]) -> Counter[str]:
    """Destination -> how many messages it was sent: single-part ones, and part 1 of others.

    A multi-part message counts once, by its first part (whichever its other parts did); a
    number missing from the counter was never sent anything, one counted twice got a
    message twice. Use `read_record_parts` to check every part.
    """
    return Counter(entry.destination for entry in iter_record(path) if entry.seq == 1)


def read_record_parts(path: str | os.PathLike[str]) -> Counter[tuple[str, int]]:
    """(destination, part sequence number) -> lines; a single-part message is part 1."""
    return Counter((entry.destination, entry.seq) for entry in iter_record(path))
