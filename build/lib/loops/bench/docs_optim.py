"""Sections of the results page on optimizers and the closed loop: the optimizer benchmarks (latent and
band-power targets), the surrogate's ranking of stimuli, the end-to-end session, the adaptive
controller, LSL latency and simulator speed. Each ``*_body`` renders one section from ``bench/*.json``."""

from __future__ import annotations

import re
from typing import Any, Mapping

from loops.bench.docs_format import (
    DASH, Bench, Section, TargetRow, compact, iqr, median_of, minutes, ms, num, op_pct, pct, signed, table,
    target_rows, targets_table, times, trials,
)

__all__ = ["SECTIONS", "SURROGATE_OPTIMIZERS", "HARNESS_LABELS", "RANKING_LABELS", "SESSION_LABELS", "fastest", "versus",
           "latency_rows", "simulator_rows"]

SURROGATE_OPTIMIZERS = ("gradient", "guided", "egreedy")
EXTERNAL = ("optuna_tpe", "optuna_gp", "nevergrad")


def versus(d: Mapping[str, Any]) -> str:
    """``{"guided": 6.5, "bo": 16.5, "ratio": 2.54}`` → ``guided 6.5 vs bo 16.5 (ratio 2.5)``."""
    parts = [f"{k} {trials(v) if isinstance(v, (int, float)) else compact(v)}" for k, v in d.items() if k != "ratio"]
    out = " vs ".join(parts)
    return out + (f" (ratio {num(d['ratio'], 1)})" if "ratio" in d else "")


def fastest(summary: Mapping[str, Any], key: str = "trials_to_target_median") -> list[str]:
    """Optimizers by median trials to target, ties broken by fewer side-effect trials."""
    return sorted(summary, key=lambda o: (summary[o][key], summary[o].get("side_effect_trials_total", 0)))


def ordinal(x: Any) -> str:
    """A fraction as an ordinal percentile: ``0.0625`` → ``6th``."""
    if x is None:
        return DASH
    n = int(round(100 * float(x)))
    suf = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suf}"


def per_ask(v: Any) -> str:
    """Seconds per ask, in ms below a tenth of a second."""
    if v is None:
        return DASH
    return f"{1000 * v:.1f} ms" if v < 0.1 else f"{v:.2f} s"


def _trials_iqr(v: Mapping[str, Any]) -> str:
    """``median [q25, q75]`` of a run summary's trials to target."""
    q = iqr({"iqr": v["trials_to_target_iqr"]}, 1, lambda x, _: trials(x))
    return f"{trials(v['trials_to_target_median'])} {q}"


def _all_zero(m: Any) -> str:
    if isinstance(m, Mapping) and all(v == 0 for v in m.values()):
        return f"0 for all {len(m)}"
    return compact(m)


# ------------------------------------------------------------------------------------ latent target
def _harness_rows(s: Mapping[str, Any]) -> list[list[str]]:
    return [[f"`{o}`", _trials_iqr(v),
             f"{v['reached']} of {v['runs']}", num(v["final_regret_median"], 3), num(v["side_effect_trials_total"], 0),
             num(v["hard_violations"], 0), per_ask(v["s_per_ask_median"])] for o, v in ((o, s[o]) for o in fastest(s))]


HARNESS_LABELS = {
    "bo_fewer_side_effect_trials_than_optuna_gp": ("side-effect trials (all runs): constraint-aware `bo` vs Optuna GP",
                                                   versus, None),
    "bo_no_more_trials_than_optuna_gp": ("median trials to target: `bo` vs Optuna GP", versus, None),
    "guided_3x_fewer_trials_than_bo": ("median trials to target: `guided` vs `bo`", versus, None),
    "guided_6x_fewer_trials_than_random": ("median trials to target: `guided` vs `random`", versus, None),
    "guided_fewer_trials_than_every_external": ("median trials: `guided` vs every external optimizer", versus, None),
    "guided_le_5_trials": ("median trials to target, `guided`", trials, None),
    "quick_config_under_5_min": ("`bfm-stim benchmark --quick` end to end, report included", lambda v: f"{num(v, 0)} s", None),
    "ray_equals_local": ("Ray executor gives the local executor's rows", None, None),
    "ray_overhead_le_5pct_of_run": ("Ray overhead per task, share of a run", lambda v: pct(v, 1), op_pct),
    "bo_median_trials": ("median trials to target, `bo`", trials, None),
    "guided_median_trials": ("median trials to target, `guided`", trials, None),
    "guided_vs_bo": ("`bo` median / `guided` median", lambda v: f"{num(v, 1)}×", None),
    "guided_vs_random": ("`random` median / `guided` median", lambda v: f"{num(v, 1)}×", None),
    "constraint_aware_side_effects": ("side-effect trials: constraint-aware `bo` vs `bo_plain`", versus, None),
    "guided_2x_fewer_trials_than_bo": ("median trials to target: `guided` vs `bo`", versus, None),
    "guided_fewer_side_effect_trials_than_bo": ("side-effect trials (all runs): `guided` vs `bo`", versus, None),
    "zero_hard_violations": ("hard safety violations", _all_zero, None),
    "hard_violations": ("hard safety violations (all runs)", None, None),
}


