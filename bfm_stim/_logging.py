"""The package logger. Library code logs here and never prints."""

from __future__ import annotations

import logging

logger = logging.getLogger("bfm_stim")
logger.addHandler(logging.NullHandler())


def get_logger(name: str | None = None) -> logging.Logger:
    """Return the package logger or a child of it (``bfm_stim.<name>``)."""
    return logger if not name else logger.getChild(name)
