"""``bfm-stim bench robust``: model-guided optimization where the model is right and where it is wrong.

Settings (each a benchmark run of the harness, :mod:`loops.benchmark`, in ``RUNS/robust/<setting>``):

* ``home-latent`` — the latent target on the two home families (the pretraining families'
  evaluation patients): the model is at home.
* ``home-bandpower`` — beta band power on ``bg-beta-v0`` evaluation patients (biomarker heads).
* ``foreign-model`` — beta band power on ``bg-beta-v0`` patients, the surrogate bound to a
  ``cortex-jr-epileptic-v0`` patient (:class:`loops.bench.robust_patients.ForeignModelPatient`):
  a model adapted to the wrong patient.
* ``user-patient`` — the example user patient (``examples.user_patient:QuadraticPatientWithModel``)
  with a model built by :func:`bfm_stim.optim.cost_model_from_rest` from a recording that is not
  this patient's: the documented plug-in path with a model that does not know the patient.
* ``held-out`` — the registry's held-out family (never in any pretraining corpus, never tuned
  on), when one is registered: the shipped model zero-shot on its rest.

Optimizers: ``guided``, ``gradient``, ``egreedy`` (trust on), the same with ``trust = false``,
``bo``, ``optuna_gp``, ``random``. Figures per setting and optimizer: trials to gap-normalized
regret <= 0.05 and <= 0.1, final regret, side-effect trials, hard violations, s per ask, and the
trust trajectory (median per trial) with the detection rates. Targets as in issue 31.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["run_robust_bench", "SETTINGS", "OPTIMIZERS", "summarize_setting", "robust_targets", "table"]

BO_LEAN = {"num_restarts": 2, "raw_samples": 64, "mc_samples": 32, "maxiter": 30}
OPTIMIZERS: list[dict[str, Any]] = [
    {"label": "guided", "name": "guided", "settings": {**BO_LEAN, "n_starts": 4, "steps": 40}},
    {"label": "gradient", "name": "gradient", "settings": {"n_starts": 4, "steps": 40}},
    {"label": "egreedy", "name": "egreedy", "settings": {"n_pool": 256}},
    {"label": "guided_notrust", "name": "guided", "settings": {**BO_LEAN, "n_starts": 4, "steps": 40, "trust": False}},
    {"label": "gradient_notrust", "name": "gradient", "settings": {"n_starts": 4, "steps": 40, "trust": False}},
    {"label": "egreedy_notrust", "name": "egreedy", "settings": {"n_pool": 256, "trust": False}},
    {"label": "bo", "name": "bo", "settings": {**BO_LEAN, "constraint_aware": True}},
    {"label": "optuna_gp", "name": "optuna-gp", "settings": {"n_startup_trials": 8, "constraints": True}},
    {"label": "random", "name": "random", "settings": {}},
]
SURROGATE = ("guided", "gradient", "egreedy")
HOME = ("home-latent", "home-bandpower")
#: A run's model is "wrong" when its first pick (trial 1, the model's best stimulus) has at least this
#: gap-normalized regret by the oracle: its optimum is not the patient's. (A Spearman over the first
#: trials does not say it: a right model's trials cluster near the optimum and rank by noise.)
WRONG_PICK = 0.5


def _held_out() -> list[str]:
    from simulators.registry import held_out_ids, spec

    return [i for i in held_out_ids() if spec(i).kwargs.get("regime", "pathological") != "healthy"
            and "healthy" not in i]


def SETTINGS(n_home: int, n_mis: int) -> dict[str, dict[str, Any]]:  # noqa: N802 - a table, built on demand
    """The benchmark configs (as dicts for :func:`loops.benchmark.config.config_from_dict`) per setting."""
    import simulators

    mis_seeds = simulators.cohort("eval", n_mis, offset=200)
    out: dict[str, dict[str, Any]] = {
        "home-latent": {"cohort": {"families": ["bg-beta-v0", "cortex-jr-epileptic-v0"], "n_patients": n_home},
                        "objective": {"kind": "latent"}},
        "home-bandpower": {"cohort": {"families": ["bg-beta-v0"], "n_patients": n_home},
                           "objective": {"kind": "bandpower", "band_hz": [13.0, 30.0]}},
        "foreign-model": {"cohort": {"n_patients": 0, "patients": [
            {"class": "loops.bench.robust_patients:ForeignModelPatient", "seeds": mis_seeds}]},
            "objective": {"kind": "bandpower", "band_hz": [13.0, 30.0]}},
        "user-patient": {"cohort": {"n_patients": 0, "patients": [
            {"class": "examples.user_patient:QuadraticPatientWithModel", "seeds": list(range(n_mis))}]},
            "objective": {"kind": "bandpower", "band_hz": [13.0, 30.0]}},
    }
    for fam in _held_out():
        p = simulators.make(fam, seed=mis_seeds[0])
        band = list(getattr(p, "biomarker_band", (13.0, 30.0)))
        out["held-out"] = {"cohort": {"families": [fam], "n_patients": n_mis},
                           "objective": {"kind": "bandpower", "band_hz": band}}
        break
    return out


def _config(name: str, setting: dict[str, Any], *, budget: int, seeds: int, workers: int,
            optimizers: list[dict[str, Any]]) -> Any:
    from loops.benchmark.config import config_from_dict

    d = {"benchmark": {"name": f"robust-{name}", "budget": budget, "seeds": seeds, "seeding": "cell"},
         "cohort": copy.deepcopy(setting["cohort"]), "objective": dict(setting["objective"]),
         "oracle": {"repeats": 8, "trial_costs": True, "grid": {}},
         "executor": {"kind": "local", "workers": workers, "cell_timeout_s": 3600.0, "ask_timeout_s": 300.0},
         "metrics": {"thresholds": [0.2, 0.1, 0.05], "primary_threshold": 0.05, "bootstrap": 500},
         "optimizers": optimizers}
    return config_from_dict(d)


def _trust_curve(results: list[dict[str, Any]], budget: int) -> list[float | None]:
    """Median trust after each trial (1..budget) over runs."""
    out = []
    for t in range(budget):
        v = [r["rows"][t].get("trust") for r in results if len(r["rows"]) > t]
        v = [x for x in v if x is not None]
        out.append(float(np.median(v)) if v else None)
    return out


def _detect(results: list[dict[str, Any]], within: int) -> dict[str, Any]:
    """Runs whose trust fell below half its starting value within ``within`` trials, and those that stayed above."""
    fell = kept = n = 0
    for r in results:
        tr = [row.get("trust") for row in r["rows"][:within] if row.get("trust") is not None]
        if not tr:
            continue
        start = 0.5  # the prior (trust before any trial)
        n += 1
        if min(tr) < start / 2:
            fell += 1
        if all(v >= start / 2 for v in tr):
            kept += 1
    return {"runs": n, "fell_below_half": fell, "stayed_above_half": kept,
            "fraction_fell": fell / n if n else None, "fraction_stayed": kept / n if n else None}


def summarize_setting(results: list[dict[str, Any]], budget: int) -> dict[str, Any]:
    """Per-optimizer figures of one setting's results (cell result dicts of the harness)."""
    from loops.benchmark.metrics import optimizer_summary, run_records

    runs = run_records(results, [0.2, 0.1, 0.05])
    summ = optimizer_summary(runs, [0.2, 0.1, 0.05], 0.05, n_boot=500)
    out: dict[str, Any] = {}
    for label, s in summ.items():
        res = [r for r in results if r["cell"]["optimizer"]["label"] == label]
        fig = {"runs": s["runs"], "status": s["status"],
               "trials_to_0.05_median": s["by_threshold"]["0.05"]["median"],
               "trials_to_0.1_median": s["by_threshold"]["0.1"]["median"],
               "reached_0.05": s["by_threshold"]["0.05"]["reached"], "reached_0.1": s["by_threshold"]["0.1"]["reached"],
               "final_regret_median": s["final_regret_median"], "final_regret_iqr": s["final_regret_iqr"],
               "side_effect_trials_total": s["side_effect_trials_total"], "hard_violations": s["hard_violations"],
               "s_per_ask_median": s["s_per_ask_median"]}
        if any(row.get("trust") is not None for r in res for row in r["rows"]):
            fig["trust_median_by_trial"] = _trust_curve(res, budget)
            fig["detection_within_6"] = _detect(res, 6)
            firsts = [r["manifest"].get("surrogate", {}).get("first_trials", {}) for r in res]
            rho = [f.get("spearman_oracle") for f in firsts if f.get("spearman_oracle") is not None]
            fig["model_rank_first10_median"] = float(np.median(rho)) if rho else None
            # the same detection figure on the runs where the model is wrong by the oracle: its own first pick
            # (trial 1 of every surrogate method) has gap-normalized regret >= WRONG_PICK
            wrong = [r for r in res if r["rows"] and r["rows"][0].get("regret") is not None
                     and r["rows"][0]["regret"] >= WRONG_PICK]
            fig["detection_within_6_model_wrong"] = _detect(wrong, 6)
        out[label] = fig
    return out


