"""Shared fixtures and environment for the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RECORDINGS = SHARED / "data" / "recordings"

# Every LSL process in the tests runs with the machine-only configuration, even when pytest is
# started without `make test`.
os.environ.setdefault("LSLAPICFG", str(REPO / "bfm_stim" / "lsl" / "lsl_api.cfg"))
os.environ.setdefault("MPLBACKEND", "Agg")
# Oracle and other caches go to a private folder, never the user's.
os.environ.setdefault("BFM_STIM_CACHE", str(REPO / ".pytest_cache" / "bfm-stim-cache"))


@pytest.fixture
def recordings_dir() -> Path:
    """The shared real recordings; skip when the shared folder is absent."""
    if not RECORDINGS.is_dir():
        pytest.skip(f"shared recordings not found at {RECORDINGS}")
    return RECORDINGS


@pytest.fixture
def electrical_space():
    from bfm_stim.space import Contact, StimulusSpace

    contacts = [Contact(f"c{i}", (0.0, 0.0, 2.0 * i), 0.06) for i in range(4)]
    return StimulusSpace.electrical(contacts)