def _names(opts: list[str], s: Mapping[str, Any], key: str = "trials_to_target_median") -> str:
    return ", ".join(f"`{o}` ({trials(s[o][key])})" for o in opts)


def harness_body(b: Bench) -> str:
    d = b["benchmark"]
    h = d["benchmark"]
    s, budget, thr = h["summary"], h["budget"], h["threshold"]
    order = fastest(s)
    se = sorted(s, key=lambda o: s[o]["side_effect_trials_total"])
    out = [f"{h['patients']} evaluation-cohort patients ({', '.join(f'`{f}`' for f in h['families'])}) × "
           f"{h['seeds']} seeds × {len(s)} optimizers, {budget} trials each ({h['runs']} runs). Objective: "
           f"{h['objective']}. Score: the gap-normalised regret of each optimizer's recommendation on oracle "
           f"(noise-free) costs, {h['regret'].split(' on ')[0]}; a run that never reaches regret ≤ {thr} counts as "
           f"{budget + 1} trials; a final regret below zero means the recommendation beat the oracle's grid-search "
           "optimum. Side-effect trials are totals over all runs.",
           "",
           table(["optimizer", f"trials to regret ≤ {thr}, median [IQR]", "reached", "final regret", "side-effect trials",
                  "hard violations", "time per ask"], _harness_rows(s)),
           "",
           targets_table(target_rows(d["targets"], HARNESS_LABELS, bench="benchmark")),
           "",
           "**What it shows.** "
           f"Fewest trials to target: {_names(order[:3], s)}; the black-box baselines needed "
           f"{_names([o for o in ('random', 'sobol', 'cmaes') if o in s], s)}"
           + (f", the external libraries {_names([o for o in EXTERNAL if o in s], s)}" if any(o in s for o in EXTERNAL) else "")
           + f". Fewest side-effect trials: `{se[0]}` ({num(s[se[0]]['side_effect_trials_total'], 0)} over "
           f"{s[se[0]]['runs']} runs), then `{se[1]}` ({num(s[se[1]]['side_effect_trials_total'], 0)}); the most: "
           f"`{se[-1]}` ({num(s[se[-1]]['side_effect_trials_total'], 0)}). "
           + _paired(h)]
    out += ["", _scale(d)] if "scale" in d else []
    return "\n".join(out)


def _paired(h: Mapping[str, Any]) -> str:
    tests = h.get("paired_tests") or []
    sig = [t for t in tests if t.get("p_holm") is not None and t["p_holm"] < 0.05]
    n = tests[0]["n_patients"] if tests else h["patients"]
    if not tests:
        return ""
    if not sig:
        return (f"None of the {len(tests)} pairwise differences is significant after Holm's correction (paired "
                f"Wilcoxon over {n} patients): differences of a few trials between neighbours in this table are "
                "within what this cohort resolves.")
    pairs = "; ".join(f"`{t['a']}` vs `{t['b']}` ({signed(t['median_diff'], 1)} trials, p = {num(t['p_holm'], 3)})"
                      for t in sig)
    return f"Significant after Holm's correction (paired Wilcoxon over {n} patients): {pairs}."


