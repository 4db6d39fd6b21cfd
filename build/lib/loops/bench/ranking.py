"""``bfm-stim bench ranking``: does the surrogate rank stimuli the way the patient does?

Zero-shot (30 s of rest, no trial), per evaluation-cohort patient of both families in their
pathological regimes. Each patient gets stimuli the surrogate never saw a response to:

* ``random``: ``n_stimuli`` random safe electrical stimuli (all parameters vary);
* ``contact``: every contact of the lead at three amplitudes (130 Hz, 60 µs);
* ``frequency``: ``n_sweep`` frequencies across the space's range (one contact, mid amplitude, 60 µs);
* ``amplitude``: ``n_sweep`` amplitudes across the range (one contact, 130 Hz, 60 µs).

Every stimulus is simulated ``repeats`` times with common noise (trials 50 000 …, as
``simulators.oracle_cost``) and scored by each objective on the same responses (the oracle cost):

* ``latent``: the latent ``healthy`` target of the optimizer benchmark (distance of the encoder
  latents of the response to the healthy twin's), predicted through the response head; ablation:
  the rolled-out latents compared with the target directly;
* ``bandpower``: log beta (13–30 Hz) power on the DBS lead (``simulators.BandPowerObjective``),
  predicted through the biomarker heads (where the checkpoint has them); ablation: the power of the
  signal forecast (what ``BandPowerObjective`` read before the heads).

Figures per patient, objective and slice, and medians [IQR] per family: Spearman ρ between
predicted and oracle cost; its noise ceiling (:func:`split_half_ceiling`: how well two independent
halves of the oracle's repeats agree, stepped up to all repeats); the oracle-cost percentile (0 = best of the sample, 0.5 = a random
pick) of the surrogate's top pick and of the best of its top 3 (``random`` slice), and how many of
those top 3 cause a side effect.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from bfm_stim._logging import get_logger
from loops.stats import finite_summary

log = get_logger("loops.bench.ranking")
FAMILIES = ("bg-beta-v0", "cortex-jr-epileptic-v0")
OBJECTIVES = ("latent", "bandpower")
SLICES = ("random", "contact", "frequency", "amplitude")
BETA = (13.0, 30.0)


def _percentile(y: np.ndarray, i: int) -> float:
    """Fraction of the sample strictly better (lower cost) than stimulus ``i``."""
    return float((y < y[i]).mean())


def _stimuli(space: Any, contacts: list[str], n_random: int, n_sweep: int, seed: int) -> dict[str, list[Any]]:
    """The stimuli of each slice (all projected onto the safe set)."""
    import torch

    from bfm_stim.space import Stimulus

    U = torch.rand(n_random, space.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    amp, freq = space.param("amplitude_ma"), space.param("frequency_hz")
    mid_c = contacts[len(contacts) // 2]

    def el(c: str, a: float, f: float, pw: float = 60.0) -> Any:
        return space.project_safe(Stimulus.electrical(contact=c, amplitude_ma=float(a), frequency_hz=float(f),
                                                      pulse_width_us=pw))
    a_mid = 0.5 * (amp.low + amp.high)
    return {"random": [space.project_safe(s) for s in space.from_unit(U)],
            "contact": [el(c, a, 130.0) for c in contacts for a in (0.3 * amp.high, 0.6 * amp.high, 0.9 * amp.high)],
            "frequency": [el(mid_c, a_mid, f) for f in np.geomspace(max(freq.low, 2.0), freq.high, n_sweep)],
            "amplitude": [el(mid_c, a, 130.0) for a in np.linspace(max(amp.low, 0.05 * amp.high), amp.high, n_sweep)]}


def _oracle(patient: Any, stims: list[Any], objectives: dict[str, Any], repeats: int) -> dict[str, np.ndarray]:
    """Cost of each stimulus under each objective in each of ``repeats`` common-noise trials, from one
    batch: ``{name: (n, repeats)}`` (the oracle cost is the mean over repeats)."""
    from simulators.batch import simulate_batch
    from simulators.oracle import SETTLE_S

    rows = [(s, r) for s in stims for r in range(repeats)]
    res = simulate_batch([patient] * len(rows), [s for s, _ in rows], 1.0 + SETTLE_S, onset_s=0.0,
                         trials=[50_000 + r for _, r in rows])
    k0 = int(round(SETTLE_S * patient.fs))
    out = {}
    for name, obj in objectives.items():
        c = [float(obj(patient, res.data[i, : patient.n_channels, k0:], s)) for i, (s, _) in enumerate(rows)]
        out[name] = np.asarray(c).reshape(len(stims), repeats)
    return out


def split_half_ceiling(costs: np.ndarray) -> float:
    """Noise ceiling of a Spearman against the oracle: the Spearman between the oracle costs of two
    halves of the repeats (independent noise), stepped up to the full number of repeats with the
    Spearman-Brown formula ``2 r / (1 + r)``. A perfect predictor of the expected cost cannot
    correlate with a finite-repeat oracle much above this. ``costs``: (n, repeats), repeats >= 2."""
    from scipy.stats import spearmanr

    h = costs.shape[1] // 2
    a, b = costs[:, :h].mean(1), costs[:, h:2 * h].mean(1)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    r = float(spearmanr(a, b)[0])
    return 2 * r / (1 + r) if r > -1 else float("nan")


def _run_patient(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    import simulators
    from scipy.stats import spearmanr

    from bfm_stim.objectives import BandPowerObjective
    from bfm_stim.optim import SurrogateCost
    from loops.offline import file_digest, make_target, patient_surrogate

    p = simulators.make(job["family"], seed=job["seed"])
    space = p.stimulus_space()
    ckpt = Path(job["checkpoint"])
    sur, rest = patient_surrogate(p, ckpt)
    ctx = rest[:, -sur.cfg.max_patches * sur.cfg.patch_len:]
    lat = make_target("healthy", p, sur, ckpt_tag=file_digest(ckpt))
    bp = make_target(f"bandpower:{BETA[0]:g}-{BETA[1]:g}", p, sur)
    has_heads = sur.model.biomarker is not None
    costs = {"latent": SurrogateCost(sur, ctx, lat.forecast, seed=p.seed),
             "bandpower": SurrogateCost(sur, ctx, bp.forecast, seed=p.seed)}
    sig_obj = BandPowerObjective(BETA, sur.fs, channels=bp.forecast.channels, log_base=np.e, use_heads=False)
    signal_cost = SurrogateCost(sur, ctx, sig_obj, seed=p.seed)
    sets = _stimuli(space, [c.name for c in p.contacts], job["n_stimuli"], job["n_sweep"], job["seed"])
    flat = [s for name in SLICES for s in sets[name]]
    t0 = time.perf_counter()
    y_rep = _oracle(p, flat, {"latent": lat.measured, "bandpower": bp.measured}, job["repeats"])
    y_all = {k: v.mean(1) for k, v in y_rep.items()}
    t_oracle = time.perf_counter() - t0
    F = space.to_features(flat, dtype=torch.float64)
    with torch.no_grad():
        t1 = time.perf_counter()
        pred_all = {k: c.predict_mean(F).numpy() for k, c in costs.items()}
        t_pred = time.perf_counter() - t1
        pred_all["latent_rollout"] = lat.forecast(costs["latent"].forecast(F.float()).z).numpy()
        pred_all["bandpower_signal"] = signal_cost.predict_mean(F).numpy()
    out: dict[str, Any] = {"family": job["family"], "patient_seed": job["seed"], "biomarker_heads": has_heads,
                           "n_stimuli": {k: len(v) for k, v in sets.items()}, "oracle_s": t_oracle, "predict_s": t_pred}
    start = 0
    for name in SLICES:
        n = len(sets[name])
        sl = slice(start, start + n)
        start += n
        for obj in OBJECTIVES:
            y, pred = y_all[obj][sl], pred_all[obj][sl]
            abl = pred_all["latent_rollout" if obj == "latent" else "bandpower_signal"][sl]
            row = {"spearman": float(spearmanr(y, pred)[0]) if np.ptp(y) > 0 and np.ptp(pred) > 0 else float("nan"),
                   "spearman_ablation": float(spearmanr(y, abl)[0]) if np.ptp(y) > 0 and np.ptp(abl) > 0 else float("nan"),
                   "oracle_ceiling": split_half_ceiling(y_rep[obj][sl])}
            if name == "random":
                top = np.argsort(pred)[:3]
                stims = sets[name]
                row |= {"top1_percentile": _percentile(y, int(top[0])),
                        "top3_best_percentile": min(_percentile(y, int(i)) for i in top),
                        "top3_side_effects": int(sum(p.side_effect(stims[i], trial=0)[1] for i in top)),
                        "oracle_min": float(y.min()), "oracle_median": float(np.median(y)),
                        "oracle_top1": float(y[top[0]]), "top1": stims[int(top[0])].to_dict()}
            out[f"{obj}/{name}"] = row
    return out


def run_ranking_bench(n_patients: int = 20, n_stimuli: int = 48, repeats: int = 8, *, workers: int = 2,
                      checkpoint: str | Path | None = None, quick: bool = False, n_sweep: int = 12) -> dict[str, Any]:
    """Run the benchmark; returns its JSON-ready figures with a ``targets`` block (see the module docs).

    Args:
        n_patients: Eval-cohort patients in all, alternating families (>= 10 per family by default).
        n_stimuli: Random safe stimuli per patient (the ``random`` slice).
        repeats: Simulated trials averaged per oracle cost.
        workers: Processes (one patient per task).
        checkpoint: BFM checkpoint (default the shipped one).
        quick: 2 patients x 12 stimuli x 2 repeats, sweeps of 6 (smoke test).
        n_sweep: Stimuli in the frequency and amplitude sweeps.
    """
    import simulators
    from bfm_stim.exceptions import ModelError
    from loops.offline import checkpoint_path, file_digest

    if quick:
        n_patients, n_stimuli, repeats, n_sweep = 2, 12, 2, 6
    ck = checkpoint_path(checkpoint)
    if ck is None or not ck.is_file():
        raise ModelError("bench ranking needs the foundation model checkpoint (none shipped or given)")
    per = {f: simulators.cohort("eval", (n_patients + 1) // 2) for f in FAMILIES}
    jobs = [{"family": FAMILIES[i % 2], "seed": per[FAMILIES[i % 2]][i // 2], "n_stimuli": n_stimuli,
             "n_sweep": n_sweep, "repeats": repeats, "checkpoint": str(ck)} for i in range(n_patients)]
    t0 = time.perf_counter()
    if workers > 1:
        from loops._pool import single_thread_pool

        with single_thread_pool(workers) as ex:
            rows = list(ex.map(_run_patient, jobs))
    else:
        rows = [_run_patient(j) for j in jobs]
    for r in rows:
        log.info("%s %d: Spearman latent %.2f, beta %.2f (signal %.2f), top-1 percentile %.2f / %.2f", r["family"],
                 r["patient_seed"], r["latent/random"]["spearman"], r["bandpower/random"]["spearman"],
                 r["bandpower/random"]["spearman_ablation"], r["latent/random"]["top1_percentile"],
                 r["bandpower/random"]["top1_percentile"])
    keys = ("spearman", "spearman_ablation", "oracle_ceiling", "top1_percentile", "top3_best_percentile",
            "top3_side_effects")
    summary: dict[str, Any] = {}
    for f in FAMILIES:
        fam_rows = [r for r in rows if r["family"] == f]
        summary[f] = {f"{o}/{s}": {k: finite_summary([r[f"{o}/{s}"].get(k) for r in fam_rows],
                                                     empty_iqr=[None, None])
                                   for k in keys if k in fam_rows[0][f"{o}/{s}"]} if fam_rows else {}
                      for o in OBJECTIVES for s in SLICES}

    def med(f: str, key: str, k: str = "spearman") -> float | None:
        return summary[f][key][k]["median"] if summary.get(f) and key in summary[f] else None

    targets = {
        "spearman_beta_bandpower_bg_beta": _target(med("bg-beta-v0", "bandpower/random"), ">=", 0.85),
        "spearman_latent_bg_beta": _target(med("bg-beta-v0", "latent/random"), ">=", 0.8),
        "spearman_latent_cortex": _target(med("cortex-jr-epileptic-v0", "latent/random"), ">=", 0.8),
        "top1_within_best_5pct_latent": {f: _target(med(f, "latent/random", "top1_percentile"), "<=", 0.05) for f in FAMILIES},
        "top1_within_best_5pct_beta_bg_beta": _target(med("bg-beta-v0", "bandpower/random", "top1_percentile"), "<=", 0.05),
    }
    return {"quick": quick, "n_patients": n_patients, "n_stimuli": n_stimuli, "n_sweep": n_sweep, "repeats": repeats,
            "families": list(FAMILIES), "objectives": {"latent": "healthy twin's latent (BFM encoder)",
                                                        "bandpower": f"log beta {BETA[0]:g}-{BETA[1]:g} Hz power, DBS lead"},
            "checkpoint": file_digest(ck), "biomarker_heads": bool(rows and rows[0]["biomarker_heads"]),
            "random_pick_percentile": 0.5, "targets": targets, "summary": summary,
            "wall_s": time.perf_counter() - t0, "workers": workers, "patients": rows}


def _target(measured: float | None, op: str, target: float) -> dict[str, Any]:
    met = None if measured is None else (measured >= target if op == ">=" else measured <= target)
    return {"measured": measured, "target": f"{op} {target:g}", "met": met}