def _get(summ: dict[str, Any], setting: str, opt: str, key: str) -> Any:
    return summ.get(setting, {}).get(opt, {}).get(key)


def robust_targets(summ: dict[str, Any], *, ask_baseline: dict[str, float] | None = None) -> dict[str, Any]:
    """The issue's targets from the per-setting summaries."""
    t: dict[str, Any] = {}
    mis = [s for s in summ if s not in HOME]

    def check(measured: Any, target: str, met: bool | None) -> dict[str, Any]:
        return {"measured": measured, "target": target, "met": met}

    # where the model is wrong
    fin, ttt = {}, {}
    for s in mis:
        bo_f, bo_t = _get(summ, s, "bo", "final_regret_median"), _get(summ, s, "bo", "trials_to_0.1_median")
        for o in SURROGATE:
            f, tt = _get(summ, s, o, "final_regret_median"), _get(summ, s, o, "trials_to_0.1_median")
            if None in (f, bo_f, tt, bo_t):
                continue
            fin[f"{s}/{o}"] = {"final": f, "bo": bo_f, "met": f <= bo_f + 0.02}
            ttt[f"{s}/{o}"] = {"trials_to_0.1": tt, "bo": bo_t, "met": tt <= 1.25 * bo_t}
    t["wrong_model_final_regret_le_bo_plus_0.02"] = check(fin, "every surrogate method, every misspecified setting: "
                                                          "median final regret <= bo's + 0.02",
                                                          all(v["met"] for v in fin.values()) if fin else None)
    t["wrong_model_trials_to_0.1_le_1.25x_bo"] = check(ttt, "median trials to regret <= 0.1 <= 1.25 x bo's",
                                                       all(v["met"] for v in ttt.values()) if ttt else None)
    # where the model is right
    g, b = _get(summ, "home-bandpower", "guided", "trials_to_0.05_median"), _get(summ, "home-bandpower", "bo",
                                                                                "trials_to_0.05_median")
    t["right_model_bandpower_guided_2x_fewer_than_bo"] = check(
        {"guided": g, "bo": b, "ratio": None if not g or b is None else b / g}, "bo / guided >= 2 (trials to 0.05)",
        None if g is None or b is None else b / g >= 2)
    gl = _get(summ, "home-latent", "guided", "trials_to_0.05_median")
    t["right_model_latent_guided_le_6.5"] = check(gl, "guided median trials to 0.05 <= 6.5 (pre-trust figure)",
                                                  None if gl is None else gl <= 6.5)
    # detection
    det_mis = {f"{s}/{o}": _get(summ, s, o, "detection_within_6") for s in mis for o in SURROGATE}
    det_mis = {k: v for k, v in det_mis.items() if v}
    fell = [v["fell_below_half"] for v in det_mis.values()]
    n_mis = [v["runs"] for v in det_mis.values()]
    frac = sum(fell) / sum(n_mis) if sum(n_mis) else None
    wrong = [_get(summ, s, o, "detection_within_6_model_wrong") for s in mis for o in SURROGATE]
    wrong = [v for v in wrong if v and v["runs"]]
    n_wrong = sum(v["runs"] for v in wrong)
    frac_wrong = sum(v["fell_below_half"] for v in wrong) / n_wrong if n_wrong else None
    t["detection_misspecified_fell_within_6_ge_0.8"] = check(
        {"fraction": frac, "by_setting": det_mis,
         "fraction_where_model_wrong": frac_wrong, "runs_where_model_wrong": n_wrong}, ">= 0.8 of misspecified runs: trust < half its start within 6 trials",
        None if frac is None else frac >= 0.8)
    det_home = {f"{s}/{o}": _get(summ, s, o, "detection_within_6") for s in HOME for o in SURROGATE}
    det_home = {k: v for k, v in det_home.items() if v}
    kept = sum(v["stayed_above_half"] for v in det_home.values())
    n_home = sum(v["runs"] for v in det_home.values())
    fk = kept / n_home if n_home else None
    t["detection_home_stayed_above_half_ge_0.8"] = check(
        {"fraction": fk, "by_setting": det_home}, ">= 0.8 of home-family runs: trust stays above half its start "
        "over the first 6 trials", None if fk is None else fk >= 0.8)
    viol = {f"{s}/{o}": v.get("hard_violations") for s, per in summ.items() for o, v in per.items()}
    t["zero_hard_violations"] = check(viol, "0 for every optimizer and setting",
                                      all(v == 0 for v in viol.values() if v is not None))
    # ask cost: trust on vs off, same settings, home families
    ratios = {}
    for s in HOME:
        for o in SURROGATE:
            on, off = _get(summ, s, o, "s_per_ask_median"), _get(summ, s, f"{o}_notrust", "s_per_ask_median")
            if on and off:
                ratios[f"{s}/{o}"] = on / off
    t["ask_cost_le_1.5x"] = check(ratios, "median s per ask with trust / without <= 1.5 (home settings)",
                                  all(r <= 1.5 for r in ratios.values()) if ratios else None)
    return t