def _scale(d: Mapping[str, Any]) -> str:
    sc, cost = d["scale"], d.get("per_run_cost_s", {})
    r = sc["ray_2"]
    txt = (f"**Scale.** On the quick config's runs: the local executor did {num(sc['local_1']['runs_per_min'], 1)} runs/min "
           f"with 1 worker and {num(sc['local_2']['runs_per_min'], 1)} with 2, Ray (local, 2 CPUs) "
           f"{num(r['runs_per_min'], 1)}; Ray's overhead per task was {ms(1000 * r['overhead_per_task_s_median'], 1)} "
           f"(median), {pct(r['overhead_fraction_of_run'], 1)} of a run, and a worker peaked at "
           f"{num(r['worker_max_rss_mb'], 0)} MB.")
    if cost:
        txt += (f" A default-config run costs {num(cost['mean_over_8_builtins'], 0)} core-seconds on average over the "
                f"built-in optimizers (`per_run_cost_s`), so a 1,000-patient × 8-optimizer × 5-seed study is about "
                f"{num(cost['study_1000x8x5_core_hours'], 0)} core-hours: plan a Ray cluster for it "
                "(see `loops/benchmark/README.md`).")
    return txt


# ------------------------------------------------------------------------------------ band-power target
def bandpower_body(b: Bench) -> str:
    d = b["benchmark_bandpower"]
    s, thr, budget = d["summary"], d["primary_threshold"], d["budget"]
    ths = [str(t) for t in d["thresholds"]]
    rows = []
    for o in fastest(s):
        v = s[o]
        bt = v["by_threshold"]
        rows.append([f"`{o}`"] + [f"{trials(bt[t]['median'])} ({bt[t]['reached']}/{v['runs']})" for t in ths]
                    + [num(bt[str(thr)]["ert"], 1), num(v["final_regret_median"], 3),
                       num(v["side_effect_trials_total"], 0), num(v["hard_violations"], 0), per_ask(v["s_per_ask_median"])])
    g, bo, rnd = (s.get(k) for k in ("guided", "bo", "random"))
    out = [f"{d['patients']} `{'`, `'.join(d['families'])}` evaluation patients × {d['seeds']} seeds × {budget} trials; "
           f"objective: {d['objective']} on the DBS lead, measured on each trial's response. `guided` scores "
           "candidates with the foundation model's biomarker heads (the predicted band power of the response "
           "window), `bo` learns from trials alone.",
           "",
           table(["optimizer"] + [f"trials to ≤ {t} (reached)" for t in ths]
                 + [f"expected trials to {thr} (ERT)", "final regret", "side-effect trials", "hard violations",
                    "time per ask"], rows),
           "",
           targets_table(target_rows(d["targets"], HARNESS_LABELS, bench="benchmark_bandpower"))]
    if g and bo:
        out += ["", f"**What it shows.** With the biomarker heads, `guided` reaches regret ≤ {thr} in a median of "
                f"{trials(g['trials_to_target_median'])} trial{'s' if g['trials_to_target_median'] != 1 else ''} "
                f"(every run: {g['reached']} of {g['runs']}) against `bo`'s {trials(bo['trials_to_target_median'])}"
                + (f" and `random`'s {trials(rnd['trials_to_target_median'])} (reached in {rnd['reached']} of {rnd['runs']})"
                   if rnd else "")
                + f", with {'fewer' if g['side_effect_trials_total'] < bo['side_effect_trials_total'] else 'more'} "
                f"side-effect trials ({num(g['side_effect_trials_total'], 0)} vs {num(bo['side_effect_trials_total'], 0)})."
                + _previous_bandpower(b)]
    return "\n".join(out)


def _previous_bandpower(b: Bench) -> str:
    """What the band-power objective did before the biomarker heads (``ranking.json``'s earlier checkpoint)."""
    if not b.has("ranking"):
        return ""
    prev = b["ranking"].get("previous_checkpoint_summary", {}).get("bg-beta-v0", {})
    r, amp = prev.get("bandpower/random"), prev.get("bandpower/amplitude")
    if not r:
        return ""
    return (f" This depends on the heads: the earlier checkpoint, which took the band power of the *mean* "
            f"signal forecast, ranked the same stimuli at Spearman ρ {num(median_of(r['spearman']))} with its top "
            f"pick at the {ordinal(median_of(r['top1_percentile']))} percentile of true cost (a random pick: the "
            f"{ordinal(b['ranking'].get('random_pick_percentile'))})"
            + (f" and the amplitude sweep at ρ {num(median_of(amp['spearman']))}" if amp else "")
            + " (see [ranking](#ranking)): the mean forecast of noise-driven beta fades whatever the stimulus.")


