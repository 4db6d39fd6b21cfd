"""Simulator throughput benchmark: batched and single-patient (streaming) real-time factors."""

from __future__ import annotations

import os
import time

import numpy as np

from simulators.batch import PatientBatch
from simulators.registry import make

__all__ = ["run_simulator_bench"]


def run_simulator_bench(n_patients: int = 64, n_channels: int = 32, duration_s: float = 10.0, block_ms: float = 20,
                        *, patient_id: str = "cortex-jr-v0", n_nodes: int | None = None, repeats: int = 5) -> dict:
    """Time ``n_patients`` patients (``n_channels`` each) stepped together, and one patient in blocks.

    The batched figure is aggregate: ``n_patients * duration_s / wall``. The single-patient figure
    steps one patient in ``block_ms`` chunks through :meth:`Patient.advance`, as a streaming
    server does. ``n_nodes=None`` keeps each patient's own column count (8–32, drawn from its
    seed); pass 32 for the worst case. Kernels are compiled (or loaded from numba's cache) before timing.

    On a machine shared with other jobs the wall-clock factor depends on their load, so the CPU
    time of the batched run (all threads of this process) and the load average are reported
    too: ``realtime_factor_per_cpu_second`` × cores estimates the factor on dedicated cores.

    Returns:
        ``{"patients", "channels", "simulated_seconds", "wall_seconds", "realtime_factor",
        "single_patient_realtime_factor"}`` plus detail keys (``cpu_seconds``,
        ``realtime_factor_per_cpu_second``, ``loadavg_1min``, ``cpu_count``, ``numba_threads``).
    """
    kw = {"n_channels": n_channels}
    if n_nodes is not None and patient_id.startswith("cortex"):
        kw["n_nodes"] = n_nodes
    t0 = time.perf_counter()
    patients = [make(patient_id, 1_000_000 + i, **kw) for i in range(n_patients)]
    build_s = time.perf_counter() - t0
    batch = PatientBatch(patients)
    batch.advance(100)  # warm (compile/cache load)
    block = max(1, int(round(block_ms * patients[0].fs / 1000.0)))
    n_total = int(duration_s * patients[0].fs)
    load0 = os.getloadavg()[0]
    # ``repeats`` consecutive segments of ``duration_s`` each; the figures are their medians.
    walls, cpus = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        c0 = time.process_time()
        done = 0
        while done < n_total:
            m = min(1000, n_total - done)
            batch.advance(m)
            done += m
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    wall, cpu = float(np.median(walls)), float(np.median(cpus))
    p = patients[0]
    p.reset()
    p.advance(block)
    single_s = min(duration_s, 10.0)
    n_single = int(single_s * p.fs)
    lat, single_walls = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        done = 0
        while done < n_single:
            t1 = time.perf_counter()
            p.advance(block)
            lat.append(time.perf_counter() - t1)
            done += block
        single_walls.append(time.perf_counter() - t0)
    single_wall = float(np.median(single_walls))
    sim = n_patients * duration_s
    return {"patients": n_patients, "channels": n_channels, "simulated_seconds": sim, "wall_seconds": wall,
            "realtime_factor": sim / wall, "single_patient_realtime_factor": (done / p.fs) / single_wall,
            "repeats": repeats, "realtime_factor_runs": [sim / w for w in walls],
            "single_patient_realtime_factor_runs": [(done / p.fs) / w for w in single_walls],
            "patient_id": patient_id, "n_nodes": n_nodes, "block_ms": block_ms, "build_seconds": build_s,
            "single_block_p99_ms": float(np.percentile(lat, 99) * 1000.0), "cpu_seconds": cpu,
            "realtime_factor_per_cpu_second": sim / cpu, "loadavg_1min": max(load0, os.getloadavg()[0]),
            "cpu_count": os.cpu_count(), "numba_threads": _numba_threads()}


def _numba_threads() -> int | None:
    try:
        import numba

        return int(numba.get_num_threads())
    except ImportError:  # pragma: no cover
        return None