def run_robust_bench(*, runs_dir: str | Path = "runs/robust", n_home: int = 10, n_mis: int = 6, seeds: int = 3,
                     budget: int = 40, workers: int = 2, settings: list[str] | None = None,
                     optimizers: list[str] | None = None, progress: bool = True,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the settings (resuming finished cells in ``runs_dir``) and return the JSON-ready figures."""
    from loops.benchmark.executors import Store, run_benchmark
    from loops.benchmark.cells import expand

    table = SETTINGS(n_home, n_mis)
    names = list(table) if settings is None else settings
    bad = [n for n in names if n not in table]
    if bad:
        from bfm_stim.exceptions import ValidationError

        raise ValidationError("settings", bad, f"names among {list(table)}")
    opts = [o for o in OPTIMIZERS if optimizers is None or o["label"] in optimizers]
    t0 = time.perf_counter()
    summ: dict[str, Any] = {}
    configs: dict[str, Any] = {}
    for name in names:
        cfg = _config(name, table[name], budget=budget, seeds=seeds, workers=workers, optimizers=opts)
        out = Path(runs_dir) / name
        log(f"robust: {name}: {len(expand(cfg))} runs -> {out}")
        run_benchmark(cfg, out, progress=progress, report=False)
        ids = [c.id for c in expand(cfg)]
        results = Store(out).results(ids)
        summ[name] = summarize_setting(results, budget)
        configs[name] = {"cohort": table[name]["cohort"], "objective": table[name]["objective"]}
    return {"settings": configs, "summary": summ, "targets": robust_targets(summ),
            "scale": {"n_home": n_home, "n_mis": n_mis, "seeds": seeds, "budget": budget,
                      "optimizers": [o["label"] for o in opts]},
            "wall_s": time.perf_counter() - t0,
            "note": "regret is gap-normalized on oracle costs; trust is P(model ranks | trials) with prior 0.5 "
                    "(bfm_stim.optim.trust); 'notrust' = the same optimizer with trust = false (the pre-trust "
                    "behaviour). Detection counts trust < 0.25 (half the prior) within the first 6 trials."}


def _fmt(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else (f"{x:.3g}" if isinstance(x, float) else str(x))


def table(result: dict[str, Any]) -> str:
    """A plain-text table of the summary (for the terminal)."""
    lines = []
    for s, per in result["summary"].items():
        lines.append(f"[{s}]  optimizer: trials->0.05  trials->0.1  final regret  side-effect trials  s/ask")
        for o, v in per.items():
            lines.append(f"  {o:18s} {_fmt(v['trials_to_0.05_median']):>8s} {_fmt(v['trials_to_0.1_median']):>10s} "
                         f"{_fmt(v['final_regret_median']):>12s} {_fmt(v['side_effect_trials_total']):>10s} "
                         f"{_fmt(v['s_per_ask_median']):>10s}")
    return "\n".join(lines) + "\n" + "\n".join(f"{k}: met={v['met']}" for k, v in result["targets"].items())



def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several runs of this benchmark (settings run separately, e.g. with different
    optimizer subsets): summaries side by side, targets recomputed, scales and wall times kept per part."""
    summ: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    for p in parts:
        for k, v in p["summary"].items():
            summ.setdefault(k, {}).update(v)
        settings.update(p.get("settings", {}))
    return {"settings": settings, "summary": summ, "targets": robust_targets(summ),
            "scale": parts[0].get("scale", {}) if len(parts) == 1 else {"parts": [p.get("scale", {}) for p in parts]},
            "wall_s": sum(p.get("wall_s", 0.0) for p in parts), "note": parts[0].get("note", "")}


def main(argv: list[str] | None = None) -> int:
    """``python -m loops.bench.robust --merge A.json B.json --json OUT``: merge separately run parts."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m loops.bench.robust")
    ap.add_argument("--merge", nargs="+", required=True, help="result JSON files of `bfm-stim bench robust`")
    ap.add_argument("--json", required=True, help="the merged result")
    ap.add_argument("--note", default="", help="appended to the result's note")
    a = ap.parse_args(argv)
    out = merge([json.loads(Path(p).read_text()) for p in a.merge])
    if a.note:
        out["note"] = (out.get("note", "") + " " + a.note).strip()
    Path(a.json).write_text(json.dumps(out, indent=1, default=float) + "\n")
    print(table(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
