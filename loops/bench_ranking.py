"""``bfm-stim bench ranking``: does the surrogate rank stimuli the way the patient does?

Zero-shot (30 s of rest, no trial), per evaluation-cohort patient of both families in their
pathological regimes (as :mod:`loops.bench_optimizers`): ``n_stimuli`` random safe electrical
stimuli, their true cost under the latent ``healthy`` target (the oracle: noise-averaged over
``repeats`` simulated trials) against the surrogate's predicted cost. Figures per patient and as
medians [IQR] over patients:

* Spearman ρ between predicted and true cost — through the response head (what the optimizers
  use) and, as the ablation, through the rolled-out latents compared directly with the target
  (what a latent target read before the response head existed);
* the true-cost percentile (0 = best of the sample, 0.5 = a random pick) of the surrogate's top
  pick and of the best of its top 3 among the sampled stimuli (a proxy for the initial design of
  ``guided``, which searches the surrogate by gradient instead), and how many of those top 3
  cause a side effect.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from bfm_stim._logging import get_logger

log = get_logger("loops.bench_ranking")
FAMILIES = ("bg-beta-v0", "cortex-jr-epileptic-v0")


def _percentile(y: np.ndarray, i: int) -> float:
    """Fraction of the sample strictly better (lower cost) than stimulus ``i``."""
    return float((y < y[i]).mean())


def _objective(patient: Any, ckpt: Path | None) -> tuple[Any, Any, str]:
    """(measured objective, surrogate cost model or None, name) for one patient: the latent target of the
    optimizer benchmark (the healthy twin's latent; see :class:`loops.benchmark.patients`)."""
    import simulators
    from bfm_stim.optim import SurrogateCost
    from loops.offline import file_digest, make_target, patient_surrogate

    if ckpt is None:
        return simulators.HealthyReferenceObjective(), None, "HealthyReferenceObjective (no checkpoint)"
    sur, rest = patient_surrogate(patient, ckpt)
    tgt = make_target("healthy", patient, sur, ckpt_tag=file_digest(ckpt))
    cost = SurrogateCost(sur, rest[:, -sur.cfg.max_patches * sur.cfg.patch_len:], tgt.forecast, seed=patient.seed)
    return tgt.measured, cost, f"latent target (BFM encoder, checkpoint {file_digest(ckpt)})"


def _run_patient(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    import simulators
    from scipy.stats import spearmanr

    p = simulators.make(job["family"], seed=job["seed"])
    space = p.stimulus_space()
    objective, cost, name = _objective(p, Path(job["checkpoint"]))
    U = torch.rand(job["n_stimuli"], space.dim, dtype=torch.float64,
                   generator=torch.Generator().manual_seed(job["seed"]))
    stims = [space.project_safe(s) for s in space.from_unit(U)]
    t0 = time.perf_counter()
    y = np.array([simulators.oracle_cost(p, s, objective, repeats=job["repeats"]) for s in stims])
    y_off = simulators.oracle_cost(p, None, objective, repeats=job["repeats"])
    F = space.to_features(stims, dtype=torch.float64)
    with torch.no_grad():
        t1 = time.perf_counter()
        head = cost.predict_mean(F).numpy()
        t_pred = time.perf_counter() - t1
        fc = cost.forecast(F.float())
        rollout = cost.objective(fc.z).numpy()
    top = np.argsort(head)[:3]
    sev = [p.side_effect(stims[i], trial=0)[1] for i in top]
    return {"family": job["family"], "patient_seed": job["seed"], "objective": name, "n_stimuli": len(stims),
            "spearman_response_head": float(spearmanr(y, head)[0]),
            "spearman_rollout_latents": float(spearmanr(y, rollout)[0]),
            "top1_percentile": _percentile(y, int(top[0])), "top3_best_percentile": min(_percentile(y, int(i)) for i in top),
            "top3_side_effects": int(sum(sev)), "true_cost_min": float(y.min()), "true_cost_median": float(np.median(y)),
            "true_cost_off": float(y_off), "true_cost_top1": float(y[top[0]]),
            "oracle_s": t1 - t0, "predict_s": t_pred, "top1": stims[int(top[0])].to_dict()}


def run_ranking_bench(n_patients: int = 10, n_stimuli: int = 48, repeats: int = 4, *, workers: int = 2,
                      checkpoint: str | Path | None = None, quick: bool = False) -> dict[str, Any]:
    """Run the benchmark; returns its JSON-ready figures (see the module docs).

    Args:
        n_patients: Eval-cohort patients, alternating families.
        n_stimuli: Random safe stimuli per patient.
        repeats: Simulated trials averaged per true cost.
        workers: Processes (one patient per task).
        checkpoint: BFM checkpoint (default the shipped one).
        quick: 2 patients x 12 stimuli x 2 repeats (smoke test).
    """
    import simulators
    from bfm_stim.exceptions import ModelError
    from loops.bench_surrogate import _summary
    from loops.offline import checkpoint_path

    if quick:
        n_patients, n_stimuli, repeats = 2, 12, 2
    ck = checkpoint_path(checkpoint)
    if ck is None or not ck.is_file():
        raise ModelError("bench ranking needs the foundation model checkpoint (none shipped or given)")
    per = {f: simulators.cohort("eval", (n_patients + 1) // 2) for f in FAMILIES}
    jobs = [{"family": FAMILIES[i % 2], "seed": per[FAMILIES[i % 2]][i // 2], "n_stimuli": n_stimuli,
             "repeats": repeats, "checkpoint": str(ck)} for i in range(n_patients)]
    t0 = time.perf_counter()
    if workers > 1:
        from loops._pool import single_thread_pool

        with single_thread_pool(workers) as ex:
            rows = list(ex.map(_run_patient, jobs))
    else:
        rows = [_run_patient(j) for j in jobs]
    for r in rows:
        log.info("%s %d: Spearman head %.2f, rollout %.2f, top-1 percentile %.2f", r["family"], r["patient_seed"],
                 r["spearman_response_head"], r["spearman_rollout_latents"], r["top1_percentile"])
    keys = ("spearman_response_head", "spearman_rollout_latents", "top1_percentile", "top3_best_percentile",
            "top3_side_effects")
    summary = {"all": {k: _summary([r[k] for r in rows]) for k in keys}}
    for f in FAMILIES:
        summary[f] = {k: _summary([r[k] for r in rows if r["family"] == f]) for k in keys}
    return {"quick": quick, "n_patients": n_patients, "n_stimuli": n_stimuli, "repeats": repeats,
            "families": list(FAMILIES), "checkpoint": str(ck), "objective": rows[0]["objective"] if rows else None,
            "random_pick_percentile": 0.5, "summary": summary, "wall_s": time.perf_counter() - t0,
            "workers": workers, "patients": rows}
