from __future__ import annotations

import json

import pytest

from loops.bench.latency import run_latency_bench

pytestmark = [pytest.mark.lsl, pytest.mark.slow]


def test_latency_bench_runs_real_processes_and_writes_json(tmp_path):
    res = run_latency_bench(16, 1000.0, n=200, json_path=tmp_path / "lat.json")
    assert json.loads((tmp_path / "lat.json").read_text()) == res
    assert res["raw_pylsl"]["n"] == 200 and res["bridge"]["n"] >= 190 and res["bridge"]["rejected"] == 0
    assert 0 < res["raw_pylsl"]["p50_ms"] <= res["raw_pylsl"]["p99_ms"] < 50
    assert 0 < res["bridge"]["p50_ms"] <= res["bridge"]["p99_ms"] < 50
    assert res["lsl_scope"] == "machine"