# ------------------------------------------------------------------------------------ optimizer preset
def optimizers_body(b: Bench) -> str:
    d = b["optimizers"]
    s, thr, budget = d["summary"], d["threshold"], d["budget"]
    rows = [[f"`{o}`", _trials_iqr(v),
             f"{v['censored']} of {v['runs']}", trials(v.get("trials_to_target_gap_median")), num(v["final_regret_median"], 3),
             num(v["side_effect_trials_total"], 0), num(v["hard_violations"], 0), per_ask(v["s_per_ask_median"])]
            for o, v in ((o, s[o]) for o in fastest(s))]
    fam = d.get("summary_by_family", {})
    fam_lines = [f"- `{f}`: " + ", ".join(f"`{o}` {trials(fs[o]['trials_to_target_median'])}" for o in fastest(fs))
                 for f, fs in fam.items()]
    ask = d.get("bench_ask_40_obs", {})
    out = [f"The earlier preset of the harness: {d['n_patients']} patients of `{'`, `'.join(d['families'])}` × "
           f"{d['seeds']} seeds × {budget} trials, {len(s)} optimizers; objective {d['objective']}. Regret is normalised "
           f"by the stimulation-off cost, {d['regret_normalization'].split(';')[0]}; the strict gap-normalised version "
           f"is the `gap` column. A run that never reaches regret ≤ {thr} counts as {budget + 1}.",
           "",
           table(["optimizer", f"trials to regret ≤ {thr}, median [IQR]", "censored", "gap median", "final regret",
                  "side-effect trials", "hard violations", "time per ask"], rows),
           "",
           "Per family (median trials to target):",
           *fam_lines,
           "",
           targets_table(target_rows(d["targets"], HARNESS_LABELS, bench="optimizers"))]
    if ask:
        out += ["", f"One `bo` ask at {ask['n_obs']} observations took {num(ask['bo_s'], 2)} s against "
                f"{num(ask['bare_s'], 2)} s for a bare BoTorch loop doing the same fit and acquisition "
                f"(ratio {num(ask['ratio'], 2)}; `loops/bench/ask.py`)."]
    gr = d["targets"].get("guided_vs_random", {})
    m = re.search(r"([\d.]+)\s*x", str(gr.get("target", "")))
    if "random" in s and m and gr.get("met") is False:
        r, k = s["random"]["trials_to_target_median"], float(m.group(1))
        out += ["", f"**Why the ≥ {k:g}× over `random` target is out of reach here:** `random` itself needs only a median "
                f"of {trials(r)} trials on this objective (regret is normalised by the stimulation-off cost, so any "
                f"stimulus within {pct(thr)} of that cost above the optimum counts), and {k:g}× fewer would be "
                f"{trials(r / k)} trials, below the one trial every optimizer needs."]
    if b.has("optimizers-quick"):
        q = b["optimizers-quick"]
        out += ["", f"`bench/optimizers-quick.json` is the `--quick` smoke run ({q['n_patients']} patients × {q['seeds']} "
                f"seed × {q['budget']} trials): it shows the machinery works end to end, not how the optimizers compare.",
                "", targets_table(target_rows(q["targets"], HARNESS_LABELS, bench="optimizers-quick"))]
    return "\n".join(out)


# ------------------------------------------------------------------------------------ ranking
SLICES = ("random", "contact", "frequency", "amplitude")
RANKING_LABELS = {
    "spearman_beta_bandpower_bg_beta": ("Spearman ρ, beta band power, `bg-beta-v0`", num, None),
    "spearman_latent_bg_beta": ("Spearman ρ, latent target, `bg-beta-v0`", num, None),
    "spearman_latent_cortex": ("Spearman ρ, latent target, `cortex-jr-epileptic-v0`", num, None),
    "top1_within_best_5pct_latent": ("top pick's true-cost percentile, latent target", pct, op_pct),
    "top1_within_best_5pct_beta_bg_beta": ("top pick's true-cost percentile, beta band power, `bg-beta-v0`", pct, op_pct),
}


