"""One campaign, one writer at a time: people and the expansion racing on real transactions.

Each race runs two real transactions on their own threads and connections, at several delays
between them, and checks that the campaign ends in a state the rules allow. On SQLite every
transaction takes the write lock at BEGIN, so the races cannot happen there and the tests show
the rules hold; on PostgreSQL they would fail without the row locks (see `service.locked`).
"""

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from campaigns import approval, service
from campaigns.errors import InvalidState
from campaigns.models import (
    Approval,
    Authority,
    Campaign,
    CampaignBase,
    CampaignStatus,
    Message,
    MessageStatus,
    User,
)
from campaigns.policy import Policy
from campaigns.synthetic import insert_subscribers
from dispatcher.db import session_scope
from dispatcher.sending import jobs
from dispatcher.sending.feeder import Sending
from dispatcher.settings import Settings
from tests.world import build

pytestmark = pytest.mark.timeout(240)
S = CampaignStatus
POLICY = Policy()
SUBSCRIBERS = 20_000
DELAYS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.4)
APPROVED_TEXT = "Sở TT&TT Gia Lai: đeo khẩu trang, rửa tay thường xuyên phòng dịch nCoV"
EDITED_TEXT = "Sở TT&TT Gia Lai: văn bản đã sửa, chưa được phê duyệt"


def _content(text: str = APPROVED_TEXT) -> CampaignBase:
    return CampaignBase(title="nCoV", text=text, sender="GiaLai", target_areas=["64"])


def _user(session: Session, username: str) -> User:
    return session.exec(select(User).where(User.username == username)).one()


@pytest.fixture
def engine_world(engine: Engine) -> Engine:
    build(engine)
    with session_scope(engine) as session:
        insert_subscribers(session=session, count=SUBSCRIBERS)
    return engine


def _submitted(engine: Engine) -> int:
    with session_scope(engine) as session:
        submitter = _user(session, "submitter")
        campaign = service.create(session=session, data=_content(), actor=submitter, policy=POLICY)
        service.submit(session=session, campaign=campaign, actor=submitter)
        assert campaign.id is not None
        return campaign.id


def _approve(engine: Engine, campaign_id: int, who: str, digest: str | None = None) -> str:
    with session_scope(engine) as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        service.approve(
            session=session,
            campaign=campaign,
            actor=_user(session, who),
            content_hash=digest or campaign.content_hash,
            signature=None,
        )
        return str(campaign.status)


def _approved(engine: Engine) -> tuple[int, int]:
    campaign_id = _submitted(engine)
    assert _approve(engine, campaign_id, "approver") == S.APPROVED
    return campaign_id, _campaign(engine, campaign_id).generation


def _edit(engine: Engine, campaign_id: int) -> None:
    with session_scope(engine) as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        service.edit(
            session=session,
            campaign=campaign,
            data=_content(EDITED_TEXT),
            actor=_user(session, "submitter"),
            policy=POLICY,
        )


def _cancel(engine: Engine, campaign_id: int) -> None:
    with session_scope(engine) as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        service.cancel(session=session, campaign=campaign, actor=_user(session, "operator"))


def _expand(engine: Engine, campaign_id: int, generation: int) -> int:
    context = {"engine": engine, "settings": Settings(batch_size=1000)}
    return asyncio.run(jobs.expand_campaign(context, campaign_id, generation))


def _campaign(engine: Engine, campaign_id: int) -> Campaign:
    with Session(engine, expire_on_commit=False) as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        return campaign


def _messages(engine: Engine, campaign_id: int) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.exec(
            select(Message.status, func.count())
            .where(Message.campaign_id == campaign_id)
            .group_by(Message.status)
        ).all()
        numbers = session.exec(
            select(func.count(func.distinct(Message.msisdn))).where(
                Message.campaign_id == campaign_id
            )
        ).one()
    counts = {str(status): int(count) for status, count in rows}
    assert sum(counts.values()) == numbers, "a number was queued twice"
    return counts


