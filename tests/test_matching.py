"""Receipts matched to messages in the database: per account, on normalised ids, never guessed."""

from collections.abc import Callable
from functools import partial

import pytest
from sqlalchemy import Engine, func, select, update

from campaigns.models import Campaign, CampaignStatus, Message, MessagePart, PendingReceipt
from dispatcher.sending import claims, matching
from dispatcher.sending.housekeeping import expire_unanswered
from dispatcher.sending.matching import ReceiptMatcher
from dispatcher.sending.receipts import Receipt
from dispatcher.sending.smsc_ids import DEC_AFTER, AccountIds, IdBase
from dispatcher.sending.submissions import Answer, Outcome

ACCOUNT = "smsc1"
DEC, HEX = IdBase.DEC, IdBase.HEX


def matcher_for(engine: Engine, submit: IdBase = DEC, receipt: IdBase = DEC) -> ReceiptMatcher:
    """A matcher for ACCOUNT, whose SMSC writes ids as declared."""
    return ReceiptMatcher(engine, accounts={ACCOUNT: AccountIds(submit, receipt)})


def statuses(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(select(Message.status).order_by(Message.id)).scalars())  # type: ignore[arg-type]


def pending(engine: Engine) -> list[tuple[str, str, bool]]:
    """(SMSC id, reason, expired) of every receipt stored without a match."""
    with engine.connect() as connection:
        return [
            tuple(row)  # type: ignore[misc]
            for row in connection.execute(
                select(
                    PendingReceipt.smsc_message_id, PendingReceipt.reason, PendingReceipt.expired
                ).order_by(PendingReceipt.id)  # type: ignore[arg-type]
            )
        ]


def store_submit_results(
    engine: Engine, results: list[tuple[int, int, str | None, int]], account: str = ACCOUNT
) -> None:
    """Claim the messages for worker 1, then store the SMSC's answers as its bind gives them."""
    with engine.connect() as connection:
        campaign_id = connection.execute(select(Message.campaign_id)).scalars().first()
    assert campaign_id is not None
    claims.claim(engine, campaign_id=campaign_id, worker_id=1, limit=100)
    last = {message_id: part for message_id, part, _, _ in results}
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
                final=part == last[message_id],
                account=account,
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


def delivered(smsc_id: str, account: str = ACCOUNT, state: str = "DELIVRD") -> Receipt:
    return Receipt(smsc_id, state, 0, None, account)


@pytest.mark.parametrize(
    ("submit", "receipt", "resp_id", "receipt_id", "decoy"),
    [
        (DEC, DEC, "4096", "0000004096", "40960"),  # zero-padded
        (HEX, HEX, "100a", "0000100A", "100a0"),  # upper-case and zero-padded
        (HEX, HEX, "ABC", "abc", "abcd"),
        (DEC, HEX, "4096", "1000", "1000"),  # decimal in the answer, hex in the receipt
        (HEX, DEC, "1000", "4096", "4096"),  # and the other way round
        (IdBase.TEXT, IdBase.TEXT, "a-1f-Z", "a-1f-Z", "a-1f-z"),
    ],
)
def test_ids_match_on_their_value_however_the_smsc_writes_them(
    engine: Engine,
    messages: list[int],
    submit: IdBase,
    receipt: IdBase,
    resp_id: str,
    receipt_id: str,
    decoy: str,
) -> None:
    # Another message holds an id that a careless reading could take: it stays untouched.
    store_submit_results(engine, [(messages[0], 0, resp_id, 0), (messages[1], 0, decoy, 0)])
    acks = Acks()
    acks.apply(matcher_for(engine, submit, receipt), delivered(receipt_id))
    assert statuses(engine)[:2] == ["delivered", "submitted"]
    assert acks.sent == [receipt_id]


