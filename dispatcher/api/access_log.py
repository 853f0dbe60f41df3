"""Subscriber numbers never reach the access log, even when they are part of a URL."""

import logging
from urllib.parse import unquote

from campaigns.numbers import mask_in_text

ACCESS_LOGGER = "uvicorn.access"
_PATH_ARG = 2  # uvicorn's access record: (client, method, path, http version, status)


class MaskNumbers(logging.Filter):
    """Masks phone numbers in the request path of each access-log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's path argument; never drop the record."""
        args = record.args
        if isinstance(args, tuple) and len(args) > _PATH_ARG:
            path = args[_PATH_ARG]
            if isinstance(path, str):
                masked = mask_in_text(unquote(path))
                record.args = (*args[:_PATH_ARG], masked, *args[_PATH_ARG + 1 :])
        return True


def install() -> None:
    """Add the filter to uvicorn's access logger, once."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, MaskNumbers) for f in logger.filters):
        logger.addFilter(MaskNumbers())
