"""Shared fixtures for the optimizer tests."""

from __future__ import annotations

import pytest

from bfm_stim.optim.test_problems import ContactBump


@pytest.fixture
def problem() -> ContactBump:
    """The declared 4-contact test problem (optimum cost 0 on contact c1)."""
    return ContactBump()
