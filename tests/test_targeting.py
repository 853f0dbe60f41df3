"""Who a campaign reaches: areas across the 2025 re-organisation, lists, opt-outs, exercises."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, insert
from sqlmodel import Session, col, select

from campaigns import areas, targeting
from campaigns.models import (
    Authority,
    Campaign,
    Message,
    Mode,
    OptOut,
    Priority,
    RecipientList,
    RecipientListEntry,
    Role,
    Subscriber,
)
from campaigns.people import create_authority, create_user
from campaigns.synthetic import insert_subscribers
from dispatcher.db import session_scope

SUBSCRIBERS = 3000


@pytest.fixture
def authority(engine: Engine) -> Authority:
    with session_scope(engine) as session:
        areas.seed(session)
        insert_subscribers(session=session, count=SUBSCRIBERS)
        authority = create_authority(session=session, code="A", name="A", areas=["64"])
        authority.test_numbers = ["+84912000001", "+84912000002"]
        session.add(authority)
        create_user(
            session=session, username="s", name="s", role=Role.SUBMITTER, authority=authority
        )
    return authority


def _campaign(authority: Authority, **fields: object) -> Campaign:
    values: dict[str, object] = {
        "title": "t",
        "text": "x",
        "sender": "GiaLai",
        "target_areas": ["64"],
        "authority_id": authority.id,
        "created_by_id": 1,
        "send_expiry": datetime(2030, 1, 1, tzinfo=UTC),
    }
    return Campaign.model_validate(values | fields)


def _registered_in(session: Session, *codes: str) -> int:
    query = select(func.count()).select_from(Subscriber).where(col(Subscriber.area_code).in_(codes))
    return session.exec(query).one()


def test_pleiku_reaches_exactly_its_own_subscribers(engine: Engine, authority: Authority) -> None:
    with Session(engine) as session:
        pleiku = targeting.count_recipients(
            session=session, campaign=_campaign(authority, target_areas=["622"])
        )
        assert pleiku == _registered_in(session, "622")
        assert 0 < pleiku < SUBSCRIBERS


def test_the_province_reaches_every_district(engine: Engine, authority: Authority) -> None:
    with Session(engine) as session:
        assert targeting.count_recipients(session=session, campaign=_campaign(authority)) == (
            SUBSCRIBERS
        )


def test_units_of_2020_resolve_after_the_2025_merger(engine: Engine, authority: Authority) -> None:
    with Session(engine) as session:
        # The merged province reaches the subscribers still registered under 2020 units.
        merged = _campaign(authority, target_areas=[areas.GIA_LAI_2025])
        assert targeting.count_recipients(session=session, campaign=merged) == SUBSCRIBERS
        district = _campaign(authority, target_areas=["633"])
        assert targeting.count_recipients(session=session, campaign=district) == _registered_in(
            session, "633"
        )


def test_list_and_areas_count_each_number_once_and_opt_outs_only_bind_normal_campaigns(
    engine: Engine, authority: Authority
) -> None:
    with session_scope(engine) as session:
        pleiku = list(
            session.exec(select(Subscriber.msisdn).where(Subscriber.area_code == "622").limit(5))
        )
        recipients = RecipientList(authority_id=authority.id, name="l", created_by_id=1)  # type: ignore[arg-type]
        session.add(recipients)
        session.flush()
        numbers = [*pleiku, "+84987654321"]  # five already targeted, one from elsewhere
        granted = session.get(Authority, authority.id)
        assert granted is not None
        granted.off_registry_lists = True  # so that the list may hold the one from elsewhere
        session.add(granted)
        session.connection().execute(
            insert(RecipientListEntry), [{"list_id": recipients.id, "msisdn": n} for n in numbers]
        )
        session.add_all([OptOut(msisdn=pleiku[0]), OptOut(msisdn="+84987654321")])
        list_id = recipients.id
    with Session(engine) as session:
        in_pleiku = _registered_in(session, "622")
        both = _campaign(authority, target_areas=["622"], recipient_list_id=list_id)
        assert targeting.count_recipients(session=session, campaign=both) == in_pleiku + 1 - 2
        urgent = both.model_copy(update={"priority": Priority.URGENT})
        assert targeting.count_recipients(session=session, campaign=urgent) == in_pleiku + 1
        only_list = _campaign(authority, target_areas=[], recipient_list_id=list_id)
        assert targeting.count_recipients(session=session, campaign=only_list) == 6 - 2


def test_an_exercise_reaches_the_test_numbers_only(engine: Engine, authority: Authority) -> None:
    with Session(engine) as session:
        exercise = _campaign(authority, mode=Mode.EXERCISE)
        assert targeting.count_recipients(session=session, campaign=exercise) == 2


def test_each_message_keeps_the_area_its_number_is_registered_in(
    engine: Engine, authority: Authority
) -> None:
    with session_scope(engine) as session:
        an_khe = session.exec(
            select(Subscriber.msisdn).where(Subscriber.area_code == "623")
        ).first()
        assert an_khe is not None
        session.connection().execute(
            insert(Subscriber), [{"msisdn": "+84912000001", "area_code": "625"}]
        )
        authority.off_registry_lists = True  # else the unregistered number is left out
        session.add(authority)
        recipients = RecipientList(authority_id=authority.id, name="l", created_by_id=1)  # type: ignore[arg-type]
        session.add(recipients)
        session.flush()
        session.connection().execute(
            insert(RecipientListEntry),
            [{"list_id": recipients.id, "msisdn": n} for n in (an_khe, "+84987654321")],
        )
        listed = _campaign(authority, target_areas=["622"], recipient_list_id=recipients.id)
        exercise = _campaign(authority, mode=Mode.EXERCISE)
        session.add_all([listed, exercise])
        session.flush()
        for campaign in (listed, exercise):
            targeting.insert_messages(session=session, campaign=campaign, batch_size=100, parts=1)
        areas_of = {
            (campaign_id, msisdn): area
            for campaign_id, msisdn, area in session.exec(
                select(Message.campaign_id, Message.msisdn, Message.area_code)
            )
        }
    assert areas_of[listed.id, an_khe] == "623"  # listed, registered outside the target
    assert areas_of[listed.id, "+84987654321"] is None  # not in the registry
    assert {a for (c, _), a in areas_of.items() if c == listed.id} == {"622", "623", None}
    assert areas_of[exercise.id, "+84912000001"] == "625"
    assert areas_of[exercise.id, "+84912000002"] is None