def test_ids_of_two_smscs_never_meet(engine: Engine, messages: list[int]) -> None:
    store_submit_results(engine, [(messages[0], 0, "7", 0)], account="a")
    store_submit_results(engine, [(messages[1], 0, "7", 0)], account="b")
    matcher = ReceiptMatcher(engine, accounts={n: AccountIds(DEC, DEC) for n in "ab"})
    Acks().apply(matcher, Receipt("7", "UNDELIV", 1, None, "b"))
    assert statuses(engine)[:2] == ["submitted", "undeliverable"]


def test_an_ambiguous_receipt_is_never_applied(engine: Engine, messages: list[int]) -> None:
    # The SMSC handed out the same id twice (a counter that wrapped): nobody can say which.
    store_submit_results(engine, [(messages[0], 0, "42", 0), (messages[1], 0, "42", 0)])
    acks = Acks()
    acks.apply(matcher_for(engine), delivered("42"))
    assert statuses(engine)[:2] == ["submitted", "submitted"]
    assert pending(engine) == [("42", matching.AMBIGUOUS, False)]
    assert acks.sent == ["42"]  # stored, so answered


def test_a_receipt_before_its_answer_is_stored_acknowledged_and_applied_later(
    engine: Engine, messages: list[int]
) -> None:
    matcher, acks = matcher_for(engine, DEC, HEX), Acks()
    acks.apply(matcher, delivered("FF"))
    assert acks.sent == ["FF"]  # in the database, so the SMSC may forget it
    assert pending(engine) == [("FF", matching.UNMATCHED, False)]
    assert matcher.retry_pending() == 0
    store_submit_results(engine, [(messages[0], 0, "255", 0), (messages[1], 0, "256", 0)])
    assert matcher.retry_pending() == 1
    assert pending(engine) == []
    assert statuses(engine)[:2] == ["delivered", "submitted"]


def test_a_repeated_receipt_changes_nothing_and_is_not_kept(
    engine: Engine, messages: list[int]
) -> None:
    store_submit_results(engine, [(messages[0], 0, "1", 0)])
    matcher, acks = matcher_for(engine), Acks()
    acks.apply(matcher, delivered("1"))
    acks.apply(matcher, Receipt("1", "UNDELIV", 1, None, ACCOUNT))
    assert statuses(engine)[0] == "delivered"
    assert matcher.repeated == 1 and pending(engine) == []
    assert acks.sent == ["1", "1"]


def test_a_late_receipt_corrects_unknown_and_is_counted(
    engine: Engine, messages: list[int]
) -> None:
    store_submit_results(engine, [(messages[0], 0, "1", 0), (messages[1], 0, "2", 0)])
    assert expire_unanswered(engine, timeout=3600) == 0
    assert expire_unanswered(engine, timeout=0) == 2
    assert statuses(engine)[:2] == ["unknown", "unknown"]
    Acks().apply(matcher_for(engine), delivered("1"))
    assert statuses(engine)[:2] == ["delivered", "unknown"]
    with engine.connect() as connection:
        late = connection.execute(
            select(Message.late_receipt).order_by(Message.id)  # type: ignore[arg-type]
        ).scalars()
        assert list(late)[:2] == [True, False]


def test_intermediate_states_are_recorded_and_end_nothing(
    engine: Engine, messages: list[int]
) -> None:
    store_submit_results(engine, [(messages[0], 0, "1", 0)])
    matcher = matcher_for(engine)
    Acks().apply(matcher, delivered("1", state="ENROUTE"))
    assert statuses(engine)[0] == "submitted"
    with engine.connect() as connection:
        assert connection.execute(select(MessagePart.receipt_state)).scalar_one() == "ENROUTE"
    Acks().apply(matcher, delivered("1", state="UNKNOWN"))  # message_state 7: not final
    assert statuses(engine)[0] == "submitted"
    Acks().apply(matcher, delivered("1"))
    assert statuses(engine)[0] == "delivered"


