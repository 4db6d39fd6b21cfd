"""Shared fixtures for the simulator tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bg_patient():
    import simulators

    return simulators.make("bg-beta-v0", seed=6)
