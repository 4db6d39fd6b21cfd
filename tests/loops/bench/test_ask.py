"""bench_ask returns medians and their ratio for bo vs a bare BoTorch loop."""

from __future__ import annotations

import math

from loops.bench.ask import bench_ask


def test_bench_ask_small():
    r = bench_ask(n_obs=12, repeats=2, num_restarts=1, raw_samples=16, mc_samples=16)
    assert r["n_obs"] == 12 and len(r["bo_all_s"]) == 2 and len(r["bare_all_s"]) == 2
    assert r["bo_s"] > 0 and r["bare_s"] > 0
    assert math.isclose(r["ratio"], r["bo_s"] / r["bare_s"])
