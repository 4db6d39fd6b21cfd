"""Results-page sections for the robustness benchmark (``bench/robust.json``) and the simulators'
physiological fidelity (``bench/fidelity.json``); see :mod:`loops.bench.docs`."""

from __future__ import annotations

from typing import Any

from loops.bench.docs_format import DASH, Bench, Section, num, table, target_rows, targets_table

__all__ = ["SECTIONS", "robust_body", "fidelity_body"]

def _fraction(m: Any) -> str:
    n = sum(v.get("runs", 0) for v in (m.get("by_setting") or {}).values())
    out = f"{num(m.get('fraction'))} of {n} runs"
    if m.get("runs_where_model_wrong"):
        out += (f"; {num(m.get('fraction_where_model_wrong'))} of the {m['runs_where_model_wrong']} whose model's "
                "first pick had regret ≥ 0.5")
    return out


def _cases(m: Any) -> str:
    bad = [k for k, v in (m or {}).items() if not v.get("met")]
    return f"{len(m) - len(bad)} of {len(m)} met" + (f" (missed: {', '.join(bad)})" if bad else "")


def _ratios(m: Any) -> str:
    return ", ".join(f"{k} {num(v)}" for k, v in (m or {}).items()) or DASH


ROBUST_LABELS: dict[str, Any] = {
    "wrong_model_final_regret_le_bo_plus_0.02": ("wrong model: final regret ≤ bo's + 0.02", _cases, None),
    "wrong_model_trials_to_0.1_le_1.25x_bo": ("wrong model: trials to regret 0.1 ≤ 1.25 × bo's", _cases, None),
    "right_model_bandpower_guided_2x_fewer_than_bo": (
        "right model, band power: bo / guided trials", lambda m: f"bo {num(m.get('bo'), 1)} / guided "
                                                            f"{num(m.get('guided'), 1)}", None),
    "right_model_latent_guided_le_6.5": ("right model, latent: guided trials", lambda m: num(m, 1), None),
    "detection_misspecified_fell_within_6_ge_0.8": ("detection: trust < 0.25 by trial 6 (misspecified)", _fraction,
                                                    None),
    "detection_home_stayed_above_half_ge_0.8": ("no false alarm: trust ≥ 0.25 over 6 trials (home)", _fraction, None),
    "zero_hard_violations": ("hard violations", lambda m: str(sum(v or 0 for v in m.values())), None),
    "ask_cost_le_1.5x": ("s per ask, trust on / off", _ratios, None),
}
SETTING_TEXT = {
    "home-latent": "latent target, home families (the model is at home)",
    "home-bandpower": "beta band power, bg-beta (biomarker heads)",
    "foreign-model": "beta band power, bg-beta, surrogate bound to a cortex-jr patient",
    "user-patient": "the example user patient, surrogate from another patient's rest",
    "held-out": "the held-out family (never pretrained on, never tuned on), model zero-shot",
}


def _trust_at(curve: list[Any] | None, k: int) -> str:
    if not curve or len(curve) < k or curve[k - 1] is None:
        return DASH
    return num(curve[k - 1])


def robust_body(b: Bench) -> str:
    d = b["robust"]
    scales = d.get("scale", {})
    scales = scales.get("parts", [scales])

    def one(sc: dict[str, Any]) -> str:
        return (f"{sc.get('n_home', DASH)} home patients, {sc.get('n_mis', DASH)} patients per misspecified setting, "
                f"{sc.get('seeds', DASH)} seed(s), budget {sc.get('budget', DASH)} trials, optimizers "
                f"{', '.join(sc.get('optimizers', [])) or DASH}")

    out = [f"Scale of this run: {'; '.join(one(sc) for sc in scales)}. "
           "Trials to regret are medians (runs that never reach it count as budget + 1); `notrust` is the same "
           "optimizer with `trust = false` (the behaviour before the trust mechanism). Trust is "
           "P(the model ranks this patient's stimuli | trials), prior 0.5. Two things protect a run from a wrong "
           "model, and the detection figures below count only the first: trust falls when the measured costs do "
           "not follow the predicted ones (a model that does not rank); and BO leads when the model's own last 3 "
           "picks are none of them among the best third of the trials (a model that ranks the trend but puts the "
           "optimum in the wrong place — the usual failure of a model bound to another patient, whose trust can "
           "stay high while its picks are replaced).\n"]
    for s, per in d["summary"].items():
        rows = []
        for o, v in per.items():
            curve = v.get("trust_median_by_trial")
            det = v.get("detection_within_6") or {}
            rows.append([o, num(v.get("trials_to_0.05_median"), 1), num(v.get("trials_to_0.1_median"), 1),
                         num(v.get("final_regret_median"), 3), num(v.get("side_effect_trials_total"), 0),
                         _trust_at(curve, 3), _trust_at(curve, 6), _trust_at(curve, len(curve) if curve else 0),
                         DASH if det.get("fraction_fell") is None else num(det["fraction_fell"]),
                         num(v.get("model_rank_first10_median"))])
        out.append(f"**{s}** — {SETTING_TEXT.get(s, s)}\n")
        out.append(table(["optimizer", "trials to 0.05", "trials to 0.1", "final regret", "side-effect trials",
                          "trust @3", "trust @6", "trust (end)", "fell < 0.25 by 6", "model ρ (first 10)"],
                         rows))
        out.append("")
    out.append(targets_table(target_rows(d["targets"], ROBUST_LABELS, bench="robust")))
    return "\n".join(out)