def ranking_body(b: Bench) -> str:
    d = b["ranking"]
    rows = []
    for fam, fs in d["summary"].items():
        for obj in d["objectives"]:
            r = fs.get(f"{obj}/random")
            if r is None:
                continue
            rows.append([f"`{fam}`", obj] + [num(median_of(fs.get(f"{obj}/{sl}", {}).get("spearman"))) for sl in SLICES]
                        + [num(median_of(r.get("oracle_ceiling"))), pct(median_of(r.get("top1_percentile"))),
                           num(median_of(r.get("top3_side_effects")), 1), num(median_of(r.get("spearman_ablation")))])
    bg, cx = d["summary"].get("bg-beta-v0", {}), d["summary"].get("cortex-jr-epileptic-v0", {})
    out = [f"Zero-shot (30 s of rest, no trial), {d['n_patients']} evaluation patients of "
           f"`{'`, `'.join(d['families'])}`: {d['n_stimuli']} random safe stimuli per patient plus sweeps of the "
           f"contacts, {d['n_sweep']} frequencies and {d['n_sweep']} amplitudes; true cost = the oracle over "
           f"{d['repeats']} simulated trials. Objectives: " + "; ".join(f"{k}: {v}" for k, v in d["objectives"].items())
           + ". Spearman ρ between predicted and true cost (1: the surrogate orders stimuli as the patient does), "
           "median over patients; the ceiling is how well two halves of the oracle's repeats agree; the last column "
           "is ρ of the ablation (latent: the rolled-out latents compared with the target directly; band power: "
           "the power of the mean signal forecast).",
           "",
           table(["family", "objective"] + [f"ρ {sl}" for sl in SLICES]
                 + ["ceiling", "top pick's true-cost percentile", "side effects in top 3", "ρ ablation"], rows),
           "",
           targets_table(target_rows(d["targets"], RANKING_LABELS, bench="ranking"))]
    lr, lc = bg.get("latent/random"), cx.get("latent/random")
    if lr and lc:
        weak = [f"{sl} (ρ {num(median_of(fs[f'latent/{sl}']['spearman']))} on `{fam}`)"
                for fam, fs in (("bg-beta-v0", bg), ("cortex-jr-epileptic-v0", cx)) for sl in SLICES[1:]
                if f"latent/{sl}" in fs and median_of(fs[f"latent/{sl}"]["spearman"]) < 0.5]
        out += ["", f"**What it shows.** On the latent target the surrogate ranks the basal-ganglia patients' stimuli "
                f"at ρ {num(median_of(lr['spearman']))} and the epileptic cortical ones' at only "
                f"{num(median_of(lc['spearman']))}, against oracle ceilings of {num(median_of(lr['oracle_ceiling']))} "
                f"and {num(median_of(lc['oracle_ceiling']))}: the shortfall is the model's, not the noise's. "
                f"Its top pick is still better than most of the sample (at the {ordinal(median_of(lr['top1_percentile']))} "
                f"and {ordinal(median_of(lc['top1_percentile']))} percentile of true cost, 0 being the best; a random "
                f"pick: the {ordinal(d['random_pick_percentile'])})."
                + (f" Along single parameters it ranks poorly or backwards: {', '.join(weak)}." if weak else "")
                + f" Compared with the target directly, the rolled-out latents rank backwards "
                f"(ρ {num(median_of(lr['spearman_ablation']))}): that is why a latent objective reads the response head. "
                f"The surrogate does not model side effects: on `bg-beta-v0` a median of "
                f"{num(median_of(lr['top3_side_effects']), 0)} of its top 3 stimuli cause one, so let a constraint-aware "
                "optimizer (`bo`, `guided`) learn them from trials."]
    return "\n".join(out)


