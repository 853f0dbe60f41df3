"""Typed errors of the campaign domain; the API maps each family to one HTTP status."""


class CampaignError(Exception):
    """Base of every error the campaign domain raises on purpose."""

    code = "campaign_error"


class NotFound(CampaignError):
    code = "not_found"


class PermissionDenied(CampaignError):
    code = "forbidden"


class InvalidState(CampaignError):
    code = "invalid_state"


class InvalidInput(CampaignError):
    code = "invalid_input"


class AuthorityNotConfirmed(InvalidState):
    """The authority awaits a second operator admin's confirmation (`campaigns.custody`).

    A state of the authority, not a lack of rights of the caller: the same request by the same
    person succeeds once the authority is confirmed, so 409 like any other InvalidState.
    """

    code = "authority_not_confirmed"
