"""Sections of the results page on the foundation model: the surrogate benchmark and its ceiling, the
tuning of adaptation, diagnostics of the remaining gap, the pretraining ablation, decoding with
latents, real recordings. Each ``*_body`` renders one section from ``bench/*.json``."""

from __future__ import annotations

import re
from typing import Any, Mapping

from loops.bench.docs_format import (
    DASH, Bench, Section, TargetRow, median_of, minutes, num, op, pct, signed, table, target_rows, targets_table,
)

__all__ = ["SECTIONS", "METHODS", "DECODE_LABELS", "surrogate_targets", "settings_of"]

METRICS = ("forecast_r2_40ms", "forecast_r2_160ms", "stim_effect_r2", "stim_effect_r2_heldout")
METHODS = {
    "zero_shot": "pretrained, zero-shot (rest only, no probes)",
    "pretrained_embedding": "pretrained + embedding/read-in adaptation",
    "pretrained_finetune": "pretrained + fine-tuning",
    "scratch": "same architecture trained from scratch",
    "arx": "per-patient ARX",
    "linear": "the model's linear path alone (no network)",
    "persistence": "persistence",
    "state_oracle": "**ceiling**: state oracle",
}


def bundled_name(text: str) -> str:
    """``configs/pretrain-small.toml`` (as older JSON records a config) → ``pretrain-small``, the name every
    command takes for a bundled config."""
    return re.sub(r"(?:loops/)?configs/([\w.-]+?)\.toml", r"\1", str(text))


def _amount(s: Any) -> str:
    s = float(s)
    return "—" if s == 0 else (f"{s:g} s" if s < 60 else f"{s / 60:g} min")


def _med(res: Mapping[str, Any], method: str, amount: Any, metric: str) -> Any:
    return median_of(res.get(method, {}).get(str(int(float(amount))), {}).get(metric))


def settings_of(cfg: Mapping[str, Any], method: str, amount_s: float) -> str:
    """Steps, learning rate and anchor the surrogate benchmark used for ``method`` at ``amount_s`` (from its config)."""
    for a, picks in cfg.get("per_amount", []):
        if float(a) == float(amount_s):
            for p in picks:
                if p[0] == method:
                    return _setting(p[1], p[2], p[3] if len(p) > 3 else 0.0)
    key = {"pretrained_embedding": "embedding", "pretrained_finetune": "full", "scratch": "scratch"}.get(method)
    if key is None:
        return ""
    lr = cfg.get(f"lr_{key}", cfg.get("scratch_lr")) if key != "scratch" else (cfg.get("scratch_lrs") or [None])[0]
    return _setting(cfg.get(f"steps_{key}"), lr, cfg.get(f"anchor_{key}", 0.0))


def _setting(steps: Any, lr: Any, anchor: Any = 0.0) -> str:
    return f"{steps} steps, lr {float(lr):g}" + (f", anchor {float(anchor):g}" if anchor else "")


# ------------------------------------------------------------------------------------ surrogate
def _constant(res: Mapping[str, Any], method: str) -> bool:
    rows = [tuple(_med(res, method, a, m) for m in METRICS) for a in res[method] if _med(res, method, a, METRICS[0]) is not None]
    return len(set(rows)) <= 1