def fidelity_body(b: Bench) -> str:
    d = b["fidelity"]
    rows = []
    for fid, f in d.get("families", {}).items():
        bur = f.get("bursts") or {}
        rows.append([fid, num(f.get("aperiodic_exponent")), num(f.get("dominant_peak_hz"), 1),
                     num(bur.get("median_ms"), 0), DASH if bur.get("frac_over_400ms") is None else
                     f"{100 * bur['frac_over_400ms']:.0f} %", num(bur.get("amp_duration_slope_per_s")),
                     num(f.get("interchannel_correlation"))])
    out = ["Each family's simulated recordings (evaluation patients) against its cited physiological range; "
           "the real recordings in `shared/data/recordings` are measured the same way (they are small test files, "
           "not physiological references).\n",
           table(["id", "aperiodic exponent", "dominant peak (Hz)", "burst median (ms)", "bursts > 400 ms",
                  "amplitude–duration slope", "inter-channel r"], rows), ""]
    sp = d.get("speed") or {}
    if sp:
        out += ["Simulator speed (real-time factors; the machine's 1-minute load beside them: these are wall-clock "
                "figures on 2 shared cores; the per-CPU-second figure counts only the CPU time the simulator got):\n",
                table(["id", "one patient", "64 patients", "64 patients per CPU-second", "load"],
                      [[k, num(v.get("single_patient_realtime_factor"), 0), num(v.get("realtime_factor"), 0),
                        num(v.get("realtime_factor_per_cpu_second"), 0), num(v.get("loadavg_1min"), 1)]
                       for k, v in sp.items()]), ""]
    out += [f"![{p}](../bench/{p})" for p in d.get("plots", [])] + [""]
    out.append(targets_table(target_rows(d["targets"], {}, bench="fidelity")))
    if b.has("adaptive_eval_v1"):
        out.append("")
        out.append(_adaptive_v1(b["adaptive_eval_v1"]))
    return "\n".join(out)


def _adaptive_v1(a: dict[str, Any]) -> str:
    """Adaptive vs open-loop DBS on ``bg-beta-v1`` (``bench/adaptive_eval_v1.json``)."""
    m = a["evaluation"]["median"]
    ratio, charge = m.get("adaptive_suppression_ratio"), m.get("adaptive_charge_fraction")
    rows = [["adaptive: share of open-loop beta suppression", num(ratio), "≥ 0.90", DASH if ratio is None else
             ("met" if ratio >= 0.9 else "**missed**")],
            ["adaptive: share of open-loop charge", num(charge), "≤ 0.60", DASH if charge is None else
             ("met" if charge <= 0.6 else "**missed**")],
            ["constant amplitude at the adaptive charge: share of open-loop suppression",
             num(m.get("matched_charge_suppression_ratio")), "(control)", DASH]]
    return ("**Adaptive DBS on `bg-beta-v1`** (`python -m loops.session.adaptive_eval --patient bg-beta-v1 ...`, "
            f"gains tuned on training seeds, {a['evaluation'].get('n_patients', DASH)} evaluation patients; medians; "
            f"open-loop suppression {num(m.get('open_loop_suppression'))}):\n\n"
            + table(["figure", "measured", "target", "met?"], rows, align="lrrr"))


SECTIONS = (
    Section("robust", "When the model is wrong: online trust", ("robust",),
            ("PYTHONPATH=. bfm-stim bench robust --json bench/robust.json",), robust_body),
    Section("fidelity", "Synthetic patients against physiology", ("fidelity",),
            ("bfm-stim bench fidelity --json bench/fidelity.json",), fidelity_body),
)
