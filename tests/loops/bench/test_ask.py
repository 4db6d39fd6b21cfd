"""bench_ask times bo's ask and a bare BoTorch loop on the same data, in the same call."""

from __future__ import annotations

import math
import statistics
import time

from loops.bench.ask import bench_ask


def test_bench_ask_times_what_it_reports():
    t0 = time.perf_counter()
    r = bench_ask(n_obs=12, repeats=3, num_restarts=1, raw_samples=16, mc_samples=16)
    wall = time.perf_counter() - t0
    assert r["n_obs"] == 12 and r["repeats"] == 3 and r["device"] == "cpu" and r["torch_threads"] >= 1
    bo, bare = r["bo_all_s"], r["bare_all_s"]
    assert len(bo) == 3 and len(bare) == 3 and all(math.isfinite(t) and t > 0 for t in bo + bare)
    # every timed ask ran inside this call, one after another: together no longer than the call, and they are
    # most of it (the untimed rest is the design, the first tell and one cold ask; ~85 % timed when written)
    assert 0.4 * wall < sum(bo) + sum(bare) < wall
    # the reported figures are the medians of those timings
    assert r["bo_s"] == statistics.median(bo) and r["bare_s"] == statistics.median(bare)
    assert r["ratio"] == r["bo_s"] / r["bare_s"]
    # both variants fit the same GP and optimize the same acquisition: within an order of magnitude (0.5-1.1 here)
    assert 0.1 < r["ratio"] < 10