# ------------------------------------------------------------------------------------ session
SESSION_LABELS = {
    "loop_overhead_fraction": ("loop overhead: trial time beyond stimulation, response and rest (median)",
                               lambda v: pct(v, 1), lambda t: f"≤ {pct(t)}"),
    "dead_time_p95_ms": ("dead time before a command (ready → sent), p95", ms, lambda t: f"≤ {ms(t, 0)}"),
    "decision_latency_p99_ms": ("continuous mode: window's last sample → sample the device applied it at, p99", ms,
                                lambda t: f"≤ {ms(t, 0)}"),
    "adaptive_suppression_vs_open_loop": ("adaptive vs open loop: share of its beta suppression (median)", pct,
                                          lambda t: f"≥ {pct(t)}"),
    "adaptive_charge_vs_open_loop": ("adaptive vs open loop: share of its charge (median)", pct, lambda t: f"≤ {pct(t)}"),
    "demo_s": ("`bfm-stim demo` wall time", lambda v: f"{num(v, 0)} s", lambda t: f"≤ {num(t, 0)} s"),
}


def session_body(b: Bench) -> str:
    d = b["session"]
    c, tw = d["config"], d["trial_wall_s"]
    raw = d.get("raw_pylsl_round_trip_ms", {})
    raw_p99 = [raw[k]["p99_ms"] for k in ("before", "after") if k in raw]
    out = [f"{c['n_patients']} `{c['family']}` evaluation patients served in a subprocess at {num(c['speed'], 0)}× real "
           f"time, each a session as `bfm-stim demo` runs it: {num(c['rest_s'], 0)} s of rest, `{c['adaptation']}` "
           f"adaptation, the `{c['target']}` latent target, {c['budget']} `{c['optimizer']}` trials of a "
           f"{num(tw['stim_s'], 0)} s train and {num(c['trial_rest_s'], 0)} s rest, then {num(c['segment_s'], 0)} s of "
           f"open-loop and {num(c['segment_s'], 0)} s of adaptive stimulation on the best contact ({minutes(d['wall_s'])} "
           "in all).",
           "",
           targets_table(target_rows(d["targets"], SESSION_LABELS, bench="session")),
           "",
           f"Also measured: dead time median {ms(d['dead_time_ms']['median'], 1)}; decision latency p50 "
           f"{ms(d['decision_latency_ms']['p50'], 1)}"
           + (f" (raw pylsl round trip in the same run: p99 {' / '.join(ms(x) for x in raw_p99)})" if raw_p99 else "")
           + f"; the recommendation after {trials(d['trials_median'])} trials has a gap-normalised oracle regret of "
           f"{num(d['regret_gap_median'], 3)} (median); {d['adaptive_target_met_patients']} of {c['n_patients']} patients "
           "meet both adaptive-stimulation targets ([why](#adaptive)).",
           "",
           f"**Leave at least as much rest between trials as a proposal takes.** The loop asks for the next stimulus "
           f"while the current trial runs, so dead time stays at milliseconds only while `ask` fits inside a trial "
           f"(here {num(tw['stim_s'], 0)} s of stimulation + {num(tw['rest_s'], 0)} s of rest)"
           + (f"; a `guided` ask took a median of "
              f"{num(b['benchmark']['benchmark']['summary']['guided']['s_per_ask_median'], 2)} s "
              "in the [optimizer benchmark](#optimizers-latent)" if b.has("benchmark") else "") + "."]
    return "\n".join(out)


def _session_target(b: Bench, key: str) -> float | None:
    """A numeric target of ``bench/session.json`` (the adaptive-stimulation targets live there)."""
    if not b.has("session"):
        return None
    t = b["session"].get("targets", {}).get(key, {}).get("target")
    return float(t) if isinstance(t, (int, float)) else None


