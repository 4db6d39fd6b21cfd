"""Benchmark metrics, always on oracle (noise-free) costs.

* Regret of the recommendation after trial t, gap-normalized: ``(c(rec_t) - c_opt) / (c_off - c_opt)``
  (0 = the oracle optimum, 1 = no better than stimulation off; the runner computes it per row).
* Trials to target τ: the first trial (1-based) whose regret is <= τ; a run that never gets there is
  censored, counted as ``budget + 1`` in medians and as the trials it used in COCO's expected running
  time ``ERT = (trials of all runs: to the hit, or all used) / (runs that hit)`` (∞ when none did).
* ECDF of trials to target pooled over (patient, seed, threshold), COCO-style.
* Bootstrap bands of the median regret curve, resampling patients (a patient's seeds move together).
* Paired Wilcoxon signed-rank tests between optimizers over patients (per patient the mean over seeds
  of the censored trials to target), Holm-corrected; a win-rate matrix over (patient, seed) pairs.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any, Sequence

import numpy as np

from loops.stats import bootstrap_median_ci, median, median_iqr

__all__ = ["run_records", "trials_to_target", "ert", "optimizer_summary", "ecdf", "bootstrap_band",
           "paired_tests", "holm", "win_rate", "regret_matrix"]


def trials_to_target(regret: Sequence[float], tau: float) -> int | None:
    """First 1-based trial with regret <= ``tau``, or ``None``."""
    for i, r in enumerate(regret):
        if r is not None and r <= tau:
            return i + 1
    return None


def run_records(results: list[dict[str, Any]], thresholds: Sequence[float]) -> list[dict[str, Any]]:
    """One flat record per run (cell result): curve, trials to each target, side effects, timings."""
    out = []
    for res in results:
        c, rows = res["cell"], res["rows"]
        regret = [r.get("regret") for r in rows]
        asks = [r["ask_s"] for r in rows]
        out.append({
            "cell_id": c["id"], "patient": res["manifest"].get("patient", {}).get("label") or c["patient"]["target"],
            "family": res["manifest"].get("patient", {}).get("family") or c["patient"]["target"],
            "optimizer": c["optimizer"]["label"], "seed": c["seed"], "budget": c["budget"], "status": res["status"],
            "error": res.get("error"), "trials": len(rows), "regret": regret,
            "final_regret": regret[-1] if regret else math.nan,
            "ttt": {str(t): trials_to_target(regret, t) for t in thresholds},
            "side_effect_trials": int(sum(bool(r.get("side_effect_reported")) for r in rows)),
            "hard_violations": int(sum(r.get("violation") is not None for r in rows)),
            "s_per_ask": median(asks),
            "run_s": float(res.get("run_s", math.nan)),
        })
    return out


def ert(runs: list[dict[str, Any]], tau: float) -> float:
    """COCO's expected running time (trials) to regret <= ``tau`` over ``runs``; ``inf`` if none hit."""
    hits = [r["ttt"][str(tau)] for r in runs]
    n_ok = sum(h is not None for h in hits)
    total = sum(h if h is not None else r["trials"] for h, r in zip(hits, runs))
    return total / n_ok if n_ok else math.inf


def _censored(r: dict[str, Any], tau: float) -> int:
    h = r["ttt"][str(tau)]
    return h if h is not None else r["budget"] + 1


