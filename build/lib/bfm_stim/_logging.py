"""The package logger. Library code logs here and never prints."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("bfm_stim")
logger.addHandler(logging.NullHandler())

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(name: str | None = None) -> logging.Logger:
    """Return the package logger or a child of it (``bfm_stim.<name>``)."""
    return logger if not name else logger.getChild(name)


def log_to_stderr(level: int | str | None = None) -> logging.Handler:
    """Print the package's records on stderr through exactly one handler (for command-line entry points).

    Every call replaces the handler an earlier call installed, so a command that hands over to
    another entry point (``bfm-stim serve`` runs ``simulators.stream``) never prints a line twice.

    Args:
        level: Level name (``"DEBUG"``, ``"INFO"``, ``"WARNING"`` ...) or number; ``None`` keeps the
            level of an earlier call (``WARNING`` when there was none).

    Raises:
        ValidationError: ``level`` is not a logging level.
    """
    from bfm_stim.exceptions import ValidationError

    earlier = [h for h in logger.handlers if getattr(h, "_bfm_stim_stderr", False)]
    if level is None and not earlier:
        level = logging.WARNING
    if level is not None:
        try:
            logger.setLevel(level.upper() if isinstance(level, str) else level)
        except (ValueError, TypeError):
            raise ValidationError("log level", level, "one of DEBUG, INFO, WARNING, ERROR, CRITICAL") from None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
    handler._bfm_stim_stderr = True  # type: ignore[attr-defined]
    for h in earlier:
        logger.removeHandler(h)
    logger.addHandler(handler)
    return handler
