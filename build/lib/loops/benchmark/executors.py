"""Where runs execute: a local process pool (default) or Ray tasks; the driver writes every result.

Both executors take *tasks* (a list of cells run in one worker call: one cell, or for the legacy preset
all cells of one patient) and hand each finished cell's result to the driver, which writes it to
``OUT/cells/<cell id>.json`` atomically (temporary file, then rename), so workers need no shared file
system and a killed driver leaves no half-written result. A result with a final status is never run
again: restarting with the same ``--out`` skips it (``error`` results, the harness' own failures, are
retried).

* :class:`LocalExecutor` — ``workers`` spawned processes whose BLAS/OpenMP/numba and torch use one thread
  each (:func:`loops._pool.single_thread_pool`); one worker runs in this process. A worker that dies breaks the pool: its unfinished tasks
  are resubmitted on a fresh pool, up to ``max_retries`` times, then become ``error`` results.
* :class:`RayExecutor` — plain Ray tasks (``num_cpus=1``, ``max_retries`` for a dead worker process,
  ``retry_exceptions=False``: a Python error is already an error row), at most ``max_pending`` in flight;
  on a local Ray instance (started here if none is running, ``num_cpus=workers``) or ``address`` of a cluster.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Sequence

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ConfigError
from loops.benchmark.cells import Cell
from loops.benchmark.config import BenchmarkConfig
from loops.benchmark.runner import run_task

__all__ = ["Store", "LocalExecutor", "RayExecutor", "make_executor", "execute", "run_benchmark", "FINAL"]

log = get_logger("loops.benchmark.executors")
FINAL = ("ok", "optimizer_crash", "timeout")
Task = dict[str, Any]
OnResult = Callable[[dict[str, Any]], None]


class Store:
    """The results folder: ``cells/<id>.json`` per finished cell, written atomically."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.cells = self.out / "cells"
        self.cells.mkdir(parents=True, exist_ok=True)

    def write(self, result: dict[str, Any]) -> Path:
        path = self.cells / f"{result['cell']['id']}.json"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result, sort_keys=True, allow_nan=True))
        os.replace(tmp, path)
        return path

    def status(self, cell_id: str) -> str | None:
        path = self.cells / f"{cell_id}.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())["status"]
        except (json.JSONDecodeError, KeyError):
            return None

    def results(self, ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Stored results (of ``ids`` in that order, skipping missing ones; default all, sorted by id)."""
        paths = [self.cells / f"{i}.json" for i in ids] if ids is not None else sorted(self.cells.glob("*.json"))
        return [json.loads(p.read_text()) for p in paths if p.is_file()]


def _error_results(task: Task, why: str) -> list[dict[str, Any]]:
    return [{"cell": c.to_dict(), "status": "error", "error": why, "rows": [], "manifest": {}, "run_s": 0.0,
             "worker": None} for c in task["cells"]]


class LocalExecutor:
    """A pool of ``workers`` single-threaded processes on this machine."""

    kind = "local"

    def __init__(self, workers: int, *, max_retries: int = 2) -> None:
        self.workers, self.max_retries = workers, max_retries

    def run(self, tasks: list[Task], on_result: OnResult) -> None:
        if self.workers == 1:
            self._inline(tasks, on_result)
            return
        from loops._pool import single_thread_pool

        todo, attempt = list(tasks), 0
        while todo:
            broken: list[Task] = []
            with single_thread_pool(self.workers) as ex:
                futs = {ex.submit(run_task, t): t for t in todo}
                pending = set(futs)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        try:
                            res = f.result()
                        except BrokenProcessPool:
                            broken.append(futs[f])
                            continue
                        except Exception as e:  # noqa: BLE001 - a task that cannot even be unpickled
                            res = _error_results(futs[f], f"{type(e).__name__}: {e}")
                        for r in res:
                            on_result(r)
            attempt += 1
            if broken and attempt > self.max_retries:
                for t in broken:
                    for r in _error_results(t, f"worker process died {attempt} times"):
                        on_result(r)
                break
            if broken:
                log.warning("a worker process died; resubmitting %d task(s) (attempt %d of %d)", len(broken),
                            attempt + 1, self.max_retries + 1)
            todo = broken


    @staticmethod
    def _inline(tasks: list[Task], on_result: OnResult) -> None:
        """One worker: in this process (torch's thread count restored afterwards)."""
        import torch

        prev = torch.get_num_threads()
        try:
            for t in tasks:
                for r in run_task(t):
                    on_result(r)
        finally:
            torch.set_num_threads(prev)


class RayExecutor:
    """Plain Ray tasks; the driver (this process) collects the results."""

    kind = "ray"

    def __init__(self, workers: int, *, address: str = "", max_pending: int = 64, max_retries: int = 2) -> None:
        self.workers, self.address = workers, address
        self.max_pending, self.max_retries = max_pending, max_retries

    def _init(self) -> Any:
        try:
            import ray
        except ImportError:
            raise ConfigError("--executor ray needs Ray: pip install 'bfm-stim[distributed]'") from None
        if not ray.is_initialized():
            from loops._pool import THREAD_ENV

            env = {"env_vars": {k: "1" for k in THREAD_ENV}}
            if not self.address:  # users' module:Class importable from the current folder, as in the local pool
                env["env_vars"]["PYTHONPATH"] = os.pathsep.join(
                    [os.getcwd()] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
            if self.address:
                ray.init(address=self.address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(num_cpus=self.workers, runtime_env=env, include_dashboard=False, log_to_driver=False)
        return ray

    def run(self, tasks: list[Task], on_result: OnResult) -> None:
        ray = self._init()
        remote = ray.remote(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)(run_task)
        queue, inflight = list(reversed(tasks)), {}
        self.overheads: list[float] = []  # per task: driver's submit-to-result time minus the worker's run time, s
        while queue or inflight:
            while queue and len(inflight) < self.max_pending:
                t = queue.pop()
                inflight[remote.remote(t)] = (t, time.perf_counter())
            done, _ = ray.wait(list(inflight), num_returns=1)
            for ref in done:
                t, t_sub = inflight.pop(ref)
                try:
                    res = ray.get(ref)
                    if self.max_pending <= self.workers:  # no queueing behind other tasks: all of it is overhead
                        self.overheads.append(time.perf_counter() - t_sub - sum(r["run_s"] for r in res))
                except Exception as e:  # noqa: BLE001 - retries exhausted (worker died each time) or lost node
                    res = _error_results(t, f"ray: {type(e).__name__}: {str(e)[:300]}")
                for r in res:
                    on_result(r)


def make_executor(cfg: BenchmarkConfig) -> LocalExecutor | RayExecutor:
    ex = cfg.executor
    if ex.kind == "ray":
        return RayExecutor(ex.workers, address=ex.address, max_pending=ex.max_pending, max_retries=ex.max_retries)
    return LocalExecutor(ex.workers, max_retries=ex.max_retries)


def tasks_of(cells: list[Cell], cfg: BenchmarkConfig) -> list[Task]:
    """One task per cell; the legacy preset: one per patient, its cells sharing one cost model."""
    if cfg.seeding != "legacy":
        return [{"cells": [c], "config": cfg, "shared_cost": False} for c in cells]
    by: dict[str, list[Cell]] = {}
    for c in cells:
        by.setdefault(c.patient.key, []).append(c)
    return [{"cells": cs, "config": cfg, "shared_cost": True} for cs in by.values()]


def execute(cfg: BenchmarkConfig, cells: list[Cell], out: str | Path, *, progress: bool = True,
            executor: LocalExecutor | RayExecutor | None = None) -> dict[str, Any]:
    """Run every cell without a final result in ``out``; write each result as it arrives.

    Returns:
        ``{"cells", "skipped", "ran", "failures", "wall_s", "executor", "workers"}``.
    """
    from tqdm.auto import tqdm

    store = Store(out)
    todo = [c for c in cells if store.status(c.id) not in FINAL]
    if cfg.seeding == "legacy" and len(todo) != len(cells):  # a patient's cells share state: rerun them whole
        keys = {c.patient.key for c in todo}
        todo = [c for c in cells if c.patient.key in keys]
    ex = executor or make_executor(cfg)
    failures = 0
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc=f"benchmark ({ex.kind})", unit="run",
               disable=not progress, dynamic_ncols=True)
    bar.set_postfix(failures=0)

    def on_result(r: dict[str, Any]) -> None:
        nonlocal failures
        store.write(r)
        failures += r["status"] != "ok"
        bar.update()
        bar.set_postfix(failures=failures)

    t0 = time.perf_counter()
    try:
        if todo:
            tasks = tasks_of(todo, cfg)
            if isinstance(ex, LocalExecutor) and ex.workers > 1:
                # each patient's set-up (oracle optimum, cached on disk) queued first, so that the first cells
                # of a patient, started together, do not each compute it
                first = list({c.patient.key: c for c in reversed(todo)}.values())[::-1]
                tasks = [{"cells": [c], "config": cfg, "prepare": True} for c in first] + tasks
            ex.run(tasks, on_result)
    finally:
        bar.close()
    rec = {"cells": len(cells), "skipped": len(cells) - len(todo), "ran": len(todo), "failures": failures,
           "wall_s": time.perf_counter() - t0, "executor": ex.kind, "workers": ex.workers}
    if getattr(ex, "overheads", None):
        import numpy as np

        rec["ray_overhead_s_median"] = float(np.median(ex.overheads))
        rec["ray_overhead_s_max"] = float(np.max(ex.overheads))
    return rec


def run_benchmark(cfg: BenchmarkConfig, out: str | Path, *, progress: bool = True, report: bool = True,
                  executor: LocalExecutor | RayExecutor | None = None, base: Path | None = None) -> dict[str, Any]:
    """Expand ``cfg`` into cells, run those without a final result in ``out``, then build the report.

    Writes ``OUT/benchmark.json`` (config, its hash, the cell ids, one ``execution`` record per call:
    executor, workers, runs done and skipped, wall time) before running, so a killed run can be resumed
    and reported.

    Returns:
        The execution record, plus ``report`` (the HTML path) when ``report``.
    """
    from loops.benchmark.cells import expand

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cells = expand(cfg, base=base)
    meta_path = out / "benchmark.json"
    old = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    history = old.get("execution", []) if old.get("config_hash") == cfg.hash() else []
    meta = {"config": cfg.to_dict(), "config_hash": cfg.hash(), "cell_ids": [c.id for c in cells],
            "execution": history}
    _atomic_json(meta_path, meta)
    rec = execute(cfg, cells, out, progress=progress, executor=executor)
    meta["execution"] = history + [rec]
    _atomic_json(meta_path, meta)
    from loops.benchmark.report import build_report, write_summary

    if report:
        rec["report"] = str(build_report(out))
    else:  # the summary still, so that `bfm-stim report OUT` recognizes the folder
        write_summary(out)
    return rec


def _atomic_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, path)