def surrogate_targets(d: Mapping[str, Any]) -> list[TargetRow]:
    """The surrogate benchmark's targets (its ``targets.met`` keys carry the thresholds)."""
    t = d["targets"]
    best, amount = t["best_pretrained"], _amount(t["amount_s"])
    res, rows = d["results"], []
    names = {"forecast_40ms": ("forecast_r2_40ms", "R² 40 ms"), "forecast_160ms": ("forecast_r2_160ms", "R² 160 ms"),
             "stim_effect": ("stim_effect_r2", "stimulation-effect R²")}
    for key, met in t["met"].items():
        m = re.fullmatch(r"(\w+?)>=([\d.]+)", key)
        if m and m.group(1) in names:
            field_, label = names[m.group(1)]
            rows.append(TargetRow(f"{label}, {METHODS[best]}, {amount} of probes", num(t[field_]), f"≥ {m.group(2)}", met))
        elif m and m.group(1) == "gain":
            rows.append(TargetRow(f"pretrained minus scratch at {amount}: R² 160 ms / stimulation effect",
                                  f"{signed(t['gain_over_scratch_r2_160ms'], 2)} / "
                                  f"{signed(t['gain_over_scratch_stim_effect_r2'], 2)}",
                                  f"≥ +{m.group(2)}", met))
        elif key.startswith("scratch_needs_"):
            need = t.get("scratch_amount_to_match_s")
            most = max(float(a) for a in res.get("scratch", {"0": 0}))
            rows.append(TargetRow("data scratch training needs to match the pretrained model at " + amount,
                                  f"not matched within {_amount(most)}" if need is None else _amount(need),
                                  f"≥ {key.split('_')[-1].rstrip('x')}× as much", met))
    for flag, other, label in (("beats_arx_160ms", "arx", "per-patient ARX"),
                               ("beats_linear_path_alone_160ms", "linear", "the model's own linear path")):
        if flag in t:
            rows.append(TargetRow(f"R² 160 ms above {label} at {amount}",
                                  f"{num(t['forecast_r2_160ms'])} vs "
                                  f"{num(_med(res, other, t['amount_s'], 'forecast_r2_160ms'))}",
                                  "above", bool(t[flag])))
    return rows


def surrogate_body(b: Bench) -> str:
    d = b["surrogate"]
    cfg, res, t = d["config"], d["results"], d["targets"]
    rows = []
    headline = float(t["amount_s"])
    for method in (m for m in METHODS if m in res):
        const = _constant(res, method)
        trained = method in ("pretrained_embedding", "pretrained_finetune", "scratch")
        for a in sorted(res[method], key=float):
            if _med(res, method, a, METRICS[0]) is None or (not trained and not const and float(a) != headline):
                continue
            data = ("any" if const and method != "zero_shot" else
                    f"{_amount(cfg['rest_s'])} rest" if method == "zero_shot" else _amount(a))
            rows.append([METHODS[method], data, *(num(_med(res, method, a, m)) for m in METRICS),
                         num(_med(res, method, a, "coverage_90")), settings_of(cfg, method, float(a))])
            if const:
                break
    fam = d.get("results_by_family", {})
    best, amount_s = t["best_pretrained"], t["amount_s"]
    frows = [[f"`{f}`"] + [" / ".join(num(_med(fr, m, a, k)) for k in METRICS[:3])
                          for m, a in (("zero_shot", 0), (best, amount_s), ("state_oracle", 0))] for f, fr in fam.items()]
    thr = d.get("throughput", {})
    out = [f"{cfg['n_patients']} evaluation-cohort patients (never seen in pretraining), every method on every patient. "
           f"R² of the forecast at 40 ms and 160 ms after onset, of the stimulation effect (stimulated minus "
           f"unstimulated response, same noise) and of the effect of stimuli held out of the probes; 90 % interval "
           f"coverage. Trained methods adapt on the given seconds of probe trials with the settings picked on "
           f"validation patients ([below](#adaptation)); medians over patients.",
           "",
           table(["method", "data", "R² 40 ms", "R² 160 ms", "stim-effect R²", "held-out stim R²", "coverage 90 %",
                  "settings"], rows, align="llrrrrrl"),
           "",
           targets_table(surrogate_targets(d)),
           "",
           f"Per family (R² 40 ms / 160 ms / stimulation effect): zero-shot; {METHODS[best]} at {_amount(amount_s)}; ceiling.",
           "",
           table(["family", "zero-shot", f"adapted, {_amount(amount_s)}", "ceiling"], frows)]
    if thr:
        out += ["", f"Throughput: {num(thr['candidates_per_s_latent'], 0)} candidate stimuli per second (latent only) and "
                f"{num(thr['candidates_per_s_signal'], 0)} with the {thr['n_channels']}-channel signal, on {thr['threads']} "
                "threads; the whole benchmark took " + minutes(d.get("timing_s", {}).get("total")) + "."]
    out += ["", _surrogate_findings(d)]
    return "\n".join(out)


