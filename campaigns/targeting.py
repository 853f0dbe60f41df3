"""Who a campaign reaches, worked out inside the database: no recipient list passes through Python.

Recipients are the active subscribers registered in the target areas (and in units that map
into them), plus the numbers of the campaign's recipient list, each number once. A list's
numbers count only while they are active subscribers in the authority's areas, unless the
authority is granted off-registry lists (checked again here, at expansion, for subscribers who
changed since the upload). Opted-out
numbers are left out of `normal` campaigns and kept in `urgent` ones. An exercise reaches the
authority's registered test numbers only, whatever its target says. Each message keeps the area
its number is registered in (none for a number outside the registry), so that reports count
by area without joining the registry.
"""

from sqlalchemy import bindparam, insert, text
from sqlmodel import Session, col, select

from campaigns import areas
from campaigns.models import (
    Authority,
    Campaign,
    Message,
    MessageStatus,
    Mode,
    Priority,
    Subscriber,
)

_RECIPIENTS = """
    WITH reached AS (
        SELECT s.msisdn AS msisdn, s.area_code AS area_code
        FROM subscriber s
        WHERE s.area_code IN :area_codes AND s.status = 'active'
        UNION ALL
        SELECT e.msisdn, l.area_code FROM recipient_list_entry e
        LEFT JOIN subscriber l ON l.msisdn = e.msisdn
        WHERE e.list_id = :list_id AND (:off_registry OR EXISTS (
            SELECT 1 FROM subscriber r
            WHERE r.msisdn = e.msisdn AND r.status = 'active' AND r.area_code IN :allowed_codes
        ))
    ),
    distinct_numbers AS (
        SELECT msisdn, MAX(area_code) AS area_code FROM reached GROUP BY msisdn
    )
    SELECT d.msisdn, d.area_code FROM distinct_numbers d
    WHERE :urgent OR NOT EXISTS (SELECT 1 FROM opt_out o WHERE o.msisdn = d.msisdn)
"""
# ROW_NUMBER numbers the recipients so that every `batch_size` of them share a batch number.
_EXPAND = text(
    f"""
    INSERT INTO message (campaign_id, batch_no, msisdn, area_code, parts, status)
    SELECT :campaign_id, (ROW_NUMBER() OVER (ORDER BY r.msisdn) - 1) / :batch_size,
           r.msisdn, r.area_code, :parts, :queued
    FROM ({_RECIPIENTS}) r
    """
).bindparams(bindparam("area_codes", expanding=True), bindparam("allowed_codes", expanding=True))
_COUNT = text(f"SELECT COUNT(*) FROM ({_RECIPIENTS}) r").bindparams(
    bindparam("area_codes", expanding=True), bindparam("allowed_codes", expanding=True)
)


def _parameters(session: Session, campaign: Campaign) -> dict[str, object]:
    return {
        # An empty IN list is not valid SQL everywhere: a code no unit has stands in for it.
        "area_codes": areas.resolve(session, campaign.target_areas) or ["-"],
        "list_id": campaign.recipient_list_id or -1,
        "urgent": campaign.priority == Priority.URGENT,
        **_list_rules(session, campaign),
    }


def _list_rules(session: Session, campaign: Campaign) -> dict[str, object]:
    """Where a list's numbers must be registered, unless the authority may go beyond."""
    if campaign.recipient_list_id is None:
        return {"off_registry": False, "allowed_codes": ["-"]}
    authority = session.get(Authority, campaign.authority_id)
    assert authority is not None
    return {
        "off_registry": authority.off_registry_lists,
        "allowed_codes": areas.resolve(session, authority.areas) or ["-"],
    }


def count_recipients(*, session: Session, campaign: Campaign) -> int:
    """How many messages the campaign would send now."""
    if campaign.mode == Mode.EXERCISE:
        return len(_test_numbers(session, campaign))
    return int(session.connection().execute(_COUNT, _parameters(session, campaign)).scalar_one())


def insert_messages(*, session: Session, campaign: Campaign, batch_size: int, parts: int) -> int:
    """Insert one queued message per recipient; return how many."""
    if campaign.mode == Mode.EXERCISE:
        numbers = _test_numbers(session, campaign)
        registered = dict(
            session.exec(
                select(Subscriber.msisdn, Subscriber.area_code).where(
                    col(Subscriber.msisdn).in_(numbers)
                )
            ).all()
        )
        rows = [
            {
                "campaign_id": campaign.id,
                "batch_no": i // batch_size,
                "msisdn": msisdn,
                "area_code": registered.get(msisdn),
                "parts": parts,
                "status": MessageStatus.QUEUED,
            }
            for i, msisdn in enumerate(numbers)
        ]
        if rows:
            session.connection().execute(insert(Message), rows)
        return len(rows)
    parameters = _parameters(session, campaign) | {
        "campaign_id": campaign.id,
        "batch_size": batch_size,
        "parts": parts,
        "queued": MessageStatus.QUEUED.value,
    }
    return int(session.connection().execute(_EXPAND, parameters).rowcount)


def _test_numbers(session: Session, campaign: Campaign) -> list[str]:
    authority = session.get(Authority, campaign.authority_id)
    assert authority is not None
    return sorted(set(authority.test_numbers))
