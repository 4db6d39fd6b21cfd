"""Process pools for the benchmarks: one patient per process, one compute thread per process.

``torch.set_num_threads(1)`` inside a worker comes too late to be sure: the worker imports torch
(to unpickle its task) before any of its code runs, and the OpenMP runtime sizes its team from the
environment when it loads. With two workers on two cores the spare OpenMP threads then compete for
the cores (measured: a second thread at ~50 % CPU per worker, several times slower per patient). The
pool below starts its workers with the thread counts fixed in their environment.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterator, Sequence

__all__ = ["single_thread_pool", "map_jobs", "THREAD_ENV"]

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


@contextlib.contextmanager
def single_thread_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A spawn-context pool of ``workers`` processes whose BLAS/OpenMP/numba runtimes use one thread.

    The variables are set in this process only while the pool starts and runs its workers (spawn
    copies the environment at process start), then restored.
    """
    old = {k: os.environ.get(k) for k in THREAD_ENV}
    os.environ.update({k: "1" for k in THREAD_ENV})
    try:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
            yield ex
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def map_jobs(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int, *, desc: str,
             progress: bool = True) -> list[Any]:
    """``[fn(job) for job in jobs]`` in order, with a progress bar: on a pool of ``workers``
    single-threaded spawned processes (each runs many jobs) when ``workers`` > 1, else inline
    (torch's thread count restored afterwards, since a job may set it)."""
    import torch
    from tqdm import tqdm

    out: list[Any] = []
    with tqdm(total=len(jobs), desc=desc, disable=not progress) as bar:
        if workers > 1:
            with single_thread_pool(workers) as ex:
                for r in ex.map(fn, jobs):
                    out.append(r)
                    bar.update()
            return out
        prev = torch.get_num_threads()
        try:
            for job in jobs:
                out.append(fn(job))
                bar.update()
        finally:
            torch.set_num_threads(prev)
    return out