def _surrogate_findings(d: Mapping[str, Any]) -> str:
    res, t, fam = d["results"], d["targets"], d.get("results_by_family", {})
    best, a = t["best_pretrained"], t["amount_s"]
    ceil = t["ceiling_state_oracle"]
    scratch_amounts = sorted((float(x) for x in res.get("scratch", {}) if _med(res, "scratch", x, METRICS[0]) is not None))
    targets = {m.group(1): float(m.group(2)) for k in t["met"] if (m := re.fullmatch(r"(\w+?)>=([\d.]+)", k))}
    lines = ["**What it shows.**", ""]
    if scratch_amounts:
        top = scratch_amounts[-1]
        lines.append(f"- *Pretraining is what helps.* The same architecture trained from scratch reaches R² 160 ms "
                     f"{num(_med(res, 'scratch', a, 'forecast_r2_160ms'))} and stimulation-effect R² "
                     f"{num(_med(res, 'scratch', a, 'stim_effect_r2'))} at {_amount(a)} "
                     f"({num(_med(res, 'scratch', top, 'forecast_r2_160ms'))} and "
                     f"{num(_med(res, 'scratch', top, 'stim_effect_r2'))} at {_amount(top)}), against the pretrained "
                     f"model's {num(t['forecast_r2_160ms'])} and {num(t['stim_effect_r2'])} at {_amount(a)}.")
    lines.append(f"- *Adapting adds a little to zero-shot.* {_amount(a)} of probes move R² 160 ms from "
                 f"{num(_med(res, 'zero_shot', 0, 'forecast_r2_160ms'))} to {num(t['forecast_r2_160ms'])} and the "
                 f"stimulation effect from {num(_med(res, 'zero_shot', 0, 'stim_effect_r2'))} to {num(t['stim_effect_r2'])}.")
    r = [pct(t[k] / ceil[k]) for k in ("forecast_r2_40ms", "forecast_r2_160ms", "stim_effect_r2")]
    ratios = f"{r[0]} of that at 40 ms, {r[1]} at 160 ms and {r[2]} for the stimulation effect"
    t40 = targets.get("forecast_40ms")
    tgt = ""
    if t40 is not None:
        tgt = (f" The 40 ms target ({num(t40)}) is {'above' if ceil['forecast_r2_40ms'] < t40 else 'at'} the ceiling "
               f"({num(ceil['forecast_r2_40ms'], 3)}): only a model that knew the simulator's full hidden state, noise "
               "processes included, could reach it; a model of the recordings cannot.")
    lines.append(f"- *The ceiling.* The state oracle (the mean of {d['config'].get('oracle_branches', DASH)} noise "
                 "continuations from the simulator's true hidden state at onset: the best forecast a model of the "
                 f"recordings can make) reaches {num(ceil['forecast_r2_40ms'])} / {num(ceil['forecast_r2_160ms'])} / "
                 f"{num(ceil['stim_effect_r2'])}; the model gets {ratios}.{tgt}")
    low = [f for f, fr in fam.items() if t40 is not None and (_med(fr, "state_oracle", 0, "forecast_r2_40ms") or 1) < t40]
    if low:
        lines.append(f"- *Per family.* On {' and '.join(f'`{f}`' for f in low)} even the ceiling is below the 40 ms "
                     "target: their activity is driven by noise that no forecaster can see coming.")
    cov = _med(res, "zero_shot", 0, "coverage_90")
    if cov is not None:
        lines.append(f"- *Uncertainty is calibrated*: the 90 % intervals cover {pct(cov)} of outcomes zero-shot.")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ adaptation tuning
TUNING = ("adapt_tuning_10s", "adapt_tuning_30s", "adapt_tuning", "adapt_tuning_600s", "adapt_tuning_rest")


def _data(d: Mapping[str, Any]) -> str:
    """What a sweep adapted on, from its config: ``2 min of probes`` or ``2 min of rest only``."""
    c = d["config"]
    return f"{_amount(c['rest_s'])} of rest only" if d.get("data") == "rest only" else f"{_amount(c['amount_s'])} of probes"


def _score(text: str) -> str:
    return (str(text).replace("forecast_r2_160ms", "R² 160 ms").replace("forecast_r2_40ms", "R² 40 ms")
            .replace("stim_effect_r2", "stimulation-effect R²")) or "R² 160 ms + stimulation-effect R²"


def _best(meds: Mapping[str, Any], anchored: bool) -> tuple[str, float] | None:
    c = [(k, v["score"]) for k, v in meds.items() if ("+a" in k) == anchored and v.get("score") is not None]
    return max(c, key=lambda kv: kv[1]) if c else None


