"""The operator's rules for campaign content, set from the service's configuration."""

import re
from dataclasses import dataclass
from datetime import timedelta

# A brandname (alphanumeric sender) of at most 11 characters, or a numeric short code.
SENDER = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9 ._&-]{0,10}|\d{3,11})$")


@dataclass(frozen=True)
class Policy:
    """Limits every campaign must respect."""

    max_parts: int = 6
    exercise_marker: str = "[DIỄN TẬP] "
    default_validity: timedelta = timedelta(hours=24)
