"""Reading delivery receipts, and matching them to messages in the database."""

from collections.abc import Callable
from functools import partial

import pytest
from sqlalchemy import Engine, insert, select

from campaigns import areas
from campaigns.models import Campaign, Message, MessageStatus, Role
from campaigns.people import create_authority, create_user
from dispatcher.db import session_scope
from dispatcher.sending import claims
from dispatcher.sending.housekeeping import expire_unanswered
from dispatcher.sending.receipts import Receipt, ReceiptMatcher, candidate_ids, is_receipt, parse
from dispatcher.sending.submissions import Answer, Outcome

TEXT = b"id:7 sub:001 dlvrd:001 submit date:2002021200 done date:2002021201 stat:DELIVRD err:000"


@pytest.mark.parametrize(
    ("tlv_id", "state", "text", "expected"),
    [
        (b"ABC123", 2, TEXT, Receipt("ABC123", MessageStatus.DELIVERED, 0)),
        (None, None, TEXT, Receipt("7", MessageStatus.DELIVERED, 0)),
        (
            None,
            None,
            TEXT.replace(b"DELIVRD", b"UNDELIV").replace(b"000", b"001"),
            Receipt("7", MessageStatus.UNDELIVERABLE, 1),
        ),
        ("9", 3, b"", Receipt("9", MessageStatus.EXPIRED, None)),
        (None, 8, TEXT, Receipt("7", MessageStatus.REJECTED, 0)),
        (None, None, b"id:5 stat:REJECTD err:00B", Receipt("5", MessageStatus.REJECTED, 11)),
    ],
)
def test_receipt_read_from_tlvs_first_then_text(
    tlv_id: bytes | str | None, state: int | None, text: bytes, expected: Receipt
) -> None:
    assert parse(receipted_message_id=tlv_id, message_state=state, text=text) == expected


def test_unreadable_receipt_is_none() -> None:
    assert parse(receipted_message_id=None, message_state=None, text=b"hello") is None


def test_receipt_esm_class() -> None:
    assert is_receipt(0x04) and not is_receipt(0x00) and not is_receipt(0x40)


def test_candidate_ids_cover_hex_and_decimal() -> None:
    assert set(candidate_ids("255")) >= {"255", "ff", "FF"}
    assert "255" in candidate_ids("ff")


@pytest.fixture
def messages(engine: Engine) -> list[int]:
    with session_scope(engine) as session:
        areas.seed_gia_lai(session)
        authority = create_authority(session=session, code="A", name="A")
        user, _ = create_user(
            session=session, username="u", name="u", role=Role.SUBMITTER, authority=authority
        )
        campaign = Campaign(
            title="t",
            text="x",
            sender="S",
            target_areas=["622"],
            authority_id=authority.id,
            created_by_id=user.id,
        )
        session.add(campaign)
        session.flush()
        table = Message.__table__  # type: ignore[attr-defined]
        session.connection().execute(
            insert(table),
            [
                {
                    "campaign_id": campaign.id,
                    "batch_no": 0,
                    "msisdn": f"+8491234{i:04d}",
                    "area_code": "622",
                    "status": "queued",
                }
                for i in range(3)
            ],
        )
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(select(Message.id).order_by(Message.id))]  # type: ignore[arg-type]


@pytest.fixture
def campaign_id(engine: Engine, messages: list[int]) -> int:
    with engine.connect() as connection:
        found = connection.execute(select(Message.campaign_id)).scalars().first()
    assert found is not None
    return int(found)


def _statuses(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(select(Message.status).order_by(Message.id))]  # type: ignore[arg-type]


def store_submit_results(engine: Engine, results: list[tuple[int, int, str | None, int]]) -> None:
    """Claim the messages for worker 1, then store the SMSC's answers as its bind gives them."""
    with engine.connect() as connection:
        campaign_id = connection.execute(select(Message.campaign_id)).scalars().first()
    assert campaign_id is not None
    claims.claim(engine, campaign_id=campaign_id, worker_id=1, limit=100)
    parts = {message_id: part for message_id, part, _, _ in results}  # the last part given
    claims.store_answers(
        engine,
        1,
        [
            Answer(
                message_id,
                Outcome.ACCEPTED if status == 0 else Outcome.FAILED,
                part_no=part,
                smsc_message_id=smsc_id,
                command_status=status,
                attempts=1,
                final=part == parts[message_id],
            )
            for message_id, part, smsc_id, status in results
        ],
    )