def tuning_body(b: Bench) -> str:
    rows, notes = [], []
    for stem in TUNING:
        if not b.has(stem):
            rows.append([stem, DASH, f"_not run (`bench/{stem}.json` missing)_", DASH, DASH, DASH])
            continue
        d = b[stem]
        data = _data(d)
        zs = d["medians"].get("zero_shot", {}).get("-", {}).get("score")
        for method, p in d["picks"].items():
            meds = d["medians"].get(method, {})
            un, an = _best(meds, False), _best(meds, True)
            rows.append([data, METHODS.get(method, method), _setting(p["steps"], p["lr"], p["anchor"]), num(p["score"], 3),
                         num(un[1], 3) if un else DASH, num(zs, 3)])
            if (method != "scratch" and d.get("data") != "rest only" and un and an and zs is not None
                    and un[1] < zs <= an[1]):
                notes.append((data, METHODS.get(method, method), un[1], an[1], zs))
    first = b[next(s for s in TUNING if b.has(s))] if any(b.has(s) for s in TUNING) else {}
    n_val = len(first.get("validation_patients", []))
    out = [f"`bfm-stim bench adapt-tuning` sweeps steps × learning rate (× anchor, for the pretrained methods) on "
           f"{n_val} validation patients (evaluation-cohort seeds the surrogate benchmark never uses) and picks the best "
           f"score, {_score(first.get('score', ''))} (medians over the patients); the surrogate benchmark "
           "uses the picks. `--rest` tunes `bfm-stim adapt`'s defaults on rest alone.",
           "",
           table(["data", "method", "pick", "score", "best unanchored", "zero-shot"], rows, align="lllrrr")]
    if notes:
        out += ["", "**Few probes need the anchor.** " + " ".join(
            f"On {data}, {m}: every unanchored setting scored below zero-shot (best {num(u, 3)} vs {num(z, 3)}); "
            f"anchored, {num(a, 3)}." for data, m, u, a, z in notes)
                + _anchor_cause(b)
                + " `adapt(..., anchor=A)` pulls every tuned weight back towards its pretrained value after each step "
                "(drift bounded near 1/A). `bfm-stim adapt` anchors by default; keep it when you have seconds, not "
                "minutes, of probe data."]
    if b.has("adapt_tuning_rest"):
        r = b["adapt_tuning_rest"]
        zs = r["medians"]["zero_shot"]["-"]
        best = max(r["picks"].items(), key=lambda kv: kv[1]["score"])
        bm = r["medians"][best[0]]
        key = next(k for k in bm if k.startswith(f"{best[1]['steps']}@"))
        a = bm[key]
        gain160, gain_st = a["forecast_r2_160ms"] - zs["forecast_r2_160ms"], a["stim_effect_r2"] - zs["stim_effect_r2"]
        out += ["", f"**On rest alone** (what `bfm-stim adapt --recording` usually gets), the best pick "
                f"({METHODS[best[0]]}) moves R² 40 ms / 160 ms / stimulation effect from {num(zs['forecast_r2_40ms'])} / "
                f"{num(zs['forecast_r2_160ms'])} / {num(zs['stim_effect_r2'])} zero-shot to {num(a['forecast_r2_40ms'])} / "
                f"{num(a['forecast_r2_160ms'])} / {num(a['stim_effect_r2'])}"
                + (": rest improves the forecast of ongoing activity, not the predicted effect of stimulation. To "
                   "predict stimulation effects better, record probe trials." if gain160 > 0 and gain_st <= 0.01 else ".")]
    return "\n".join(out)


def _anchor_cause(b: Bench) -> str:
    """What loses zero-shot's score on few probes (``diagnostics/diag_anchor_10s.json``, where present)."""
    d = b.diag("diag_anchor_10s")
    m = (d or {}).get("medians", {})
    if not all(k in m for k in ("zero_shot", "emb_ioonly", "emb_embonly")):
        return ""
    return (f" The cause is the read-in and read-out layers overfitting a handful of trials: on "
            f"{_amount(d['amount_s'])} of probes, tuning them alone scored {num(m['emb_ioonly']['score'], 3)}, the "
            f"patient embedding alone {num(m['emb_embonly']['score'], 3)} (zero-shot {num(m['zero_shot']['score'], 3)}; "
            "`bench/diagnostics/diag_anchor_10s.json`).")


