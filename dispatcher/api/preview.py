"""The preview an approver reads before approving: encoding, segments, recipients, cost."""

from pydantic import BaseModel
from sqlmodel import Session

from campaigns import content, targeting
from campaigns.models import Campaign, Mode
from campaigns.policy import Policy
from campaigns.service import sent_text


class TextPreview(BaseModel):
    """How one rendering of the text goes out."""

    text: str
    encoding: content.Encoding
    characters: int
    segments: int


class Preview(BaseModel):
    """What approving the campaign would send."""

    campaign_id: int
    exercise: bool
    sent: TextPreview
    unaccented_alternative: TextPreview
    non_gsm7_characters: list[str]
    recipients: int
    total_sms: int


def _rendering(text: str) -> TextPreview:
    info = content.analyse(text)
    return TextPreview(
        text=text, encoding=info.encoding, characters=info.characters, segments=info.segments
    )


def preview_of(*, session: Session, campaign: Campaign, policy: Policy) -> Preview:
    """The preview of `campaign` as it stands."""
    assert campaign.id is not None
    sent = _rendering(sent_text(campaign, policy))
    alternative = _rendering(sent_text(campaign.model_copy(update={"unaccented": True}), policy))
    recipients = targeting.count_recipients(session=session, campaign=campaign)
    return Preview(
        campaign_id=campaign.id,
        exercise=campaign.mode == Mode.EXERCISE,
        sent=sent,
        unaccented_alternative=alternative,
        non_gsm7_characters=content.non_gsm7_characters(sent.text),
        recipients=recipients,
        total_sms=recipients * sent.segments,
    )