def adaptive_body(b: Bench) -> str:
    d = b["adaptive_eval"]
    ev, dv = d["evaluation"], d["evaluation_default"]
    m, md = ev["median"], dv["median"]
    ceil = d.get("ceiling", {}).get("median", {})
    tun = d.get("tuning", {})
    sup_t, chg_t = _session_target(b, "adaptive_suppression_vs_open_loop"), _session_target(b, "adaptive_charge_vs_open_loop")
    goal = (f" The target: at least {pct(sup_t)} of open loop's beta suppression with at most {pct(chg_t)} of its charge."
            if sup_t is not None and chg_t is not None else "")
    out = [f"The continuous-mode controller (`loops/session/controller.py`) on {ev['n_patients']} `{ev['patient_id']}` "
           f"evaluation patients, {num(ev['duration_s'], 0)} s each, beta power of the DBS lead as its biomarker; its "
           f"gains tuned with CMA-ES on {len(tun.get('train_seeds', []))} training patients "
           f"({tun.get('evaluations', DASH)} evaluations) and shipped as the bundled `continuous` config "
           f"(`bfm-stim configs continuous`).{goal}",
           "",
           table(["controller", "share of open loop's suppression", "share of its charge", "time on",
                  "patients meeting the target"],
                 [["tuned (shipped)", pct(m["adaptive_suppression_ratio"]), pct(m["adaptive_charge_fraction"]),
                   pct(m["adaptive_time_on_fraction"]), f"{ev['target_met']} of {ev['n_patients']}"],
                  ["default gains", pct(md["adaptive_suppression_ratio"]), pct(md["adaptive_charge_fraction"]),
                   pct(md["adaptive_time_on_fraction"]), f"{dv['target_met']} of {dv['n_patients']}"]]
                 + ([["constant amplitude at the tuned one's charge", pct(m["matched_charge_suppression_ratio"]),
                      pct(m["matched_charge_charge_fraction"]), pct(m["matched_charge_time_on_fraction"]), DASH]]
                    if "matched_charge_suppression_ratio" in m else []))]
    orc_key = min((k for k in ceil if k.startswith("oracle:q") and k.endswith("_la0")), default=None,
                  key=lambda k: abs(float(k.split("q")[1].split("_")[0]) - 0.5))
    orc, dyn = ceil.get(orc_key) if orc_key else None, ceil.get("dynamics")
    charge_t = _session_target(b, "adaptive_charge_vs_open_loop")
    amp = {k.split(":")[1]: v for k, v in ceil.items() if k.startswith("amplitude:")}
    half = [(a, v) for a, v in amp.items() if charge_t is not None and v["charge_fraction"] <= charge_t + 1e-9]
    best_half = max(half, key=lambda av: av[1]["suppression_ratio"]) if half else None
    on = m["adaptive_time_on_fraction"]
    txt = ("**What it shows.** The tuned controller "
           + ("titrates the amplitude rather than switching stimulation off" if on > 0.9 else "switches stimulation on and off")
           + f" (it is on {pct(on)} of the time)")
    if "matched_charge_suppression_ratio" in m:
        better = m["matched_charge_suppression_ratio"] >= m["adaptive_suppression_ratio"]
        txt += (f", and constant stimulation at the same charge suppresses beta "
                f"{'as well or better' if better else 'less'} "
                f"({pct(m['matched_charge_suppression_ratio'])} vs {pct(m['adaptive_suppression_ratio'])})")
    txt += "."
    if orc:
        q = float(orc_key.split("q")[1].split("_")[0])
        txt += (f" Even a controller that knows the unstimulated future (stimulating whenever the coming beta power is "
                f"above its {'median' if q == 0.5 else f'{q:g} quantile'}) gets {pct(orc['suppression_ratio'])} of "
                "open loop's suppression at "
                f"{pct(orc['charge_fraction'])} of its charge")
        if dyn:
            txt += (f": in these simulated patients beta bursts last {num(dyn['burst_median_ms'], 0)} ms (median) and beta "
                    f"returns to half within {num(dyn['offset_to_half_return_ms'], 0)} ms of a train's end, far shorter "
                    "than the bursts of hundreds of milliseconds that published adaptive-DBS savings rely on")
        txt += "."
    if best_half:
        a, v = best_half
        txt += (f" A constant {a.replace('mA', ' mA')} at {pct(v['charge_fraction'])} of the charge keeps "
                f"{pct(v['suppression_ratio'])} of "
                "the suppression. **Titrate the amplitude of continuous stimulation first**; expect closed-loop "
                "control to save charge only where the biomarker comes in long bursts.")
    return "\n".join(out + ["", txt])


# ------------------------------------------------------------------------------------ latency, simulator
def latency_rows(b: Bench) -> list[TargetRow]:
    """The latency targets (its JSON stores only whether they are met; the thresholds are in the key names)."""
    d = b["latency"]
    raw, br, t = d["raw_pylsl"], d["bridge"], d["targets"]
    return [TargetRow("raw pylsl round trip p50 / p99 (the floor)", f"{ms(raw['p50_ms'])} / {ms(raw['p99_ms'])}", DASH),
            TargetRow("bridge round trip p99: sample → ring inlet → signed command → verified at the device",
                      ms(br["p99_ms"]), "≤ 5 ms", t.get("bridge_p99_le_5ms")),
            TargetRow("bridge p99 / raw p99", f"{num(t.get('ratio_p99'), 1)}×", "≤ 10×", t.get("bridge_p99_le_10x_raw_p99"))]


