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
It runs as a preset of the benchmark harness (:func:`preset_config`: :mod:`loops.benchmark`, legacy
seeding, one task per patient whose runs share one cost model in order, as before the harness) and
turns the harness' per-trial rows into this JSON (:func:`legacy_row`).
Patients run in a process pool of ``workers``; the bare-BoTorch seconds-per-ask comparison
(:func:`loops.bench.ask.bench_ask`) runs in the same call.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bfm_stim._logging import get_logger
from loops.offline import repo_path
from loops.stats import iqr, median

log = get_logger("loops.bench.optimizers")
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


def preset_config(quick: bool = False, n_patients: int = 10, seeds: int = 3, budget: int = 40,
                  optimizers: tuple[str, ...] = DEFAULT_OPTIMIZERS, *, workers: int = 2,
                  checkpoint: Path | None = None) -> Any:
    """This benchmark as a :class:`loops.benchmark.config.BenchmarkConfig` (``seeding = "legacy"``).

    Legacy seeding: optimizer seed = seed index, trial ``100_000 + 1000 * seed + t``, and one cost
    model per patient shared by its runs in order (seeds, then optimizers), as before the harness,
    so the committed ``bench/optimizers.json`` stays reproducible. ``checkpoint=None``: the
    simulators' healthy-reference objective.
    """
    from loops.benchmark.config import (BenchmarkConfig, CohortConfig, ExecutorConfig, ObjectiveConfig,
                                        OptimizerEntry, OracleConfig)

    return BenchmarkConfig(
        optimizers=tuple(OptimizerEntry(v, VARIANTS[v][0], dict(VARIANTS[v][1])) for v in optimizers),
        name="bench-optimizers-quick" if quick else "bench-optimizers", budget=budget, seeds=seeds, seeding="legacy",
        cohort=CohortConfig(families=("bg-beta-v0", "cortex-jr-epileptic-v0"), n_patients=n_patients),
        objective=ObjectiveConfig(kind="latent", checkpoint=str(checkpoint)) if checkpoint is not None
        else ObjectiveConfig(kind="healthy_reference"),
        oracle=OracleConfig(repeats=2 if quick else 8, trial_costs=False, grid=QUICK_ORACLE if quick else {}),
        executor=ExecutorConfig(workers=workers))


def legacy_row(result: dict[str, Any], budget: int) -> dict[str, Any]:
    """A harness result (one cell) as a row of this benchmark's JSON."""
    m, rows, cell = result["manifest"], result["rows"], result["cell"]
    c_opt, c_off = m["oracle"]["cost"], m["oracle"]["off_cost"]
    gap = c_off - c_opt if c_off - c_opt > 1e-9 else 1.0
    norm = abs(c_off) if abs(c_off) > 1e-9 else 1.0
    told = [r for r in rows if r["delivered"]]  # a refused stimulus told nothing and recommended nothing
    true_best = [r["oracle_rec_cost"] for r in told]
    curve = [(c - c_opt) / norm for c in true_best]
    curve_gap = [(c - c_opt) / gap for c in true_best]
    hit = [i + 1 for i, r in enumerate(curve) if r <= THRESHOLD]
    hit_gap = [i + 1 for i, r in enumerate(curve_gap) if r <= THRESHOLD]
    asks = [r["ask_s"] + (rows[i - 1]["rec_s"] if i else 0.0) for i, r in enumerate(rows)]
    return {"family": m["patient"]["id"], "patient_seed": m["patient"]["seed"], "seed": cell["seed"],
            "optimizer": cell["optimizer"]["label"], "regret": curve, "trials_to_target": hit[0] if hit else budget + 1,
            "censored": not hit, "final_regret": curve[-1] if curve else math.inf,
            "regret_gap": curve_gap, "trials_to_target_gap": hit_gap[0] if hit_gap else budget + 1,
            "censored_gap": not hit_gap, "final_regret_gap": curve_gap[-1] if curve_gap else math.inf,
            "side_effect_trials": int(sum(bool(r["side_effect_reported"]) for r in told)),
            "violations": int(sum(r["violation"] is not None for r in rows)),
            "s_per_ask": median(asks), "make_s": math.nan,
            "objective": m["objective"], "oracle_cost": c_opt, "baseline_cost": c_off,
            "oracle_grid_cost": m["oracle"]["grid_cost"], "oracle_stimulus": m["oracle"]["stimulus"],
            "best": told[-1]["recommendation"] if told else None, "status": result["status"]}


