"""Running benchmarks: local pool and Ray give the same rows, bit for bit; resume; failures recorded, not fatal."""

from __future__ import annotations

import dataclasses
import json

import pytest

from loops.benchmark.cells import expand
from loops.benchmark.config import OptimizerEntry
from loops.benchmark.executors import LocalExecutor, RayExecutor, Store, run_benchmark

from .conftest import comparable


def _results(out, cfg):
    return Store(out).results([c.id for c in expand(cfg)])


def test_local_runs_are_reproducible_bit_for_bit_and_complete(tmp_path, user_cfg):
    a = run_benchmark(user_cfg, tmp_path / "a", progress=False, report=False)
    b = run_benchmark(user_cfg.with_executor(workers=1), tmp_path / "b", progress=False, report=False)
    assert a["ran"] == b["ran"] == len(expand(user_cfg)) == 18 and a["failures"] == 0
    ra, rb = _results(tmp_path / "a", user_cfg), _results(tmp_path / "b", user_cfg)
    assert comparable(ra) == comparable(rb)  # 2 processes vs in-process: identical except timings
    for r in ra:
        assert r["status"] == "ok" and len(r["rows"]) == user_cfg.budget
        m = r["manifest"]
        assert m["config_hash"] == user_cfg.hash() and m["signature"]["digest"] and m["versions"]["optuna"]
        for row in r["rows"]:
            assert row["delivered"] and row["violation"] is None and row["oracle_cost"] is not None
            assert row["regret"] == pytest.approx((row["oracle_rec_cost"] - m["oracle"]["cost"])
                                                  / (m["oracle"]["off_cost"] - m["oracle"]["cost"]))
    # every optimizer met the same trial noise on a (patient, seed)
    by = {}
    for r in ra:
        by.setdefault((r["cell"]["patient"]["target"], r["cell"]["patient"]["seed"], r["cell"]["seed"]), set()).add(
            tuple(row["trial_id"] for row in r["rows"]))
    assert all(len(v) == 1 for v in by.values())


def test_resume_skips_finished_runs(tmp_path, user_cfg):
    out = tmp_path / "r"
    first = run_benchmark(user_cfg, out, progress=False, report=False)
    ids = sorted(p.stem for p in (out / "cells").glob("*.json"))
    before = {i: (out / "cells" / f"{i}.json").read_text() for i in ids}
    for i in ids[:4]:  # as if the driver had been killed before these four
        (out / "cells" / f"{i}.json").unlink()
    again = run_benchmark(user_cfg, out, progress=False, report=True)
    assert first["ran"] == 18 and again["ran"] == 4 and again["skipped"] == 14
    after = {i: (out / "cells" / f"{i}.json").read_text() for i in ids}
    assert {i for i in ids if after[i] == before[i]} >= set(ids[4:])  # untouched
    assert comparable([json.loads(after[i]) for i in ids[:4]]) == comparable([json.loads(before[i]) for i in ids[:4]])
    meta = json.loads((out / "benchmark.json").read_text())
    assert [e["ran"] for e in meta["execution"]] == [18, 4]
    assert not list((out / "cells").glob(".*.tmp"))  # atomic writes leave no temporary files


def test_flaky_optimizer_is_recorded_not_fatal(tmp_path, user_cfg):
    cfg = dataclasses.replace(user_cfg, optimizers=user_cfg.optimizers[:1] + (
        OptimizerEntry("flaky", "loops.benchmark.plugins:FlakyOptimizer", {"unsafe_every": 3, "crash_at": 8}),
        OptimizerEntry("hangs", "loops.benchmark.plugins:FlakyOptimizer", {"unsafe_every": 0, "hang_at": 2})),
        seeds=1).with_executor(ask_timeout_s=1.0)
    rec = run_benchmark(cfg, tmp_path / "f", progress=False, report=True)
    res = _results(tmp_path / "f", cfg)
    st = {(r["cell"]["optimizer"]["label"], r["status"]) for r in res}
    assert st == {("random", "ok"), ("flaky", "optimizer_crash"), ("hangs", "timeout")}
    assert rec["failures"] == 6 and rec["ran"] == 9
    for r in res:
        if r["cell"]["optimizer"]["label"] == "flaky":
            assert len(r["rows"]) == 7 and "deliberate crash on ask 8" in r["error"]
            bad = [row for row in r["rows"] if row["violation"]]
            assert [row["t"] for row in bad] == [3, 6]  # refused at the gate: never delivered
            assert all(not row["delivered"] and row["cost"] is None for row in bad)
        if r["cell"]["optimizer"]["label"] == "hangs":
            assert len(r["rows"]) == 1 and "ask exceeded" in r["error"]
    s = json.loads((tmp_path / "f" / "summary.json").read_text())
    assert s["summary"]["flaky"]["hard_violations"] == 6 and s["summary"]["random"]["hard_violations"] == 0
    assert {f["status"] for f in s["failures"]} == {"optimizer_crash", "timeout"}


def test_a_dying_local_worker_is_retried(tmp_path, user_cfg):
    marker = tmp_path / "killed-once"
    cfg = dataclasses.replace(user_cfg, optimizers=(
        OptimizerEntry("dies", "loops.benchmark.plugins:FlakyOptimizer",
                       {"unsafe_every": 0, "kill_worker_once": str(marker)}),), seeds=1)
    rec = run_benchmark(cfg, tmp_path / "k", progress=False, report=False, executor=LocalExecutor(2))
    res = _results(tmp_path / "k", cfg)
    assert marker.is_file() and rec["failures"] == 0
    assert len(res) == 3 and all(r["status"] == "ok" for r in res)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ray_gives_the_local_rows_and_retries_a_killed_worker(tmp_path, user_cfg, ray_local):
    local = run_benchmark(user_cfg, tmp_path / "local", progress=False, report=False)
    ray_rec = run_benchmark(user_cfg, tmp_path / "ray", progress=False, report=False,
                            executor=RayExecutor(2, max_pending=3))
    assert ray_rec["ran"] == local["ran"] == 18 and ray_rec["executor"] == "ray"
    assert comparable(_results(tmp_path / "ray", user_cfg)) == comparable(_results(tmp_path / "local", user_cfg))
    # a task whose worker process dies on its first attempt is retried by Ray; every cell present once
    marker = tmp_path / "killed-once"
    cfg = dataclasses.replace(user_cfg, optimizers=user_cfg.optimizers[:1] + (
        OptimizerEntry("dies", "loops.benchmark.plugins:FlakyOptimizer",
                       {"unsafe_every": 0, "kill_worker_once": str(marker)}),), seeds=1)
    rec = run_benchmark(cfg, tmp_path / "kill", progress=False, report=True, executor=RayExecutor(2, max_retries=2))
    res = _results(tmp_path / "kill", cfg)
    assert marker.is_file() and "killed pid" in marker.read_text()
    assert rec["failures"] == 0 and len(res) == len(expand(cfg)) == 6
    assert len({r["cell"]["id"] for r in res}) == 6 and all(r["status"] == "ok" for r in res)
    assert len(list((tmp_path / "kill" / "cells").glob("*.json"))) == 6
