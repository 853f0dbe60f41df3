"""Who may see subscriber numbers in delivery logs, look-ups by number, and their audit.

Numbers appear in full only to auditors (who check what was sent to whom) and operators (who
answer a subscriber's complaint with the SMSC's ids). The authority's people read the same
log with numbers masked: they need the outcome per area, not who the recipients were. Admins
manage people and tokens and need no numbers either, so they read masked logs too.
Every export and every look-up is appended to the audit log, the number masked there.
"""

from sqlmodel import Session, col, select

from campaigns import audit
from campaigns.errors import InvalidInput, PermissionDenied
from campaigns.models import Campaign, Message, MessagePart, Role, User
from campaigns.numbers import NumberRejected, normalise_msisdn

NUMBER_READERS = (Role.AUDITOR, Role.OPERATOR)


def sees_numbers(actor: User) -> bool:
    """Whether `actor` reads subscriber numbers in full."""
    return actor.role in NUMBER_READERS


def record_export(*, session: Session, actor: User | str, campaign: Campaign, masked: bool) -> None:
    """Note in the audit log that `actor` exported the campaign's delivery log."""
    audit.record(
        session=session,
        actor=actor,
        action="campaign.export_messages",
        subject=f"campaign:{campaign.id}",
        campaign_id=campaign.id,
        details={"numbers": "masked" if masked else "full", "format": "csv"},
    )


def receipt_error(message: Message) -> int | None:
    """The receipt's error code, when the message ended on a receipt rather than a submit."""
    if message.last_status not in (None, 0):
        return None  # error_code holds the command_status of a failed submit
    return message.error_code


def messages_to(
    *, session: Session, actor: User, raw: str, limit: int
) -> list[tuple[Message, str, list[str]]]:
    """Messages to one number across campaigns, newest first, each with its campaign's title
    and its parts' SMSC ids; the look-up is audited."""
    if not sees_numbers(actor):
        raise PermissionDenied("only an auditor or an operator may look up a number")
    try:
        msisdn = normalise_msisdn(raw)
    except NumberRejected as error:
        raise InvalidInput(f"msisdn: {error}") from error
    found = session.exec(
        select(Message, Campaign.title)
        .join(Campaign, col(Campaign.id) == col(Message.campaign_id))
        .where(Message.msisdn == msisdn)
        .order_by(col(Message.id).desc())
        .limit(limit)
    ).all()
    ids: dict[int, list[str]] = {}
    message_ids = [message.id for message, _ in found if message.id is not None]
    for part in session.exec(
        select(MessagePart)
        .where(col(MessagePart.message_id).in_(message_ids))
        .order_by(col(MessagePart.part_no), col(MessagePart.id))
    ):
        ids.setdefault(part.message_id, []).append(f"{part.part_no}:{part.smsc_message_id}")
    audit.record(
        session=session,
        actor=actor,
        action="message.lookup",
        subject="messages",
        details={"msisdn": msisdn, "found": len(found)},
    )
    return [(message, title, ids.get(message.id or 0, [])) for message, title in found]


def cli_actor(login: str) -> str:
    """How the audit log names a person at the command line."""
    return f"cli:{login}"
