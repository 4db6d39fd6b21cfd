"""Benchmark process pools: results in job order, workers single-threaded, inline path restores threads,
errors raised in a worker reach the parent as themselves."""

from __future__ import annotations

import os

import pytest
import torch

from bfm_stim.exceptions import ValidationError
from loops._pool import THREAD_ENV, map_jobs


def _job(x: int) -> tuple[int, int, str | None]:
    torch.set_num_threads(1)  # what a benchmark job does; the inline path must undo it
    return x * x, os.getpid(), os.environ.get("OMP_NUM_THREADS")


def test_map_jobs_in_workers_keeps_order_and_runs_single_threaded():
    before = {k: os.environ.get(k) for k in THREAD_ENV}
    out = map_jobs(_job, list(range(6)), 2, desc="t", progress=False)
    assert [r[0] for r in out] == [x * x for x in range(6)]
    assert os.getpid() not in {r[1] for r in out} and {r[2] for r in out} == {"1"}
    assert {k: os.environ.get(k) for k in THREAD_ENV} == before  # the parent's environment is restored


def test_map_jobs_inline_restores_torch_threads():
    prev = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = map_jobs(_job, [3, 4], 1, desc="t", progress=False)
        assert [r[0] for r in out] == [9, 16] and {r[1] for r in out} == {os.getpid()}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(prev)


def _refuse(field: str) -> None:
    raise ValidationError(field, 0, "> 0")


def test_an_error_raised_in_a_worker_process_reaches_the_parent_as_itself():
    with pytest.raises(ValidationError, match="--amount=0 is not allowed") as info:
        map_jobs(_refuse, ["--amount", "--amount"], 2, desc="jobs", progress=False)
    assert info.value.field == "--amount" and info.value.allowed == "> 0"