# ------------------------------------------------------------------------------------ diagnostics
def diagnostics_body(b: Bench) -> str:
    gap, cont, cpu = b.diag("diag_gap"), b.diag("continued_pretraining"), b.diag("cpu_reproduction")
    out = ["One-off analyses of the surrogate's remaining gap (`bench/diagnostics/`, each with the script that "
           "produced it; validation or evaluation patients as stated there)."]
    if gap:
        m = gap["medians"]["160ms"]
        out += ["", f"- *Where the 160 ms shortfall lies* ({gap['n_patients']} patients, adapted as in the benchmark): "
                f"pooled R² "
                f"{num(m['pooled_model'], 3)} against the oracle's {num(m['pooled_oracle'], 3)}. On stimulation-off windows "
                f"the model forecasts about as well as its own per-channel linear path ({num(m['off_model'], 3)} vs "
                f"{num(m['off_ar_30s_rest'], 3)}), so what the network adds is the stimulation response. Swapping in the "
                f"oracle's stimulation effect lifts pooled R² to {num(m['pooled_model_ongoing_oracle_effect'], 3)}, the "
                f"oracle's ongoing-activity forecast to {num(m['pooled_oracle_ongoing_model_effect'], 3)}; the effect "
                f"itself scores {num(m['effect_model'], 3)} against {num(m['effect_oracle'], 3)}. Linear forecasters fitted "
                f"on {num(gap['long_rest_s'], 0)} s of extra rest reach only {num(m['off_ar_long_rest'], 3)} per channel and "
                f"{num(m['off_ridge_own_plus_4pc_long_rest'], 3)} with cross-channel components on those windows, where "
                f"the oracle gets {num(m['off_oracle'], 3)}: much of its lead is hidden state the recordings show weakly."]
    if cont:
        z = cont["zero_shot_16_validation_patients"]
        snaps = [v for k, v in z.items() if k.startswith("snap_")]
        last = snaps[-1] if snaps else None
        pv = cont.get("shipped_zero_shot_pretraining_vs_new_patients", {})
        meds = [v.get("median") for v in pv.values()]
        if last:
            out += ["", f"- *Training longer does not close it.* Continuing the shipped weights for "
                    f"{cont['continued_run']['steps']} more steps on CPU left zero-shot R² 40 ms / 160 ms / stimulation "
                    f"effect at {' / '.join(num(last[k]) for k in METRICS[:3])} against the shipped "
                    f"{' / '.join(num(z['shipped'][k]) for k in METRICS[:3])} (validation patients)"
                    + (f"; nor does the model overfit its pretraining patients (zero-shot on them "
                       f"{' / '.join(num(meds[0][k]) for k in METRICS[:3])}, on new ones "
                       f"{' / '.join(num(meds[1][k]) for k in METRICS[:3])})" if len(meds) == 2 and all(meds) else "")
                    + ". It underfits at this size: the next step is capacity (a larger model, on a GPU)."]
    if cpu:
        pc = cpu["paired_change_cpu_minus_shipped"]
        out += ["", f"- *The shipped recipe reproduces on CPU*: `{bundled_name(cpu['command'])}` took "
                f"{minutes(cpu['wall_s_from_nothing'])} "
                f"({cpu['machine']}) and matches the shipped weights (paired change in zero-shot R² 40 ms / 160 ms / "
                f"stimulation effect {' / '.join(signed(pc[k]['median']) for k in METRICS[:3])})."]
    if len(out) == 1:
        out += ["", "_No diagnostics in `bench/diagnostics/`._"]
    return "\n".join(out)