def optimizer_summary(runs: list[dict[str, Any]], thresholds: Sequence[float], primary: float, *,
                      n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Per-optimizer figures: trials to target (median, IQR, ERT per threshold), final regret, safety, timing.

    ``trials_to_target_ci95``: percentile-bootstrap 95 % interval of the median trials to the primary
    target (censored runs at ``budget + 1``; ``n_boot`` resamples of the runs, seeded with ``seed``).
    """
    out: dict[str, Any] = {}
    for opt in dict.fromkeys(r["optimizer"] for r in runs):
        rs = [r for r in runs if r["optimizer"] == opt]
        ttt = [_censored(r, primary) for r in rs]
        med, iqr = median_iqr(ttt)
        fin, fin_iqr = median_iqr([r["final_regret"] for r in rs])
        status: dict[str, int] = {}
        for r in rs:
            status[r["status"]] = status.get(r["status"], 0) + 1
        out[opt] = {
            "runs": len(rs), "status": status,
            "trials_to_target_median": med, "trials_to_target_iqr": iqr,
            "trials_to_target_ci95": list(bootstrap_median_ci(ttt, level=0.95, n_boot=n_boot, seed=seed)),
            "reached": sum(r["ttt"][str(primary)] is not None for r in rs),
            "by_threshold": {str(t): {"ert": ert(rs, t), "reached": sum(r["ttt"][str(t)] is not None for r in rs),
                                      "median": median([_censored(r, t) for r in rs])} for t in thresholds},
            "final_regret_median": fin, "final_regret_iqr": fin_iqr,
            "side_effect_trials_total": int(sum(r["side_effect_trials"] for r in rs)),
            "side_effect_trials_median": median([r["side_effect_trials"] for r in rs]),
            "hard_violations": int(sum(r["hard_violations"] for r in rs)),
            "s_per_ask_median": float(np.nanmedian([r["s_per_ask"] for r in rs])) if rs else math.nan,
            "run_s_median": float(np.nanmedian([r["run_s"] for r in rs])) if rs else math.nan,
        }
    return out


def ecdf(runs: list[dict[str, Any]], thresholds: Sequence[float], budget: int) -> dict[str, list[float]]:
    """Per optimizer: fraction of (run, threshold) pairs solved by trial 1..budget."""
    out = {}
    for opt in dict.fromkeys(r["optimizer"] for r in runs):
        hits = [r["ttt"][str(t)] for r in runs if r["optimizer"] == opt for t in thresholds]
        n = len(hits)
        out[opt] = [sum(h is not None and h <= k for h in hits) / n for k in range(1, budget + 1)]
    return out


def regret_matrix(runs: list[dict[str, Any]], budget: int) -> np.ndarray:
    """(n_runs, budget) regret curves; runs stopped early (crash, timeout) padded with NaN."""
    A = np.full((len(runs), budget), np.nan)
    for i, r in enumerate(runs):
        v = [np.nan if x is None else x for x in r["regret"][:budget]]
        A[i, :len(v)] = v
    return A


def bootstrap_band(runs: list[dict[str, Any]], budget: int, *, n_boot: int = 1000, seed: int = 0,
                   level: float = 0.95) -> dict[str, list[float]]:
    """Median regret per trial and a ``level`` bootstrap band (patients resampled with replacement).

    Returns ``{"median": (budget,), "lo": (budget,), "hi": (budget,)}`` as lists.
    """
    A = regret_matrix(runs, budget)
    pats = sorted({r["patient"] for r in runs})
    idx = {p: [i for i, r in enumerate(runs) if r["patient"] == p] for p in pats}
    rng = np.random.default_rng(seed)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(A, axis=0)
            boots = np.empty((n_boot, budget))
            for b in range(n_boot):
                rows = [i for p in rng.choice(pats, len(pats)) for i in idx[p]]
                boots[b] = np.nanmedian(A[rows], axis=0)
            a = (1 - level) / 2
            lo, hi = np.nanquantile(boots, a, axis=0), np.nanquantile(boots, 1 - a, axis=0)
    return {"median": med.tolist(), "lo": lo.tolist(), "hi": hi.tolist()}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order)."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p)
    adj = np.empty(m)
    run = 0.0
    for k, i in enumerate(order):
        run = max(run, min(1.0, (m - k) * p[i]))
        adj[i] = run
    return adj.tolist()


def _per_patient(runs: list[dict[str, Any]], opt: str, tau: float) -> dict[str, float]:
    by: dict[str, list[int]] = {}
    for r in runs:
        if r["optimizer"] == opt:
            by.setdefault(r["patient"], []).append(_censored(r, tau))
    return {p: float(np.mean(v)) for p, v in by.items()}


def paired_tests(runs: list[dict[str, Any]], tau: float) -> list[dict[str, Any]]:
    """Wilcoxon signed-rank test per optimizer pair over patients (censored trials to target ``tau``), Holm-corrected.

    ``median_diff`` < 0: the first optimizer needed fewer trials.
    """
    from scipy.stats import wilcoxon

    opts = list(dict.fromkeys(r["optimizer"] for r in runs))
    per = {o: _per_patient(runs, o, tau) for o in opts}
    out = []
    for a, b in combinations(opts, 2):
        pats = sorted(set(per[a]) & set(per[b]))
        d = np.array([per[a][p] - per[b][p] for p in pats])
        if len(d) == 0 or np.all(d == 0):
            p = 1.0
        else:
            p = float(wilcoxon(d, zero_method="zsplit").pvalue)
        out.append({"a": a, "b": b, "n_patients": len(pats), "median_diff": float(np.median(d)) if len(d) else math.nan,
                    "p": p})
    for row, adj in zip(out, holm([r["p"] for r in out])):
        row["p_holm"] = adj
    return out


def win_rate(runs: list[dict[str, Any]], tau: float) -> dict[str, Any]:
    """``W[a][b]``: fraction of (patient, seed) pairs where ``a`` beat ``b`` (fewer trials to ``tau``, then lower
    final regret; ties count half)."""
    opts = list(dict.fromkeys(r["optimizer"] for r in runs))
    key = {(r["optimizer"], r["patient"], r["seed"]): (_censored(r, tau), r["final_regret"]) for r in runs}
    W: dict[str, dict[str, float | None]] = {}
    for a in opts:
        W[a] = {}
        for b in opts:
            pairs = [(key[(a, p, s)], key[(b, p, s)]) for (o, p, s) in key if o == a and (b, p, s) in key]
            if a == b or not pairs:
                W[a][b] = None
                continue
            score = sum(1.0 if x < y else 0.5 if x == y else 0.0 for x, y in pairs)
            W[a][b] = score / len(pairs)
    return {"optimizers": opts, "matrix": W}
