"""Shared fixtures for the application-layer tests."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture
def restore_package_logger():
    """``loops.cli.main`` sets the package logger's level and handler: give the next test the logger as it was."""
    lg = logging.getLogger("bfm_stim")
    level, handlers = lg.level, list(lg.handlers)
    yield
    lg.setLevel(level)
    lg.handlers[:] = handlers