# ------------------------------------------------------------------------------------ ablation
def ablation_body(b: Bench) -> str:
    d = b["ablation"]
    ref, ch = d["reference"], dict(d["paired_change_vs_reference"])
    seed = b["ablation_seed"]["paired_change_vs_reference"] if b.has("ablation_seed") else {}
    seed_names = {f"{k}` (same config, another training seed)": v for k, v in seed.items()}
    ch = {f"{k}`": v for k, v in ch.items()}
    ch.update(seed_names)
    cfg = d["config"]
    r0 = d["results"][ref]

    def cell(v: Mapping[str, Any], mode: str, m: str) -> str:
        x = v[mode][m]
        return f"{signed(x['median'])} ({x['n_better']}/{x['n']})"

    rows = [[f"`{k}"] + [cell(v, mode, m) for mode in ("zero_shot", "embedding") for m in METRICS[:3]] for k, v in ch.items()]
    out = [f"The `{bundled_name(cfg['config'])}` config pretrained for {cfg['steps']} steps once as it is (`{ref}`) "
           "and once without each "
           f"objective, everything else equal, then scored on the surrogate benchmark's {cfg['n_patients']} patients "
           f"zero-shot and after embedding adaptation on {_amount(cfg['amount_s'])} of probes. `{ref}` scores "
           + "; ".join(f"{lab} {' / '.join(num(r0[mode][m]['median']) for m in METRICS[:3])}"
                       for mode, lab in (("zero_shot", "zero-shot"), ("embedding", "after embedding adaptation")))
           + " (R² 40 ms / 160 ms / stimulation effect). Cells: median paired change against it (patients better).",
           "",
           table(["variant", "zero-shot 40 ms", "zero-shot 160 ms", "zero-shot stim", "adapted 40 ms", "adapted 160 ms",
                  "adapted stim"], rows),
           "", targets_table([])]
    if seed:
        noise = max(abs(v[mode][m]["median"]) for v in seed.values() for mode in ("zero_shot", "embedding") for m in METRICS[:3])
        eff = max(abs(v[mode][m]["median"]) for k, v in d["paired_change_vs_reference"].items()
                  for mode in ("zero_shot", "embedding") for m in METRICS[:3])
        out += ["", f"**What it shows.** Retraining the same config with another seed moves the figures by up to "
                f"{signed(noise)}; the largest change from removing an objective is {signed(eff)}. "
                + ("No objective's effect is shown beyond run-to-run training noise at this budget; telling them apart "
                   "would take several seeds per variant. Keep the objectives as configured."
                   if eff <= noise else "Some changes exceed the seed-to-seed noise of one retraining.")]
    return "\n".join(out)


# ------------------------------------------------------------------------------------ decoding
def _short(t: Any) -> str:
    return op(str(t).split(" (")[0])


DECODE_LABELS = {
    "latent_beats_handcrafted_30s": ("latents minus hand-crafted features, balanced accuracy at 30 s of labels "
                                     "(median patient)", lambda m: " · ".join(f"{k} {signed(v, 2)}" for k, v in m.items()),
                                     _short),
    "cross_patient_aligned_vs_within_2min": ("best aligned cross-patient decoder / within-patient, at 2 min of labels "
                                             "(median)", lambda m: " · ".join(f"{k} {num(v)}" for k, v in m.items()), _short),
}


def decode_body(b: Bench) -> str:
    d = b["decode"]
    labs = [str(x) for x in d["label_s"]]
    rows, crows = [], []
    for fam, fs in d["summary"].items():
        for task in d["tasks"]:
            v = fs.get(task)
            if not isinstance(v, Mapping):
                continue
            rows.append([f"`{fam}`", task] + [" / ".join(num(v[f][s]) for s in labs)
                                               for f in ("latent", "handcrafted", "random_init")])
        for task in ("state", "stim"):
            v = fs.get(f"{task}_cross_patient")
            if v:
                crows.append([f"`{fam}`", task] + [num(v.get(k)) for k in ("latent_model", "latent_generic_rest",
                                                                           "latent_model_rest", "handcrafted_rest")])
    adv = d["targets"]["latent_beats_handcrafted_30s"]["measured"]
    ratio = d["targets"]["cross_patient_aligned_vs_within_2min"]["measured"]
    out = [f"{len(d['seeds'])} evaluation patients per family, {d['blocks']} blocks of {num(d['block_s'], 0)} s cut into "
           f"{num(d['window_s'], 0)} s windows per task; one linear read-out ({d['metric']}), blocked cross-validation, "
           f"with the first {', '.join(labs)} s of labels. Features: the model's pooled latents (zero-shot, patient "
           "embedding from rest), the same architecture with random weights, hand-crafted features (band powers, line "
           "length, Hjorth). Tasks: `state` healthy vs pathological, `stim` which stimulation condition (off or one of "
           "two frequencies), `flicker` which visual flicker rate, `hidden` a hidden source's variance (R²).",
           "",
           table(["family", "task", f"latents ({' / '.join(labs)} s)", "hand-crafted", "random weights"], rows,
                 align="llrrr"),
           "",
           "Across patients (leave one out, no labels from the new patient): latents with the model's own patient "
           "embedding, a generic embedding re-centred and whitened by each patient's rest, both, and hand-crafted "
           "features re-centred by rest.",
           "",
           table(["family", "task", "latent", "generic + rest", "latent + rest", "hand-crafted + rest"], crows,
                 align="llrrrr"),
           "",
           targets_table(target_rows(d["targets"], DECODE_LABELS, bench="decode")),
           ""]
    worse = [k for k, v in adv.items() if v is not None and v < 0]
    txt = "**What it shows.** "
    if "stim" in worse:
        txt += (f"The foundation model's latents do not help to decode stimulation: hand-crafted features beat them by "
                f"{signed(-adv['stim'], 2)} balanced accuracy at 30 s of labels. **Use hand-crafted band power "
                "(`bfm_stim.handcrafted`) to detect stimulation or its settings.** ")
    if "state" in adv:
        txt += (f"For the healthy-vs-pathological state both reach ceiling (difference {signed(adv['state'], 3)}). ")
    if ratio and all(v is not None and v >= 0.9 for v in ratio.values()):
        txt += (f"Latents do transfer across patients: the best aligned cross-patient decoder reaches "
                f"{' and '.join(f'{num(v)} ({k})' for k, v in ratio.items())} of within-patient accuracy, which is what "
                "`bfm-stim decode --simulated` uses to train a state decoder for new patients.")
    out.append(txt)
    real = [r for r in d.get("real", []) if "latent" in r]
    if real:
        out += ["", "Real recordings (windows holding an annotation vs not; a weak label, reported as it comes): "
                + "; ".join(f"`{r['file']}` latents {num(r['latent'])} vs hand-crafted {num(r['handcrafted'])} "
                            f"({r['windows']} windows)" for r in real) + "."]
    return "\n".join(out)


