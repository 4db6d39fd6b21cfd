"""Fixtures for LSL tests: session keys and unique source ids."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from lsl_helpers import LSL_CFG

os.environ["LSLAPICFG"] = str(LSL_CFG)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    from bfm_stim.lsl.protocol import keygen

    return keygen(tmp_path / "session.key")


@pytest.fixture
def key(key_file: Path) -> bytes:
    from bfm_stim.lsl.protocol import load_key

    return load_key(key_file)


@pytest.fixture
def source_id() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"
