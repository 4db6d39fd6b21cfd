"""One run (a cell): ``budget`` trials of an optimizer on a patient, and everything needed to score it.

Per trial (a row): the stimulus asked for, whether it passed ``space.check`` and was delivered, the
measured cost and side effect, the optimizer's recommendation afterwards, the oracle (noise-free) cost
of both, the gap-normalized regret of the recommendation ``(c_rec - c_opt) / (c_off - c_opt)``, and the
seconds spent in ask, trial, tell and recommend. Per cell a manifest: config hash, package versions,
the oracle optimum and its cost, the stimulation-off cost, and the patient's objective signature at
fixed probe stimuli.

A run never raises: an optimizer that raises or overruns its time becomes the cell's status
(``optimizer_crash`` / ``timeout``, the trials so far kept), anything else ``error``.
A stimulus that fails ``space.check`` is a hard violation: it is not delivered, the trial is spent.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any, Iterator

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import SafetyLimitError, ValidationError
from bfm_stim.optim import Outcome
from bfm_stim.space import Stimulus
from loops.benchmark.cells import Cell
from loops.benchmark.config import BenchmarkConfig
from loops.benchmark.patients import build_patient, measure, signature
from loops.benchmark.plugins import make_optimizer, settings_of

__all__ = ["run_cell", "run_task", "versions", "TIMING_FIELDS", "STATUSES"]

log = get_logger("loops.benchmark.runner")
TIMING_FIELDS = ("ask_s", "trial_s", "tell_s", "rec_s")
STATUSES = ("ok", "optimizer_crash", "timeout", "error")
_CTX: dict[str, Any] = {}  # per worker process: patient set-ups by key (the most recent few)
_CTX_MAX = 2


class _Timeout(Exception):
    pass


def versions() -> dict[str, str | None]:
    """Versions of Python and the packages that decide the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("bfm-stim", "torch", "numpy", "scipy", "botorch", "gpytorch", "optuna", "nevergrad", "ray"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`_Timeout` in this block after ``seconds`` (SIGALRM; main thread only, else no limit)."""
    if seconds <= 0:
        raise _Timeout()
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _context(cell: Cell, cfg: BenchmarkConfig) -> dict[str, Any]:
    """The patient's set-up (built once per worker): patient, space, oracle optimum and costs, signature."""
    key = cell.patient.key + cfg.hash()
    if key in _CTX:
        return _CTX[key]
    p = build_patient(cell.patient, cfg.objective, cfg.oracle)
    opt = p.oracle_optimum()
    c_opt, c_off = (float(v) for v in p.oracle_cost([opt, None]))
    ctx = {"patient": p, "space": p.stimulus_space(), "optimum": opt, "c_opt": c_opt, "c_off": c_off,
           "signature": signature(p), "oracle_cache": {repr(opt): c_opt, repr(None): c_off}}
    while len(_CTX) >= _CTX_MAX:
        _CTX.pop(next(iter(_CTX)))
    _CTX[key] = ctx
    return ctx


def _oracle(ctx: dict[str, Any], stims: list[Stimulus | None]) -> list[float]:
    """Oracle costs, cached per patient (one batched evaluation for the new ones)."""
    cache = ctx["oracle_cache"]
    new, seen = [], set()
    for s in stims:
        k = repr(s)
        if k not in cache and k not in seen:
            seen.add(k)
            new.append(s)
    if new:
        for s, c in zip(new, ctx["patient"].oracle_cost(new)):
            cache[repr(s)] = float(c)
    return [cache[repr(s)] for s in stims]


def run_cell(cell: Cell, cfg: BenchmarkConfig, *, cost_model: Any = "fresh") -> dict[str, Any]:
    """Run one cell; return ``{"cell", "status", "error", "rows", "manifest", "run_s", "worker"}``.

    Args:
        cell: The cell.
        cfg: The benchmark (objective, oracle, timeouts).
        cost_model: ``"fresh"``: a new cost model for this run (seeded by the patient seed); or a cost
            model shared with other cells (the legacy preset shares one per patient).
    """
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    status, error = "ok", None
    manifest: dict[str, Any] = {"config_hash": cfg.hash(), "cell_id": cell.id, "versions": versions(),
                                "optimizer_seed": cell.optimizer_seed, "first_trial_id": cell.trial_id(0)}
    ctx = None
    try:
        ctx = _context(cell, cfg)
        p, space = ctx["patient"], ctx["space"]
        manifest.update(patient={"id": getattr(p, "id", cell.patient.target), "seed": getattr(p, "seed", None),
                                 "label": cell.patient.label, "family": cell.patient.family},
                        objective=getattr(p, "description", type(p).__name__),
                        oracle={"stimulus": ctx["optimum"].to_dict(), "cost": ctx["c_opt"], "off_cost": ctx["c_off"],
                                "grid_cost": getattr(p, "oracle_grid_cost", None),
                                "repeats": cfg.oracle.repeats, "grid": dict(cfg.oracle.grid)},
                        signature=ctx["signature"], space=space.to_dict())
        cm = p.cost_model(getattr(p, "seed", 0)) if cost_model == "fresh" and hasattr(p, "cost_model") else \
            (None if cost_model == "fresh" else cost_model)
    except Exception as e:  # noqa: BLE001 - a patient that cannot be set up is this cell's error
        return _result(cell, "error", _err(e), rows, manifest, t_start)
    ex = cfg.executor
    deadline = t_start + ex.cell_timeout_s
    stage = "make"
    try:
        with _deadline(min(ex.ask_timeout_s, deadline - time.perf_counter())):
            opt = make_optimizer(cell.optimizer, space, seed=cell.optimizer_seed, budget=cell.budget, cost_model=cm)
        manifest["optimizer_settings"] = settings_of(opt)
        manifest["surrogate"] = surrogate_manifest(p, opt, cm)
        rec: Stimulus | None = None
        for t in range(cell.budget):
            stage = "ask"
            t0 = time.perf_counter()
            with _deadline(min(ex.ask_timeout_s, deadline - t0)):
                s = opt.ask(1)[0]
            ask_s = time.perf_counter() - t0
            row: dict[str, Any] = {"t": t + 1, "trial_id": cell.trial_id(t), "stimulus": _sd(s), "delivered": False,
                                   "violation": None, "cost": None, "side_effect": None, "side_effect_reported": None,
                                   "ask_s": ask_s, "trial_s": 0.0, "tell_s": 0.0, "rec_s": 0.0}
            try:
                if not isinstance(s, Stimulus):
                    raise ValidationError("stimulus", type(s).__name__, "a bfm_stim.space.Stimulus")
                space.check(s)
            except (SafetyLimitError, ValidationError) as e:
                row["violation"] = str(e)
                row["recommendation"] = _sd(rec)
                rows.append(row)
                continue
            stage = "trial"
            t0 = time.perf_counter()
            with _deadline(deadline - t0):
                cost, sev, rep = measure(p, s, cell.trial_id(t))
            row.update(delivered=True, cost=cost, side_effect=sev, side_effect_reported=rep,
                       trial_s=time.perf_counter() - t0)
            stage = "tell"
            t0 = time.perf_counter()
            with _deadline(min(ex.ask_timeout_s, deadline - t0)):
                opt.tell([s], [Outcome(cost, side_effect=sev,
                                       metadata={"trial": cell.trial_id(t), "side_effect_reported": rep})])
                row["tell_s"] = time.perf_counter() - t0
                stage = "recommend"
                t0 = time.perf_counter()
                rec = opt.recommend()
                row["rec_s"] = time.perf_counter() - t0
            row["recommendation"] = _sd(rec)
            ts = getattr(opt, "trust_state", None)
            row["trust"] = None if ts is None else ts.trust  # after this trial's evidence
            row["model_weight"] = None if ts is None else ts.weight
            rows.append(row)
    except _Timeout:
        status, error = "timeout", f"{stage} exceeded its limit (ask {ex.ask_timeout_s:g} s, cell {ex.cell_timeout_s:g} s)"
    except Exception as e:  # noqa: BLE001 - the optimizer's failure is recorded, not raised
        status = "error" if stage == "trial" else "optimizer_crash"
        error = f"{stage}: {_err(e)}"
    try:
        _score(ctx, rows, cfg)
    except Exception as e:  # noqa: BLE001
        status, error = "error", f"oracle: {_err(e)}"
    if manifest.get("surrogate", {}).get("model"):
        manifest["surrogate"]["first_trials"] = first_trials_ranking(opt, rows)
    return _result(cell, status, error, rows, manifest, t_start)


#: Trials over which a run's manifest reports the model's measured ranking.
FIRST_TRIALS = 10


def surrogate_manifest(p: Any, opt: Any, cm: Any) -> dict[str, Any]:
    """Whether the optimizer had a model, which checkpoint (for the patients that build one), and its trust setting."""
    uses = hasattr(opt, "has_model")
    out: dict[str, Any] = {"surrogate_method": uses, "model": bool(uses and getattr(opt, "has_model", False))}
    if uses:
        out["checkpoint"] = getattr(p, "checkpoint_digest", None)
        out["cost_model"] = None if cm is None else type(cm).__name__
        out["trust"] = bool(getattr(opt.settings, "trust", False))
        if not out["model"]:
            out["note"] = "no cost model: the surrogate method ran on a flat prior (no surrogate)"
    return out


def first_trials_ranking(opt: Any, rows: list[dict[str, Any]], n: int = FIRST_TRIALS) -> dict[str, Any]:
    """The model's measured ranking over the first ``n`` trials: Spearman of predicted vs measured cost
    (and vs the oracle's noise-free cost), the trust after them."""
    from loops.stats import spearman

    try:
        pred = list(opt.model_predictions())
    except Exception:  # noqa: BLE001 - a model that cannot predict is reported, not raised
        return {"n": 0, "error": "the model could not predict the delivered stimuli"}
    delivered = [r for r in rows if r["delivered"]][:n]
    k = min(len(pred), len(delivered))
    meas = [r["cost"] for r in delivered[:k]]
    orac = [r.get("oracle_cost") for r in delivered[:k]]
    trust = next((r.get("trust") for r in reversed(rows[:n]) if r.get("delivered")), None)
    return {"n": k, "spearman_measured": spearman(pred[:k], meas) if k >= 3 else None,
            "spearman_oracle": spearman(pred[:k], orac) if k >= 3 and None not in orac else None,
            "trust": trust}


def _score(ctx: dict[str, Any], rows: list[dict[str, Any]], cfg: BenchmarkConfig) -> None:
    """Oracle costs of the recommendations (and stimuli) and the gap-normalized regret, in place."""
    recs = [None if r["recommendation"] is None else Stimulus.from_dict(r["recommendation"]) for r in rows]
    stims = [Stimulus.from_dict(r["stimulus"]) if r["delivered"] else None for r in rows]
    want = recs + ([s for s in stims if s is not None] if cfg.oracle.trial_costs else [])
    costs = _oracle(ctx, want)
    c_opt, c_off = ctx["c_opt"], ctx["c_off"]
    gap = c_off - c_opt if c_off - c_opt > 1e-9 else 1.0
    it = iter(costs[len(recs):])
    for r, c in zip(rows, costs[:len(recs)]):
        r["oracle_rec_cost"] = c
        r["regret"] = (c - c_opt) / gap
        r["oracle_cost"] = next(it) if cfg.oracle.trial_costs and r["delivered"] else None


def _sd(s: Any) -> dict[str, Any] | None:
    return s.to_dict() if isinstance(s, Stimulus) else (None if s is None else {"repr": repr(s)[:200]})


def _err(e: BaseException) -> str:
    tb = traceback.format_exception(type(e), e, e.__traceback__)
    return f"{type(e).__name__}: {e} | {''.join(tb[-2:]).strip()[-600:]}"


def _result(cell: Cell, status: str, error: str | None, rows: list, manifest: dict, t_start: float) -> dict:
    if error:
        log.warning("cell %s (%s, %s, seed %d): %s: %s", cell.id[:8], cell.patient.label, cell.optimizer.label,
                    cell.seed, status, error.split(" | ")[0])
    return {"cell": cell.to_dict(), "status": status, "error": error, "rows": rows, "manifest": manifest,
            "run_s": time.perf_counter() - t_start,
            "worker": {"pid": os.getpid(), "host": socket.gethostname(), "max_rss_mb": _max_rss_mb()}}


def _max_rss_mb() -> float | None:
    """Peak resident memory of this process so far, MiB (None where ``resource`` is missing)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024


def run_task(task: dict[str, Any]) -> list[dict[str, Any]]:
    """Worker entry: ``{"cells": [Cell], "config": BenchmarkConfig, "shared_cost": bool}`` -> results.

    Single-threaded torch. With ``shared_cost`` the cells (one patient) share one cost model, in order,
    as the legacy ``bench optimizers`` did; otherwise every cell gets its own.
    """
    import torch

    torch.set_num_threads(1)
    cfg: BenchmarkConfig = task["config"]
    cells: list[Cell] = list(task["cells"])
    if task.get("prepare"):  # set up the patient only (fills the on-disk oracle cache), no result
        try:
            _context(cells[0], cfg)
        except Exception:  # noqa: BLE001 - the cells will report it
            pass
        return []
    shared: Any = "fresh"
    if task.get("shared_cost") and cells:
        try:
            ctx = _context(cells[0], cfg)
            p = ctx["patient"]
            shared = p.cost_model(getattr(p, "seed", 0)) if hasattr(p, "cost_model") else None
        except Exception:  # noqa: BLE001 - run_cell reports the set-up error per cell
            shared = "fresh"
    return [run_cell(c, cfg, cost_model=shared) for c in cells]