# ------------------------------------------------------------------------------------ real recordings
REAL_LABELS = {
    "adapted_ge_linear_40ms": ("recordings where adaptation matches the linear forecaster at 40 ms", None, None),
    "adapted_ge_zero_shot": ("recordings where adaptation is no worse than zero-shot", None, None),
    "silent_divergences": ("adaptation runs that diverged without saying so", None, None),
}


def real_body(b: Bench) -> str:
    d = b["real"]
    rows = []
    for r in d["recordings"]:
        if r.get("status") == "skipped":
            why = r.get("reason", "").split("recording: ")[-1].split(" (")[0]
            rows.append([f"`{r['file']}`", DASH, DASH, f"skipped: {why}", DASH, DASH, DASH])
            continue
        r2 = r["r2"]
        fb = r.get("fallback") or {}
        rows.append([f"`{r['file']}`", r["channels"], f"{num(r['duration_s'], 0)} s",
                     *(" / ".join(num(r2[k][lead]) for lead in ("40ms", "160ms")) for k in ("zero_shot", "adapted", "linear")),
                     fb.get("kind", "").replace("_", " ") or DASH])
    mp = d.get("missing_positions", {})
    prow = [[f"`{f}`"] + [" / ".join(num(v[k][lead], 3) for lead in ("40ms", "160ms")) for k in ("true", "nan", "shuffled")]
            for f, v in mp.get("medians", {}).items()]
    ok = [r for r in d["recordings"] if r.get("status") != "skipped"]
    lens = [r["duration_s"] for r in ok]
    lin = sum(r["r2"]["linear"]["40ms"] >= r["r2"]["adapted"]["40ms"] for r in ok)
    out = [f"`bfm-stim adapt` (mode {d['mode']}) on every recording of the project's test folder. Metric: "
           f"{d['metric']}. A fallback of *no improvement* means no adaptation step beat zero-shot on the held-out "
           "part, so the zero-shot model was returned.",
           "",
           table(["recording", "channels", "length", "zero-shot 40 / 160 ms", "adapted", "linear forecaster", "fallback"], rows,
                 align="lrrrrrl"),
           "",
           targets_table(target_rows(d["targets"], REAL_LABELS, bench="real"))]
    if lens:
        silent = d["targets"].get("silent_divergences", {}).get("measured")
        out += ["", f"**What it shows.** These are short test files ({num(min(lens), 0)}–{num(max(lens), 0)} s), not a "
                "clinical dataset: they show that `adapt` reads real formats and behaves safely on them"
                + (" (it says when it falls back; no run diverged silently)" if silent == 0 else "")
                + ", not how well the model forecasts real brains. On "
                f"{lin} of {len(ok)} the per-channel linear forecaster is at least as good as the adapted model at 40 ms; "
                "judge the model on your own recordings with `bfm-stim adapt`'s held-out table before trusting its "
                "forecasts."]
    if prow:
        out += ["", "Missing or wrong electrode positions (zero-shot rest forecast on simulated evaluation patients, R² "
                "40 / 160 ms, medians):", "",
                table(["family", "true positions", "positions unknown", "positions shuffled"], prow),
                "", "Unknown positions cost the rest forecast nothing measurable (the linear path carries it): give "
                "positions when you have them, but a recording without them still works. Stimulation responses are "
                "not covered by this check."]
    if b.has("pretrain_real"):
        out += ["", _pretrain_real(b["pretrain_real"])]
    return "\n".join(out)


