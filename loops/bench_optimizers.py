"""``bfm-stim bench optimizers``: trials-to-target, regret, side effects and safety of every optimizer.

Eval-cohort patients of both families in their pathological regimes (``bg-beta-v0``,
``cortex-jr-epileptic-v0``: a healthy patient has nothing to improve toward its healthy twin) × optimizer
seeds × optimizers, ``budget`` trials each. Objective: the latent target (cost = whitened squared distance between the BFM
encoder latents of the measured response and the latent of the patient's healthy twin, shipped
checkpoint); without the checkpoint the simulators' :class:`~simulators.HealthyReferenceObjective`
(the JSON says which). Every cost is measured over the stimulation window (``simulators.oracle.SETTLE_S``).
Regret after a trial = oracle cost of the stimulus the optimizer recommends then (``Optimizer.recommend``: the
measured stimulus without a side effect of lowest cost, or of lowest predicted cost for optimizers with a
cost model; stimulation off before there is one) minus that of the oracle optimum
(``simulators.oracle_optimum``, cached on disk, same objective), normalized by the no-stimulation cost as
the benchmark is specified: ``(c(best) - c_opt) / c_off``; and, stricter, by the improvement stimulation
can make at all: ``(c(best) - c_opt) / (c_off - c_opt)`` (``*_gap`` fields; for a latent target with a high
floor, 5 % of the gap can lie below the trial noise). All three oracle costs are the mean of the same
``repeats`` noise realizations (``simulators.oracle_cost``, common random numbers): the optimum's and the
baseline's are re-measured that way rather than taken from the grid search, whose minimum is biased low.
A run that never reaches regret <= 0.05 counts as ``budget + 1`` trials (censored). Every emitted
stimulus is re-checked with ``space.check``; a failing one counts as a hard violation and is not delivered.
Patients run in a process pool of ``workers``; the bare-BoTorch seconds-per-ask comparison
(:func:`bfm_stim.optim.bench_ask.bench_ask`) runs in the same call.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bfm_stim._logging import get_logger

log = get_logger("loops.bench_optimizers")
THRESHOLD = 0.05
LEAN_BO = dict(num_restarts=2, raw_samples=64, mc_samples=32, maxiter=30)
# variant -> (registered optimizer, settings overrides)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("random", {}),
    "sobol": ("sobol", {}),
    "cmaes": ("cmaes", {}),
    "bo": ("bo", dict(LEAN_BO, constraint_aware=True)),
    "bo_plain": ("bo", dict(LEAN_BO, constraint_aware=False)),
    "gradient": ("gradient", dict(n_starts=4, steps=40)),
    "guided": ("guided", dict(LEAN_BO, n_starts=4, steps=40)),
    "egreedy": ("egreedy", dict(n_pool=256)),
}
DEFAULT_OPTIMIZERS = ("random", "sobol", "cmaes", "bo", "bo_plain", "gradient", "guided", "egreedy")
QUICK_ORACLE = dict(n_amplitude=3, frequencies=(20.0, 130.0), pulse_widths=(60.0, 120.0), repeats=2, refine_steps=0)


def _objective(patient: Any, ckpt: Path | None) -> tuple[Any, Any, str]:
    """(measured objective, surrogate cost model or None, name) for one patient."""
    import simulators
    from bfm_stim.optim import SurrogateCost
    from loops.offline import file_digest, make_target, patient_surrogate

    if ckpt is None:
        return simulators.HealthyReferenceObjective(), None, "HealthyReferenceObjective (no checkpoint)"
    sur, rest = patient_surrogate(patient, ckpt)
    tgt = make_target("healthy", patient, sur, ckpt_tag=file_digest(ckpt))
    cost = SurrogateCost(sur, rest[:, -sur.cfg.max_patches * sur.cfg.patch_len:], tgt.forecast, seed=patient.seed)
    return tgt.measured, cost, f"latent target (BFM encoder, checkpoint {file_digest(ckpt)})"


def _run_patient(job: dict[str, Any]) -> list[dict[str, Any]]:
    """All seeds × optimizers on one patient (runs in a worker process)."""
    import torch

    torch.set_num_threads(1)
    import simulators
    from bfm_stim.exceptions import SafetyLimitError, ValidationError
    from bfm_stim.optim import make
    from loops.offline import run_trial

    p = simulators.make(job["family"], seed=job["seed"])
    space = p.stimulus_space()
    ckpt = Path(job["checkpoint"]) if job["checkpoint"] else None
    objective, cost, obj_name = _objective(p, ckpt)
    from bfm_stim.space import Stimulus

    oracle = simulators.oracle_optimum(p, objective, **job["oracle"])
    best_known = Stimulus.from_dict(oracle["stimulus"])
    c_opt = simulators.oracle_cost(p, best_known, objective, repeats=job["repeats"])
    c_off = simulators.oracle_cost(p, None, objective, repeats=job["repeats"])
    gap = c_off - c_opt if c_off - c_opt > 1e-9 else 1.0
    norm = abs(c_off) if abs(c_off) > 1e-9 else 1.0
    oracle_cache: dict[str, float] = {repr(best_known): c_opt, repr(None): c_off}
    rows = []
    for seed in range(job["seeds"]):
        for variant in job["optimizers"]:
            name, over = VARIANTS[variant]
            hooks = {"cost_model": cost} if name in ("gradient", "guided", "egreedy") else {}
            t_make = time.perf_counter()
            opt = make(name, space, seed=seed, **over, **hooks)
            t_make = time.perf_counter() - t_make
            ask_s, recs, side, violations, rec_s = [], [], 0, 0, 0.0
            for t in range(job["budget"]):
                t0 = time.perf_counter()
                s = opt.ask(1)[0]
                ask_s.append(time.perf_counter() - t0 + rec_s)  # with the previous recommendation (they share a fit)
                try:
                    space.check(s)
                except (SafetyLimitError, ValidationError):
                    violations += 1
                    continue
                out = run_trial(p, s, objective, trial=100_000 + 1000 * seed + t)
                side += bool(out.metadata["side_effect_reported"])
                opt.tell([s], [out])
                t0 = time.perf_counter()
                recs.append(opt.recommend())
                rec_s = time.perf_counter() - t0
            true_best = []
            for rec in recs:  # no recommendation yet (every trial had a side effect): stimulation stays off
                key = repr(rec)
                if key not in oracle_cache:
                    oracle_cache[key] = simulators.oracle_cost(p, rec, objective, repeats=job["repeats"])
                true_best.append(oracle_cache[key])
            curve = [(c - c_opt) / norm for c in true_best]
            curve_gap = [(c - c_opt) / gap for c in true_best]
            hit = [i + 1 for i, r in enumerate(curve) if r <= THRESHOLD]
            hit_gap = [i + 1 for i, r in enumerate(curve_gap) if r <= THRESHOLD]
            rows.append({"family": job["family"], "patient_seed": job["seed"], "seed": seed, "optimizer": variant,
                         "regret": curve, "trials_to_target": hit[0] if hit else job["budget"] + 1,
                         "censored": not hit, "final_regret": curve[-1] if curve else math.inf,
                         "regret_gap": curve_gap, "trials_to_target_gap": hit_gap[0] if hit_gap else job["budget"] + 1,
                         "censored_gap": not hit_gap, "final_regret_gap": curve_gap[-1] if curve_gap else math.inf,
                         "side_effect_trials": side, "violations": violations,
                         "s_per_ask": float(np.median(ask_s)) if ask_s else math.nan,
                         "make_s": t_make, "objective": obj_name, "oracle_cost": c_opt, "baseline_cost": c_off,
                         "oracle_grid_cost": oracle["cost"], "oracle_stimulus": oracle["stimulus"],
                         "best": recs[-1].to_dict() if recs and recs[-1] is not None else None})
            log.info("%s seed %d %s: %d trials to target", job["family"], job["seed"], variant, rows[-1]["trials_to_target"])
    return rows


def _summary(rows: list[dict[str, Any]], optimizers: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for v in optimizers:
        r = [x for x in rows if x["optimizer"] == v]
        if not r:
            continue
        ttt = np.array([x["trials_to_target"] for x in r], dtype=float)
        fin = np.array([x["final_regret"] for x in r], dtype=float)
        ttt_gap = np.array([x.get("trials_to_target_gap", np.nan) for x in r], dtype=float)
        out[v] = {"runs": len(r), "trials_to_target_median": float(np.median(ttt)),
                  "trials_to_target_iqr": [float(np.percentile(ttt, 25)), float(np.percentile(ttt, 75))],
                  "censored": int(sum(x["censored"] for x in r)),
                  "final_regret_median": float(np.median(fin)),
                  "final_regret_iqr": [float(np.percentile(fin, 25)), float(np.percentile(fin, 75))],
                  "trials_to_target_gap_median": float(np.median(ttt_gap)),
                  "trials_to_target_gap_iqr": [float(np.percentile(ttt_gap, 25)), float(np.percentile(ttt_gap, 75))],
                  "censored_gap": int(sum(x.get("censored_gap", False) for x in r)),
                  "side_effect_trials_total": int(sum(x["side_effect_trials"] for x in r)),
                  "side_effect_trials_median": float(np.median([x["side_effect_trials"] for x in r])),
                  "hard_violations": int(sum(x["violations"] for x in r)),
                  "s_per_ask_median": float(np.nanmedian([x["s_per_ask"] for x in r]))}
    return out


def _targets(s: dict[str, Any]) -> dict[str, Any]:
    def med(v):
        return s[v]["trials_to_target_median"] if v in s else None

    def check(measured, target, ok):
        return {"measured": measured, "target": target, "met": None if measured is None else bool(ok)}

    g, b, r = med("guided"), med("bo"), med("random")
    t = {"guided_median_trials": check(g, "<= 5", g is not None and g <= 5),
         "bo_median_trials": check(b, "<= 15", b is not None and b <= 15),
         "guided_vs_bo": check(None if None in (g, b) else b / g, ">= 3x fewer", g and b and b / g >= 3),
         "guided_vs_random": check(None if None in (g, r) else r / g, ">= 10x fewer", g and r and r / g >= 10),
         "hard_violations": check(sum(v["hard_violations"] for v in s.values()), "== 0",
                                  sum(v["hard_violations"] for v in s.values()) == 0)}
    if "bo" in s and "bo_plain" in s:
        ca, pl = s["bo"]["side_effect_trials_total"], s["bo_plain"]["side_effect_trials_total"]
        t["constraint_aware_side_effects"] = check({"bo": ca, "bo_plain": pl}, "bo < bo_plain", ca < pl)
    return t


def plot_regret(rows: list[dict[str, Any]], optimizers: tuple[str, ...], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for v in optimizers:
        curves = [x["regret"] for x in rows if x["optimizer"] == v and x["regret"]]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        A = np.maximum(np.array([c[:n] for c in curves]), 1e-4)
        ax.plot(np.arange(1, n + 1), np.median(A, 0), label=v)
        ax.fill_between(np.arange(1, n + 1), np.percentile(A, 25, 0), np.percentile(A, 75, 0), alpha=0.15)
    ax.axhline(THRESHOLD, color="k", ls=":", lw=1)
    ax.set(yscale="log", xlabel="trial", ylabel="normalized regret (median, IQR)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def run_optimizer_bench(quick: bool = False, n_patients: int = 10, seeds: int = 3, budget: int = 40,
                        optimizers: tuple[str, ...] = DEFAULT_OPTIMIZERS, *, workers: int = 2,
                        checkpoint: str | Path | None | bool = None, png: str | Path | None = None) -> dict[str, Any]:
    """Run the benchmark and return its JSON-ready figures.

    Args:
        quick: Smoke test: 2 patients (one per family) × 1 seed × budget 10, coarse oracle grid.
        n_patients: Eval-cohort patients, alternating families.
        seeds: Optimizer seeds per patient.
        budget: Trials per run.
        optimizers: Variants among ``VARIANTS`` (``bo`` is constraint-aware, ``bo_plain`` is not).
        workers: Processes (one patient per task).
        checkpoint: BFM checkpoint (default the shipped one); ``False`` or a missing file: the fallback
            objective (the simulators' healthy-reference band-power distance).
        png: Regret-curve figure path (default ``$BFM_STIM_CACHE/bench_optimizers.png``).
    """
    import simulators
    from bfm_stim.optim.bench_ask import bench_ask
    from loops.offline import checkpoint_path

    if quick:
        n_patients, seeds, budget = 2, 1, 10
    unknown = [v for v in optimizers if v not in VARIANTS]
    if unknown:
        from bfm_stim.exceptions import ConfigError

        raise ConfigError(f"unknown optimizer variant(s) {unknown}; expected among {sorted(VARIANTS)}")
    ckpt = None if checkpoint is False else checkpoint_path(checkpoint)  # False: no model, reference objective
    ckpt = ckpt if ckpt is not None and ckpt.is_file() else None
    fams = ("bg-beta-v0", "cortex-jr-epileptic-v0")  # pathological regimes: a healthy patient has no way to improve
    per = {f: simulators.cohort("eval", (n_patients + 1) // 2) for f in fams}
    jobs = [{"family": fams[i % 2], "seed": per[fams[i % 2]][i // 2], "seeds": seeds, "budget": budget,
             "optimizers": tuple(optimizers), "checkpoint": str(ckpt) if ckpt else None,
             "oracle": QUICK_ORACLE if quick else {}, "repeats": 2 if quick else 8} for i in range(n_patients)]
    t0 = time.perf_counter()
    if workers > 1:
        from loops._pool import single_thread_pool

        with single_thread_pool(workers) as ex:
            rows = [r for part in ex.map(_run_patient, jobs) for r in part]
    else:
        rows = [r for j in jobs for r in _run_patient(j)]
    wall = time.perf_counter() - t0
    ask = bench_ask(n_obs=40, repeats=1 if quick else 3, num_restarts=LEAN_BO["num_restarts"],
                    raw_samples=LEAN_BO["raw_samples"], mc_samples=LEAN_BO["mc_samples"])
    summary = _summary(rows, tuple(optimizers))
    by_family = {f: _summary([r for r in rows if r["family"] == f], tuple(optimizers)) for f in fams}
    out_png = Path(png) if png else Path(os.environ.get("BFM_STIM_CACHE", Path.home() / ".cache" / "bfm-stim")) \
        / "bench_optimizers.png"
    out_png.parent.mkdir(parents=True, exist_ok=True)
    return {"quick": quick, "n_patients": n_patients, "families": list(fams), "seeds": seeds, "budget": budget,
            "threshold": THRESHOLD, "regret_normalization": "(c(best so far) - c_opt) / c_off; *_gap: / (c_off - c_opt); oracle costs, "
            "common random numbers", "repeats": jobs[0]["repeats"] if jobs else None,
            "objective": rows[0]["objective"] if rows else None, "checkpoint": str(ckpt) if ckpt else None,
            "variants": {v: {"optimizer": VARIANTS[v][0], "settings": VARIANTS[v][1]} for v in optimizers},
            "summary": summary, "summary_by_family": by_family, "targets": _targets(summary), "bench_ask_40_obs": ask, "wall_s": wall,
            "workers": workers, "figure": str(plot_regret(rows, tuple(optimizers), out_png)), "runs": rows}
