"""Fixtures of the benchmark harness' tests: small configs of users' parts (seconds), one shared Ray instance."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from loops.benchmark.config import BenchmarkConfig, load_config

REPO = Path(__file__).resolve().parents[3]
TIMING = ("ask_s", "trial_s", "tell_s", "rec_s")


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    """Run from the repository root (examples/ paths in the configs are relative to it)."""
    monkeypatch.chdir(REPO)


@pytest.fixture
def user_cfg() -> BenchmarkConfig:
    """examples/benchmark-user.toml, smaller: 3 patients (2 closed-form, 1 tabular) x 2 seeds x 3 optimizers x 10."""
    cfg = load_config(REPO / "examples" / "benchmark-user.toml")
    return dataclasses.replace(cfg, budget=10)


def comparable(results: list[dict]) -> list[dict]:
    """Results without what may differ between two identical runs: timings, worker, run time."""
    out = []
    for r in results:
        r = dict(r)
        r.pop("run_s", None)
        r.pop("worker", None)
        r["rows"] = [{k: v for k, v in row.items() if k not in TIMING} for row in r["rows"]]
        out.append(r)
    return out


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for every test that needs it (2 CPUs, repository importable in workers)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
                                           "BFM_STIM_CACHE": os.environ.get("BFM_STIM_CACHE", "")}})
    yield ray
    ray.shutdown()