def latency_body(b: Bench) -> str:
    d = b["latency"]
    br = d["bridge"]
    rows = latency_rows(b)
    return "\n".join([
        f"{d['n_channels']} channels at {num(d['fs_hz'], 0)} Hz, {d['n']} round trips, both ends real processes on one "
        f"machine (LSL scope `{d['lsl_scope']}`, {d['machine']['cpus']} CPUs, pylsl {d['machine']['pylsl']}). Bridge "
        f"median {ms(br['p50_ms'])}, max {ms(br['max_ms'])}; {br['accepted']} commands accepted, {br['rejected']} rejected.",
        "", targets_table(rows),
        "", "The bridge adds well under a millisecond to LSL itself: a closed loop's latency budget goes to "
            "filtering windows and to the optimizer, not to the transport."])


def simulator_rows(b: Bench) -> list[TargetRow]:
    """The simulator's targets (its JSON has no targets block: the thresholds of the benchmark's specification)."""
    d = b["simulator"]
    return [TargetRow(f"batched: {d['patients']} `{d['patient_id']}` patients × {d['channels']} channels, median of "
                      f"{d['repeats']}", times(d["realtime_factor"]), "≥ 1000×", d["realtime_factor"] >= 1000),
            TargetRow(f"one patient in {d['block_ms']} ms blocks (a streaming server)",
                      times(d["single_patient_realtime_factor"]),
                      "≥ 20×", d["single_patient_realtime_factor"] >= 20)]


def simulator_body(b: Bench) -> str:
    d = b["simulator"]
    rows = simulator_rows(b)
    return "\n".join([
        f"Real-time factors of the numba kernels on {d['cpu_count']} CPUs (1-min load average {num(d['loadavg_1min'], 1)} "
        f"during the run): simulated seconds per wall second. The batched runs ranged "
        f"{times(min(d['realtime_factor_runs']))}–{times(max(d['realtime_factor_runs']))}; the slowest streaming block "
        f"took {ms(d['single_block_p99_ms'], 3)} (p99).",
        "", targets_table(rows),
        "", "A served patient runs hundreds of times faster than real time, so simulated sessions and benchmarks are "
            "bounded by the optimizer and the foundation model, not by the patients."])


SECTIONS = (
    Section("optimizers-latent", "Optimizers on a latent target", ("benchmark",),
            ("bfm-stim benchmark --config benchmark --out runs/benchmark",
             "python -m loops.benchmark.figures --full runs/benchmark --json bench/benchmark.json"), harness_body),
    Section("optimizers-bandpower", "Optimizers on a band-power target", ("benchmark_bandpower",),
            ("bfm-stim benchmark --config benchmark-bandpower --out runs/benchmark-bandpower",
             "python -m loops.benchmark.figures --bandpower runs/benchmark-bandpower"), bandpower_body),
    Section("optimizers-preset", "Optimizer benchmark, first preset", ("optimizers",),
            ("bfm-stim bench optimizers --json bench/optimizers.json",
             "bfm-stim bench optimizers --quick --json bench/optimizers-quick.json"), optimizers_body),
    Section("ranking", "Does the surrogate rank stimuli like the patient?", ("ranking",),
            ("bfm-stim bench ranking --json bench/ranking.json",), ranking_body),
    Section("session", "The closed loop end to end", ("session",),
            ("bfm-stim bench session --json bench/session.json",), session_body),
    Section("adaptive", "Adaptive (continuous) stimulation", ("adaptive_eval",),
            ("python -m loops.session.adaptive_eval --n-eval 8 --n-train 6 --generations 10 --popsize 8 "
             "--json bench/adaptive_eval.json",), adaptive_body),
    Section("latency", "LSL bridge latency", ("latency",), ("bfm-stim bench latency --json bench/latency.json",), latency_body),
    Section("simulator", "Simulator speed", ("simulator",), ("bfm-stim bench simulator --json bench/simulator.json",),
            simulator_body),
)
