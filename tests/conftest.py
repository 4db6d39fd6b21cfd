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
# One OpenBLAS thread (numpy, scipy, scikit-learn; set before they load): the suite runs device servers,
# sessions and pools beside the test process on 2 cores, and two spinning BLAS threads on a busy core made
# the decoding cross-validation of `bench decode` 9x slower (61 s against 7 s for one patient), same results.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture
def recordings_dir() -> Path:
    """The shared real recordings; skip when the shared folder is absent."""
    if not RECORDINGS.is_dir():
        pytest.skip(f"shared recordings not found at {RECORDINGS}")
    return RECORDINGS


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """``model.pt`` of the tiny BFM (``pretrain-tiny.toml``'s model, ~50k parameters) trained 4 steps on
    synthetic patients, built once per run from the core library (:func:`tiny_bfm.train_tiny`)."""
    from tiny_bfm import train_tiny

    return train_tiny(tmp_path_factory.mktemp("tiny-bfm"), steps=4)


@pytest.fixture
def electrical_space():
    from bfm_stim.space import Contact, StimulusSpace

    contacts = [Contact(f"c{i}", (0.0, 0.0, 2.0 * i), 0.06) for i in range(4)]
    return StimulusSpace.electrical(contacts)