def _pretrain_real(p: Mapping[str, Any]) -> str:
    s, c = p["summary"], p["corpus"]
    rows = [[lab] + [num(s[k][col], 3) for col in ("start_checkpoint", "without_real_mean", "with_real_mean")]
            + [" / ".join(signed(x) for x in s[k]["with_minus_without_per_seed"])]
            for k, lab in (("real_forecast_r2_40ms", "real recordings, R² 40 ms"),
                           ("real_forecast_r2_160ms", "real recordings, R² 160 ms"),
                           ("sim_forecast_r2_40ms", "simulated patients, R² 40 ms"),
                           ("sim_forecast_r2_160ms", "simulated patients, R² 160 ms"))]
    r40 = s["real_forecast_r2_40ms"]["with_minus_without_per_seed"]
    r160 = s["real_forecast_r2_160ms"]["with_minus_without_per_seed"]
    per = s.get("real_per_recording_r2_40ms_160ms", {})
    gains = {f: v["with_real_seed0"][0] - v["without_real_seed0"][0] for f, v in per.items()}
    top = max(gains, key=gains.get) if gains else None
    return "\n".join([
        f"**Real recordings in pretraining.** Continued pretraining ({p['config']['steps']} steps, seeds "
        f"{', '.join(map(str, p['config']['seeds']))}) with and without {num(c['real_seconds'], 1)} s of real recordings "
        f"({pct(c['real_share_of_series'], 1)} of the series); zero-shot R² on the recordings' held-out ends and on "
        f"{p['config']['n_sim_patients']} simulated patients (`python -m loops.bench.pretrain_real prepare|run`).",
        "",
        table(["figure", "start", "without real", "with real", "with − without, per seed"], rows),
        "",
        f"Adding real data changed the recordings' R² 40 ms by {' / '.join(signed(x) for x in r40)} and 160 ms by "
        f"{' / '.join(signed(x) for x in r160)}"
        + (f"; most of the 40 ms change comes from `{top}` ({signed(gains[top])} in seed 0)" if top else "")
        + ". With three short recordings this is not evidence either way: mixing your own recordings into pretraining "
        "is supported (`[corpus] bids_root`), but measure it on your data before relying on it."])


SECTIONS = (
    Section("surrogate", "How well the surrogate predicts new patients", ("surrogate",),
            ("bfm-stim bench surrogate --json bench/surrogate.json",), surrogate_body),
    Section("adaptation", "Tuning adaptation to a new patient", ("adapt_tuning",),
            ("bfm-stim bench adapt-tuning --json bench/adapt_tuning.json",
             "bfm-stim bench adapt-tuning --amount 10 --json bench/adapt_tuning_10s.json   # also 30, 600",
             "bfm-stim bench adapt-tuning --rest --json bench/adapt_tuning_rest.json"), tuning_body),
    Section("diagnostics", "Why the surrogate falls short: diagnostics", (), (), diagnostics_body),
    Section("ablation", "What each pretraining objective adds", ("ablation",),
            ("bfm-stim bench ablation --json bench/ablation.json",
             "bfm-stim bench ablation --variants full,full_seed1 --json bench/ablation_seed.json"), ablation_body),
    Section("decoding", "Latents as features: decoding", ("decode",), ("bfm-stim bench decode --json bench/decode.json",),
            decode_body),
    Section("real", "Real recordings", ("real",), ("bfm-stim bench real --json bench/real.json",), real_body),
)