def _race(first: Callable[[], Any], second: Callable[[], Any], delay: float) -> list[Any]:
    """Run `first` and, `delay` seconds after it starts, `second`, on two threads."""
    outcomes: list[Any] = [None, None]
    barrier = threading.Barrier(2)

    def run(index: int, action: Callable[[], Any], wait: float) -> None:
        barrier.wait()
        time.sleep(wait)
        try:
            outcomes[index] = action()
        except InvalidState as error:
            outcomes[index] = error

    threads = [
        threading.Thread(target=run, args=(0, first, 0.0)),
        threading.Thread(target=run, args=(1, second, delay)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def _sends_only_approved(engine: Engine, campaign: Campaign) -> None:
    """What the workers would send for it: only approved content, if anything."""
    sending = Sending(engine)
    sending.refresh()
    for candidate in sending.candidates():
        assert candidate.approved_hash == approval.content_hash(candidate)
        assert candidate.text == APPROVED_TEXT


@pytest.mark.parametrize("delay", DELAYS)
def test_an_edit_racing_the_expansion_never_leaves_unapproved_text_to_send(
    engine_world: Engine, delay: float
) -> None:
    engine = engine_world
    campaign_id, generation = _approved(engine)
    expanded, edit = _race(
        lambda: _expand(engine, campaign_id, generation), lambda: _edit(engine, campaign_id), delay
    )
    campaign = _campaign(engine, campaign_id)
    messages = _messages(engine, campaign_id)
    if isinstance(edit, InvalidState):  # the expansion came first: the edit is refused
        assert campaign.status == S.SENDING and campaign.text == APPROVED_TEXT
        assert campaign.approved_hash == campaign.content_hash
        assert expanded == campaign.recipients == messages["queued"] > 0
    else:  # the edit came first: back to submitted, nothing expanded, the old job did nothing
        assert campaign.status == S.SUBMITTED and campaign.text == EDITED_TEXT
        assert campaign.approved_hash is None
        assert expanded == 0 and messages == {}
        # A late job of the approved generation, however late, still does nothing.
        assert _expand(engine, campaign_id, generation) == 0
        assert _messages(engine, campaign_id) == {}
    _sends_only_approved(engine, campaign)


@pytest.mark.parametrize("delay", DELAYS)
def test_a_cancel_racing_the_expansion_always_wins(engine_world: Engine, delay: float) -> None:
    engine = engine_world
    campaign_id, generation = _approved(engine)
    _, cancel = _race(
        lambda: _expand(engine, campaign_id, generation),
        lambda: _cancel(engine, campaign_id),
        delay,
    )
    assert cancel is None  # a cancel is never refused while the campaign can still send
    campaign = _campaign(engine, campaign_id)
    assert campaign.status == S.CANCELLED
    messages = _messages(engine, campaign_id)
    assert MessageStatus.QUEUED not in messages
    assert set(messages) <= {MessageStatus.CANCELLED}
    _sends_only_approved(engine, campaign)


@pytest.mark.parametrize("round_no", range(4))
def test_two_approvers_at_once_make_it_approved(engine_world: Engine, round_no: int) -> None:
    engine = engine_world
    with session_scope(engine) as session:
        authority = session.exec(select(Authority).where(Authority.code == "STTTT-GL")).one()
        authority.approvals_normal = 2
        session.add(authority)
    campaign_id = _submitted(engine)
    first, second = _race(
        lambda: _approve(engine, campaign_id, "approver"),
        lambda: _approve(engine, campaign_id, "approver2"),
        0.0,
    )
    assert sorted([first, second]) == [S.APPROVED, S.SUBMITTED]
    campaign = _campaign(engine, campaign_id)
    assert campaign.status == S.APPROVED
    assert campaign.approved_hash == campaign.content_hash
    with Session(engine) as session:
        count = session.exec(
            select(func.count()).select_from(Approval).where(Approval.campaign_id == campaign_id)
        ).one()
    assert count == 2


@pytest.mark.parametrize("delay", (0.0, 0.0, 0.005, 0.01, 0.02))
def test_an_approval_racing_an_edit_never_approves_the_edited_text(
    engine_world: Engine, delay: float
) -> None:
    engine = engine_world
    campaign_id = _submitted(engine)
    approved_digest = _campaign(engine, campaign_id).content_hash
    approve, edit = _race(
        lambda: _approve(engine, campaign_id, "approver", approved_digest),
        lambda: _edit(engine, campaign_id),
        delay,
    )
    assert edit is None  # a submitted or approved campaign may always be edited
    campaign = _campaign(engine, campaign_id)
    # Whichever came first, the edited text is waiting for an approval of its own.
    assert campaign.status == S.SUBMITTED and campaign.text == EDITED_TEXT
    assert campaign.approved_hash is None
    assert approve == S.APPROVED or isinstance(approve, InvalidState)
    if approve == S.APPROVED:  # approved first: its expansion job must do nothing
        assert _expand(engine, campaign_id, campaign.generation - 1) == 0
    with Session(engine) as session:
        hashes = session.exec(
            select(Approval.content_hash).where(col(Approval.campaign_id) == campaign_id)
        ).all()
    assert campaign.content_hash not in hashes
    assert _messages(engine, campaign_id) == {}


def test_two_expansions_at_once_queue_each_number_once(engine_world: Engine) -> None:
    engine = engine_world
    campaign_id, generation = _approved(engine)
    first, second = _race(
        lambda: _expand(engine, campaign_id, generation),
        lambda: _expand(engine, campaign_id, generation),
        0.0,
    )
    assert sorted([first, second]) == [0, SUBSCRIBERS]
    assert _messages(engine, campaign_id) == {"queued": SUBSCRIBERS}
    assert _campaign(engine, campaign_id).status == S.SENDING


def test_the_workers_send_nothing_of_a_row_changed_behind_the_approval(
    engine_world: Engine,
) -> None:
    engine = engine_world
    campaign_id, generation = _approved(engine)
    assert _expand(engine, campaign_id, generation) == SUBSCRIBERS
    sending = Sending(engine)
    sending.refresh()
    assert [c.id for c in sending.candidates()] == [campaign_id]
    # A write that bypasses the lifecycle (a script, a bad migration): the text is not approved.
    with engine.begin() as connection:
        connection.execute(
            Campaign.__table__.update()  # type: ignore[attr-defined]
            .where(Campaign.__table__.c.id == campaign_id)  # type: ignore[attr-defined]
            .values(text=EDITED_TEXT)
        )
    fresh = Sending(engine)
    fresh.refresh()
    assert list(fresh.candidates()) == []