class Acks:
    """Acknowledgements that record which receipts they answered."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def of(self, *receipts: Receipt) -> list[tuple[Receipt, Callable[[], None]]]:
        return [(r, partial(self.sent.append, r.smsc_message_id)) for r in receipts]

    def apply(self, matcher: ReceiptMatcher, *receipts: Receipt) -> None:
        for ack in matcher.apply(self.of(*receipts)):
            ack()


def test_receipt_before_its_submit_answer_is_stored_waits_and_then_applies(
    engine: Engine, messages: list[int]
) -> None:
    matcher, acks = ReceiptMatcher(engine), Acks()
    early = Receipt("ff", MessageStatus.DELIVERED, 0)  # the SMSC writes this id in hex
    acks.apply(matcher, early)
    assert list(matcher.waiting) == ["ff"]
    assert acks.sent == []  # not stored yet, so not acknowledged: the SMSC would send it again
    store_submit_results(
        engine,
        [
            (messages[0], 0, "255", 0),
            (messages[1], 0, "256", 0),
            (messages[2], 0, None, 0x0B),
        ],
    )
    acks.apply(matcher, Receipt("256", MessageStatus.UNDELIVERABLE, 1))
    assert matcher.waiting == {} and matcher.applied == 2
    assert sorted(acks.sent) == ["256", "ff"]
    assert _statuses(engine) == ["delivered", "undeliverable", "failed"]


def test_a_receipt_does_not_change_a_final_status(engine: Engine, messages: list[int]) -> None:
    store_submit_results(engine, [(messages[0], 0, "1", 0)])
    matcher, acks = ReceiptMatcher(engine, patience=0), Acks()
    acks.apply(matcher, Receipt("1", MessageStatus.DELIVERED, 0))
    acks.apply(matcher, Receipt("1", MessageStatus.UNDELIVERABLE, 0))
    assert _statuses(engine)[0] == "delivered"
    assert matcher.abandoned == 1
    assert acks.sent == ["1", "1"]  # one stored, one given up on: both answered


def test_messages_without_a_receipt_end_unknown_after_the_timeout(
    engine: Engine, messages: list[int], campaign_id: int
) -> None:
    store_submit_results(engine, [(messages[0], 0, "1", 0)])
    assert expire_unanswered(engine, timeout=3600) == 0
    assert expire_unanswered(engine, timeout=0) == 1
    assert _statuses(engine)[0] == "unknown"
    # A receipt that arrives after that changes nothing.
    Acks().apply(ReceiptMatcher(engine), Receipt("1", MessageStatus.DELIVERED, 0))
    assert _statuses(engine)[0] == "unknown"


def test_a_long_message_is_delivered_only_when_every_part_is(
    engine: Engine, messages: list[int]
) -> None:
    with engine.begin() as connection:
        connection.execute(Message.__table__.update().values(parts=2))  # type: ignore[attr-defined]
    store_submit_results(
        engine,
        [
            (messages[0], 0, "10", 0),
            (messages[0], 1, "11", 0),
            (messages[1], 0, "20", 0),
            (messages[1], 1, "21", 0),
        ],
    )
    matcher, acks = ReceiptMatcher(engine), Acks()
    acks.apply(
        matcher,
        Receipt("10", MessageStatus.DELIVERED, 0),
        Receipt("20", MessageStatus.DELIVERED, 0),
    )
    assert _statuses(engine)[:2] == ["submitted", "submitted"]
    acks.apply(
        matcher,
        Receipt("11", MessageStatus.DELIVERED, 0),
        Receipt("21", MessageStatus.UNDELIVERABLE, 1),
    )
    assert _statuses(engine)[:2] == ["delivered", "undeliverable"]
