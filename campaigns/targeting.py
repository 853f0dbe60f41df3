"""Expansion of a campaign's target into message rows, entirely inside the database."""

from sqlalchemy import bindparam, text
from sqlmodel import Session

from campaigns.models import MessageStatus

# One statement: no recipient list ever passes through Python. ROW_NUMBER numbers the
# recipients so that every `batch_size` of them share a batch number.
_EXPAND = text(
    """
    INSERT INTO message (campaign_id, batch_no, msisdn, area_code, status)
    SELECT :campaign_id, (ROW_NUMBER() OVER (ORDER BY s.id) - 1) / :batch_size,
           s.msisdn, s.area_code, :queued
    FROM subscriber s
    WHERE s.area_code IN :area_codes AND s.status = 'active'
    """
).bindparams(bindparam("area_codes", expanding=True))


def insert_messages(
    *, session: Session, campaign_id: int, area_codes: list[str], batch_size: int
) -> int:
    """Insert one queued message per active subscriber in `area_codes`; return how many."""
    result = session.connection().execute(
        _EXPAND,
        {
            "campaign_id": campaign_id,
            "batch_size": batch_size,
            "queued": MessageStatus.QUEUED.value,
            "area_codes": area_codes,
        },
    )
    return int(result.rowcount)
