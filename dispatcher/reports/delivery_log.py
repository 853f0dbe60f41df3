"""A campaign's delivery log as CSV: one row per message, streamed in constant memory.

Messages are read a few batches at a time along `ix_message_campaign_batch` (a keyset on the
batch number, each page in a short read-only transaction), with the SMSC ids of their parts.
Numbers are masked unless the reader may see them in full. A cell a spreadsheet would take
for a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) is prefixed with
`'`, except a plain E.164 number, which a spreadsheet reads as a number.
"""

import csv
import io
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import Connection, Engine, select

from campaigns.models import Message, MessagePart
from campaigns.numbers import mask
from dispatcher.db import reading
from dispatcher.sending.answers import status_name

HEADER = (
    "message_id",
    "msisdn",
    "area_code",
    "status",
    "attempts",
    "command_status",
    "command_status_name",
    "receipt_error",
    "submitted_at",
    "done_at",
    "smsc_message_ids",
    "doubt",
)
BATCHES_PER_PAGE = 5
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_E164 = re.compile(r"^\+\d{6,15}$")
_message = Message.__table__  # type: ignore[attr-defined]
_part = MessagePart.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Chunk:
    """A piece of the CSV text and how many message rows it holds."""

    text: str
    rows: int


def neutralised(value: str) -> str:
    """The cell as written: prefixed with `'` where a spreadsheet would run it as a formula."""
    if value.startswith(_FORMULA_STARTS) and not _E164.match(value):
        return "'" + value
    return value


def chunks(engine: Engine, campaign_id: int, *, masked: bool) -> Iterator[Chunk]:
    """The CSV of a campaign's messages, header first, a page of batches per chunk."""
    yield Chunk(_csv([HEADER]), 0)
    batch = 0
    last = _last_batch(engine, campaign_id)
    while batch <= last:
        with reading(engine).connect() as connection:
            page = _page(connection, campaign_id, batch, batch + BATCHES_PER_PAGE - 1)
            smsc_ids = _smsc_ids(connection, [row.id for row in page])
        if page:
            yield Chunk(
                _csv(_row(row, smsc_ids.get(row.id, ""), masked) for row in page), len(page)
            )
        batch += BATCHES_PER_PAGE


def write(engine: Engine, campaign_id: int, out: TextIO, *, masked: bool) -> int:
    """Write the CSV of a campaign's messages to `out`; return the number of messages."""
    count = 0
    for chunk in chunks(engine, campaign_id, masked=masked):
        out.write(chunk.text)
        count += chunk.rows
    return count


def _last_batch(engine: Engine, campaign_id: int) -> int:
    with reading(engine).connect() as connection:
        last = connection.execute(
            select(_message.c.batch_no)
            .where(_message.c.campaign_id == campaign_id)
            .order_by(_message.c.batch_no.desc())
            .limit(1)
        ).scalar()
    return -1 if last is None else int(last)


def _page(connection: Connection, campaign_id: int, first: int, last: int) -> list[Any]:
    return list(
        connection.execute(
            select(_message)
            .where(
                _message.c.campaign_id == campaign_id,
                _message.c.batch_no >= first,
                _message.c.batch_no <= last,
            )
            .order_by(_message.c.batch_no, _message.c.id)
        ).all()
    )


def _smsc_ids(connection: Connection, message_ids: list[int]) -> dict[int, str]:
    """Each message's SMSC ids, `1:id` per part (a part sent twice has two)."""
    if not message_ids:
        return {}
    rows = connection.execute(
        select(_part.c.message_id, _part.c.part_no, _part.c.smsc_message_id)
        .where(_part.c.message_id.between(min(message_ids), max(message_ids)))
        .order_by(_part.c.message_id, _part.c.part_no, _part.c.id)
    ).all()
    found: dict[int, list[str]] = defaultdict(list)
    for message_id, part_no, smsc_id in rows:
        found[message_id].append(f"{part_no}:{smsc_id}")
    return {message_id: " ".join(ids) for message_id, ids in found.items()}


def _row(row: Any, smsc_ids: str, masked: bool) -> list[object]:
    by_command = row.last_status not in (None, 0)
    return [
        row.id,
        neutralised(mask(row.msisdn) if masked else row.msisdn),
        neutralised(row.area_code or ""),
        row.status,
        row.attempts,
        "" if row.last_status is None else f"0x{row.last_status:02X}",
        "" if row.last_status is None else status_name(row.last_status),
        "" if by_command or row.error_code is None else row.error_code,
        _when(row.submitted_at),
        _when(row.done_at),
        neutralised(smsc_ids),
        neutralised(row.doubt or ""),
    ]


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _csv(rows: Any) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()
