"""The missing-positions block of ``bfm-stim bench real`` (loops/bench/positions.py): one patient, short rest."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bfm_stim.exceptions import ValidationError
from loops.bench.positions import VARIANTS, derangement, run_positions_bench


def test_block_has_finite_r2_for_each_variant():
    r = run_positions_bench(families=("bg-beta-v0",), n_per_family=1, rest_s=6.0, heldout_s=4.0, max_windows=8,
                            progress=False)
    (row,) = r["patients"]
    assert row["family"] == "bg-beta-v0" and row["heldout_windows"] > 0 and row["shuffle_displacement_mm"] > 0
    for v in VARIANTS:
        assert set(row["r2"][v]) == {"40ms", "160ms"} and all(math.isfinite(x) for x in row["r2"][v].values()), v
        assert r["medians"]["bg-beta-v0"][v] == row["r2"][v]
    assert row["r2"]["nan"] != row["r2"]["true"]  # the positions reach the forecast
    assert r["checkpoint"]["file"].endswith("model.pt") and len(r["checkpoint"]["digest"]) == 16
    assert "/tmp" not in json.dumps(r) and "/work" not in json.dumps(r)  # no machine paths


def test_derangement_moves_every_channel():
    rng = np.random.default_rng(0)
    for n in (2, 3, 37):
        p = derangement(n, rng)
        assert sorted(p) == list(range(n)) and not np.any(p == np.arange(n))
    with pytest.raises(ValidationError):
        derangement(1, rng)