def _run_harness(cfg: Any, runs_dir: str | Path | None) -> tuple[list[dict[str, Any]], float]:
    """Run the preset through the harness (local pool); results in cell order and the wall time."""
    import tempfile

    from loops.benchmark.cells import expand
    from loops.benchmark.executors import Store, execute

    cells = expand(cfg)
    with tempfile.TemporaryDirectory(prefix="bench-optimizers-") as tmp:
        out = Path(runs_dir) if runs_dir is not None else Path(tmp)
        t0 = time.perf_counter()
        execute(cfg, cells, out, progress=False)
        wall = time.perf_counter() - t0
        results = Store(out).results([c.id for c in cells])
    bad = [r for r in results if r["status"] != "ok"]
    if bad:
        log.warning("%d run(s) did not finish: %s", len(bad), [(r["cell"]["optimizer"]["label"], r["error"]) for r in bad])
    return results, wall


def _summary(rows: list[dict[str, Any]], optimizers: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for v in optimizers:
        r = [x for x in rows if x["optimizer"] == v]
        if not r:
            continue
        ttt = np.array([x["trials_to_target"] for x in r], dtype=float)
        fin = np.array([x["final_regret"] for x in r], dtype=float)
        ttt_gap = np.array([x.get("trials_to_target_gap", np.nan) for x in r], dtype=float)
        out[v] = {"runs": len(r), "trials_to_target_median": median(ttt), "trials_to_target_iqr": iqr(ttt),
                  "censored": int(sum(x["censored"] for x in r)),
                  "final_regret_median": median(fin), "final_regret_iqr": iqr(fin),
                  "trials_to_target_gap_median": median(ttt_gap), "trials_to_target_gap_iqr": iqr(ttt_gap),
                  "censored_gap": int(sum(x.get("censored_gap", False) for x in r)),
                  "side_effect_trials_total": int(sum(x["side_effect_trials"] for x in r)),
                  "side_effect_trials_median": median([x["side_effect_trials"] for x in r]),
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
                        checkpoint: str | Path | None | bool = None, png: str | Path | None = None,
                        runs_dir: str | Path | None = None) -> dict[str, Any]:
    """Run the benchmark and return its JSON-ready figures.

    Args:
        quick: Smoke test: 2 patients (one per family) × 1 seed × budget 10, coarse oracle grid.
        n_patients: Eval-cohort patients, alternating families.
        seeds: Optimizer seeds per patient.
        budget: Trials per run.
        optimizers: Variants among ``VARIANTS`` (``bo`` is constraint-aware, ``bo_plain`` is not).
        workers: Processes (one patient per task).
        checkpoint: BFM checkpoint (default the shipped one); ``False`` or no shipped one: the fallback
            objective (the simulators' healthy-reference band-power distance).
        png: Regret-curve figure path (default ``$BFM_STIM_CACHE/bench_optimizers.png``).
        runs_dir: Keep the harness' per-run results (``cells/*.json``, resumable) here (default: a
            temporary folder, removed).
    """
    from loops.bench.ask import bench_ask
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
    cfg = preset_config(quick, n_patients, seeds, budget, tuple(optimizers), workers=workers, checkpoint=ckpt)
    results, wall = _run_harness(cfg, runs_dir)
    rows = [legacy_row(r, budget) for r in results if "oracle" in r["manifest"]]  # set-up failures: warned above
    ask = bench_ask(n_obs=40, repeats=1 if quick else 3, num_restarts=LEAN_BO["num_restarts"],
                    raw_samples=LEAN_BO["raw_samples"], mc_samples=LEAN_BO["mc_samples"])
    summary = _summary(rows, tuple(optimizers))
    by_family = {f: _summary([r for r in rows if r["family"] == f], tuple(optimizers)) for f in fams}
    out_png = Path(png) if png else Path(os.environ.get("BFM_STIM_CACHE", Path.home() / ".cache" / "bfm-stim")) \
        / "bench_optimizers.png"
    out_png.parent.mkdir(parents=True, exist_ok=True)
    return {"quick": quick, "n_patients": n_patients, "families": list(fams), "seeds": seeds, "budget": budget,
            "threshold": THRESHOLD, "regret_normalization": "(c(best so far) - c_opt) / c_off; *_gap: / (c_off - c_opt); oracle costs, "
            "common random numbers", "repeats": cfg.oracle.repeats,
            "objective": rows[0]["objective"] if rows else None, "checkpoint": repo_path(ckpt) if ckpt else None,
            "variants": {v: {"optimizer": VARIANTS[v][0], "settings": VARIANTS[v][1]} for v in optimizers},
            "summary": summary, "summary_by_family": by_family, "targets": _targets(summary), "bench_ask_40_obs": ask, "wall_s": wall,
            "workers": workers, "figure": repo_path(plot_regret(rows, tuple(optimizers), out_png)), "runs": rows}