def test_a_long_message_is_delivered_only_when_every_part_is(
    engine: Engine, messages: list[int]
) -> None:
    with engine.begin() as connection:
        connection.execute(update(Message).values(parts=2))
    store_submit_results(
        engine,
        [
            (messages[0], 0, "10", 0),
            (messages[0], 1, "11", 0),
            (messages[1], 0, "20", 0),
            (messages[1], 1, "21", 0),
        ],
    )
    matcher, acks = matcher_for(engine), Acks()
    acks.apply(matcher, delivered("10"), delivered("20"))
    assert statuses(engine)[:2] == ["submitted", "submitted"]
    acks.apply(matcher, delivered("11"), Receipt("21", "UNDELIV", 1, None, ACCOUNT))
    assert statuses(engine)[:2] == ["delivered", "undeliverable"]


def test_an_smsc_reporting_once_per_message_ends_every_part(
    engine: Engine, messages: list[int]
) -> None:
    with engine.begin() as connection:
        connection.execute(update(Message).values(parts=3))
    store_submit_results(engine, [(messages[0], p, f"3{p}", 0) for p in range(3)])
    matcher = matcher_for(engine)
    matcher.per_message.add(ACCOUNT)
    Acks().apply(matcher, delivered("32"))  # the last part's id
    assert statuses(engine)[0] == "delivered"
    with engine.connect() as connection:
        parts = connection.execute(select(MessagePart.status)).scalars()
        assert list(parts) == ["delivered"] * 3


def test_auto_waits_until_the_formats_are_learnt_then_matches(
    engine: Engine, messages: list[int]
) -> None:
    store_submit_results(engine, [(messages[0], 0, "4096", 0), (messages[1], 0, "1000", 0)])
    matcher = ReceiptMatcher(engine)  # nothing declared: `auto` on both sides
    # Digits only on both sides: decimal and hex are both possible, so nothing is applied.
    Acks().apply(matcher, delivered("1000"))
    assert statuses(engine)[:2] == ["submitted", "submitted"]
    assert pending(engine) == [("1000", matching.IDS_UNKNOWN, False)]
    # The SMSC's answers show only digits for long enough: decimal. Its receipts show a hex
    # letter: hex. Now "1000" in a receipt is 4096 in an answer.
    for n in range(DEC_AFTER):
        matcher.saw_submit_id(ACCOUNT, str(5000 + n))
    Acks().apply(matcher, delivered("100b"))  # an id no message has: kept, and it teaches
    assert matcher.ids(ACCOUNT).submit == DEC and matcher.ids(ACCOUNT).receipt == HEX
    assert matcher.retry_pending() == 1
    assert statuses(engine)[:2] == ["delivered", "submitted"]


def test_unmatched_receipts_expire_and_are_counted(engine: Engine, messages: list[int]) -> None:
    Acks().apply(matcher_for(engine), delivered("404"))
    assert matching.expire_pending(engine, ttl=3600) == 0
    assert matching.expire_pending(engine, ttl=0) == 1
    assert pending(engine) == [("404", matching.UNMATCHED, True)]
    with engine.connect() as connection:
        assert matching.pending_counts(connection) == {"waiting": 0, "expired": 1}


def test_answers_stored_twice_add_no_part_twice(engine: Engine, messages: list[int]) -> None:
    # A commit whose acknowledgement was lost is retried with the same answers.
    store_submit_results(engine, [(messages[0], 0, "1", 0)])
    store_submit_results(engine, [(messages[0], 0, "1", 0)])
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(MessagePart)).scalar_one() == 1


def test_messages_of_a_cancelled_campaign_still_settle(
    engine: Engine, messages: list[int], campaign_id: int
) -> None:
    store_submit_results(engine, [(messages[0], 0, "1", 0), (messages[1], 0, "2", 0)])
    with engine.begin() as connection:
        connection.execute(update(Campaign).values(status=CampaignStatus.CANCELLED))
    Acks().apply(matcher_for(engine), delivered("1"))
    expire_unanswered(engine, timeout=0)
    # Driven by the messages, not by their campaign: the receipt counts, the rest times out.
    assert statuses(engine)[:2] == ["delivered", "unknown"]
