"""``python -m loops.bench.docs``: the benchmark results page, generated from ``bench/*.json``.

Renders ``docs/results.md`` — a summary a user can act on (which optimizer for which target, where
the surrogate misleads, what is missed and why), a headline table, then one section per benchmark:
what it measures, how to rerun it, every target (figure, measured, target, met or missed) and the
findings, every number formatted from the JSON. Also renders the compact headline table that
README.md carries between ``<!-- bench-table:start -->`` and ``<!-- bench-table:end -->``.

    python -m loops.bench.docs            # write docs/results.md (and README.md's table, where it has the markers)
    python -m loops.bench.docs --check    # exit 1 when either is stale

``tests/loops/bench/test_docs.py`` runs the check, so a benchmark rerun without regenerating the page
fails the tests.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from loops.bench.docs_format import (
    DASH, REPO, Bench, MissingBench, Section, TargetRow, checkpoint_digest, median_of, met_word, not_run, num, pct, rerun,
    shipped_digest, table, target_rows, trials,
)
from loops.bench.docs_model import DECODE_LABELS, SECTIONS as MODEL_SECTIONS, surrogate_targets
from loops.bench.docs_robust import SECTIONS as ROBUST_SECTIONS
from loops.bench.docs_optim import (
    HARNESS_LABELS, RANKING_LABELS, SECTIONS as OPTIM_SECTIONS, SESSION_LABELS, fastest, latency_rows, simulator_rows,
)

__all__ = ["PAGE", "README", "START", "END", "sections", "render", "readme_table", "headline_rows", "write",
           "check", "check_readme", "replace_block", "main"]

PAGE = REPO / "docs" / "results.md"
README = REPO / "README.md"
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
REGEN = "python -m loops.bench.docs"
ORDER = ("optimizers-latent", "optimizers-bandpower", "robust", "ranking", "surrogate", "adaptation", "diagnostics", "ablation",
         "decoding", "real", "session", "adaptive", "fidelity", "latency", "simulator", "optimizers-preset")


def sections() -> list[Section]:
    """Every section of the page, in page order."""
    by = {s.anchor: s for s in (*OPTIM_SECTIONS, *MODEL_SECTIONS, *ROBUST_SECTIONS)}
    return [by[a] for a in ORDER]


def _section(s: Section, b: Bench) -> str:
    head = f'<a id="{s.anchor}"></a>\n\n## {s.title}\n'
    missing = next((x for x in s.sources if not b.has(x)), None)
    body = not_run(s, missing) if missing else _safe(s.body, b, s)
    cmds = rerun(s.commands)
    return "\n".join(x for x in (head, ("Rerun:\n\n" + cmds + "\n") if cmds else "", body) if x) + "\n"


def _safe(fn: Callable[[Bench], str], b: Bench, s: Section) -> str:
    try:
        return fn(b)
    except MissingBench as e:
        return not_run(s, e.name)


# ------------------------------------------------------------------------------------ the headline
def _pick(rows: list[TargetRow], needle: str) -> TargetRow | None:
    return next((r for r in rows if needle in r.figure), None)


def headline_rows(b: Bench) -> list[tuple[str, str, TargetRow]]:
    """The main targets, one row each: (section anchor, benchmark label, row); a benchmark not run gives a
    "not run" row."""
    out: list[tuple[str, str, TargetRow]] = []

    def add(anchor: str, stem: str, label: str, rows: Callable[[], list[TargetRow]], needles: Sequence[str]) -> None:
        if not b.has(stem):
            out.append((anchor, label, TargetRow(f"`bench/{stem}.json`", "not run", "—", None)))
            return
        got = rows()
        for n in needles:
            r = _pick(got, n)
            if r is not None:
                out.append((anchor, label, r))

    def optim(stem: str) -> Callable[[], list[TargetRow]]:
        return lambda: target_rows(b[stem]["targets"], HARNESS_LABELS)

    add("simulator", "simulator", "simulator", lambda: simulator_rows(b), ("batched",))
    add("latency", "latency", "LSL bridge", lambda: latency_rows(b), ("bridge round trip p99",))
    add("session", "session", "closed loop", lambda: target_rows(b["session"]["targets"], SESSION_LABELS),
        ("loop overhead", "p99", "share of its beta suppression", "share of its charge"))
    add("optimizers-latent", "benchmark", "optimizers, latent target", optim("benchmark"),
        ("median trials to target, `guided`", "hard safety"))
    add("optimizers-bandpower", "benchmark_bandpower", "optimizers, band power", optim("benchmark_bandpower"),
        ("median trials to target: `guided` vs `bo`",))
    add("ranking", "ranking", "surrogate ranking", lambda: target_rows(b["ranking"]["targets"], RANKING_LABELS),
        ("latent target, `bg-beta-v0`", "latent target, `cortex", "beta band power, `bg-beta-v0`"))
    add("surrogate", "surrogate", "surrogate forecast", lambda: surrogate_targets(b["surrogate"]),
        ("R² 160 ms,", "stimulation-effect R²,", "pretrained minus scratch"))
    add("decoding", "decode", "decoding", lambda: target_rows(b["decode"]["targets"], DECODE_LABELS),
        ("latents minus hand-crafted", "cross-patient"))
    return out


def readme_table(bench_dir: str | Path | None = None, *, link: str = "docs/results.md") -> str:
    """The headline benchmark table (Markdown): benchmark, figure, measured, target, met."""
    b = Bench(bench_dir)
    rows = [[f"[{label}]({link}#{anchor})", r.figure, r.measured, r.target, met_word(r.met)]
            for anchor, label, r in headline_rows(b)]
    return table(["benchmark", "figure", "measured", "target", "met?"], rows, align="llrrr")


# ------------------------------------------------------------------------------------ the summary
def _robust_advice(d: dict[str, Any]) -> str:
    """What the robustness benchmark means for a user whose patient is unlike the simulators."""
    summ = d["summary"]
    mis = [s for s in summ if not s.startswith("home")]
    parts = []
    for s in mis:
        per = summ[s]
        bo = per.get("bo", {}).get("final_regret_median")
        best = min((o for o in per if not o.endswith("notrust")),
                   key=lambda o: (per[o].get("final_regret_median") if per[o].get("final_regret_median") is not None
                                  else 9.0))
        blind = {o: per[o]["final_regret_median"] for o in per if o.endswith("notrust")}
        without = (" (without trust: " + ", ".join(f"`{k.removesuffix('_notrust')}` {num(v)}" for k, v in blind.items())
                   + ")") if blind else ""
        parts.append(f"{s}: final regret `bo` {num(bo)}, `guided` {num(per.get('guided', {}).get('final_regret_median'))}, "
                     f"`gradient` {num(per.get('gradient', {}).get('final_regret_median'))}, "
                     f"`egreedy` {num(per.get('egreedy', {}).get('final_regret_median'))}{without}; best `{best}`")
    det = d["targets"].get("detection_misspecified_fell_within_6_ge_0.8", {}).get("measured", {}).get("fraction")
    return ("**Patients unlike the simulators** (every real patient): the surrogate methods measure their trust in the "
            "model from the trials and fall back to constraint-aware BO when the trials contradict it "
            f"(trust < 0.25 within 6 trials in {pct(det)} of misspecified runs). " + "; ".join(parts)
            + ". When a run says *the model does not know this patient*, the optimizer is already proposing as "
            "constraint-aware BO; adapting the model to the patient (`bfm-stim adapt`) is the way to make the model "
            "useful. Where the best optimizer above is `random`, no model-based method (BO included) beat random "
            "search on that setting: read the note under [Details](#robust) before trusting any of them there.")


def _summary(b: Bench) -> str:
    items: list[str] = []
    if b.has("benchmark"):
        s = b["benchmark"]["benchmark"]["summary"]
        thr = b["benchmark"]["benchmark"]["threshold"]
        order = fastest(s)
        se = min(s, key=lambda o: s[o]["side_effect_trials_total"])
        tests = b["benchmark"]["benchmark"].get("paired_tests") or []
        resolved = any(x.get("p_holm") is not None and x["p_holm"] < 0.05 for x in tests)
        lead = ", ".join(f"`{o}` {trials(s[o]['trials_to_target_median'])} ({num(s[o]['side_effect_trials_total'], 0)})"
                         for o in order[:3])
        advice = (f"Use `{se}`: among the fastest, and the fewest side effects by far."
                  if se in order[:3] and not resolved else
                  f"Use `{se}` when side effects are costly, `{order[0]}` when trials are.")
        items.append(
            f"**Latent targets** (`healthy`, `recording:…`, `latent:…`): fewest trials to regret ≤ {thr} (median; in "
            f"brackets the side-effect trials over {s[order[0]]['runs']} runs): {lead}. `{se}` causes the fewest side "
            f"effects of all ({num(s[se]['side_effect_trials_total'], 0)})."
            + (" The differences in trials are within what this cohort resolves." if tests and not resolved else "")
            + f" {advice} [Details](#optimizers-latent).")
    if b.has("robust"):
        items.append(_robust_advice(b["robust"]))
    if b.has("benchmark_bandpower"):
        s = b["benchmark_bandpower"]["summary"]
        if "guided" in s and "bo" in s:
            heads = b["ranking"].get("biomarker_heads") if b.has("ranking") else None
            items.append(
                f"**Band-power targets** (`bandpower:LO-HI`): use `guided` with a checkpoint that has biomarker heads "
                f"(the shipped one {'does' if heads else 'may not'}): median {trials(s['guided']['trials_to_target_median'])} "
                f"trial{'' if s['guided']['trials_to_target_median'] == 1 else 's'} against `bo`'s "
                f"{trials(s['bo']['trials_to_target_median'])}. With a checkpoint without heads "
                "(`ModelConfig.biomarker_hidden = 0`) the surrogate ranks band power from its mean forecast, which "
                "misleads: use `bo` there. [Details](#optimizers-bandpower).")
    if b.has("ranking"):
        r = b["ranking"]["summary"]
        lat = {f: v["latent/random"]["spearman"]["median"] for f, v in r.items() if "latent/random" in v}
        weak = [f for f, v in lat.items() if v < 0.5]
        se = r.get("bg-beta-v0", {}).get("latent/random", {}).get("top3_side_effects", {}).get("median")
        items.append(
            "**Where the surrogate misleads:** "
            + (f"it ranks stimuli weakly on {', '.join(f'`{f}`' for f in weak)} (Spearman ρ "
               f"{', '.join(num(lat[f]) for f in weak)} against the true cost) — there treat its proposals as informed "
               "guesses and let the trials decide (`bo`); " if weak else "")
            + "it does not model side effects"
            + (f" (on `bg-beta-v0` {num(se, 0)} of its top 3 picks cause one)" if se is not None else "")
            + ", so keep a constraint-aware optimizer (`bo`, `guided`) and the safe-set rule on. [Details](#ranking).")
    if b.has("surrogate"):
        t = b["surrogate"]["targets"]
        items.append(
            f"**Adapting to a patient:** record probe trials if you can — on 2 min of them fine-tuning gives R² "
            f"{num(t['forecast_r2_160ms'])} at 160 ms and {num(t['stim_effect_r2'])} for the stimulation effect; with "
            "seconds of probes keep the anchor (`bfm-stim adapt`'s default); rest alone improves the forecast of "
            "ongoing activity, not of stimulation effects. [Details](#surrogate), [tuning](#adaptation).")
    if b.has("decode"):
        adv = b["decode"]["targets"]["latent_beats_handcrafted_30s"]["measured"]
        if adv.get("stim") is not None and adv["stim"] < 0:
            items.append(
                f"**Decoding:** for detecting stimulation, hand-crafted band power beats the model's latents "
                f"(by {num(-adv['stim'], 2)} balanced accuracy at 30 s of labels); use latents for state decoders that must "
                "transfer across patients. [Details](#decoding).")
    if b.has("adaptive_eval"):
        m = b["adaptive_eval"]["evaluation"]["median"]
        items.append(
            f"**Adaptive stimulation:** the shipped controller keeps {pct(m['adaptive_suppression_ratio'])} of open loop's "
            f"beta suppression with {pct(m['adaptive_charge_fraction'])} of its charge on simulated patients whose beta "
            "bursts are short; titrate the amplitude first, expect closed-loop savings only with long bursts. "
            "[Details](#adaptive).")
    if b.has("session"):
        items.append("**Real time:** the LSL bridge and the loop add milliseconds; leave at least as much rest between "
                     "trials as a proposal takes. [Details](#session), [latency](#latency).")
    return "\n".join(f"- {i}" for i in items)


def _shortfalls(b: Bench) -> str:
    """One line per missed headline target family: what is missed, why, and what to do about it."""
    items = []
    if b.has("surrogate"):
        t = b["surrogate"]["targets"]
        c = t["ceiling_state_oracle"]
        met = t["met"]
        thr = {m.group(1): float(m.group(2)) for k in met if (m := re.fullmatch(r"(\w+?)>=([\d.]+)", k))}
        if not all(met.get(k, True) for k in met if k.startswith("forecast")):
            beyond = thr.get("forecast_40ms") is not None and c["forecast_r2_40ms"] < thr["forecast_40ms"]
            items.append(
                f"**Forecast accuracy** (R² {num(t['forecast_r2_40ms'])} at 40 ms, {num(t['forecast_r2_160ms'])} at 160 ms): "
                f"the best possible forecast of these simulated recordings reaches {num(c['forecast_r2_40ms'], 3)} and "
                f"{num(c['forecast_r2_160ms'])} (the [state oracle](#surrogate))"
                + (", so the 40 ms target is out of reach for any model of the recordings" if beyond else "")
                + "; at 160 ms the gap lies in the predicted stimulation effect and in hidden state"
                + (", and longer training did not close it ([diagnostics](#diagnostics)): a larger model is the next step"
                   if b.diag("continued_pretraining") else "")
                + ". Treat forecasts as approximate and let trials make the final choice.")
    if b.has("ranking"):
        r = b["ranking"]["summary"]
        lat = {f: v["latent/random"] for f, v in r.items() if "latent/random" in v}
        items.append(
            "**Ranking** (ρ " + ", ".join(f"{num(median_of(v['spearman']))} on `{f}`" for f, v in lat.items())
            + f"): the oracle's own repeatability is {' and '.join(num(median_of(v['oracle_ceiling'])) for v in lat.values())}, "
            "so the shortfall is the model's. Its top pick is still a good first trial (better than "
            + " and ".join(pct(1 - median_of(v["top1_percentile"])) for v in lat.values())
            + " of the sample); the optimizers correct it from measured outcomes. [Details](#ranking).")
    if b.has("benchmark"):
        t = b["benchmark"]["targets"].get("guided_le_5_trials")
        if t and t.get("met") is False:
            pre = b["optimizers"]["summary"]["guided"]["trials_to_target_median"] if b.has("optimizers") else None
            tests = b["benchmark"]["benchmark"].get("paired_tests") or []
            sig = any(x.get("p_holm") is not None and x["p_holm"] < 0.05 for x in tests)
            items.append(
                f"**Trials to target on the latent target** (`guided` {trials(t['measured'])}): "
                + (f"the earlier preset measured {trials(pre)} on an earlier checkpoint; " if pre is not None else "")
                + ("no pairwise difference between optimizers is significant over this cohort, so choose by side "
                   "effects and cost per ask rather than by a trial or two" if tests and not sig else
                   "see the paired tests for which differences this cohort resolves")
                + ". [Details](#optimizers-latent).")
    if b.has("session") and b.has("adaptive_eval"):
        st = b["session"]["targets"]
        sup, chg = st.get("adaptive_suppression_vs_open_loop", {}), st.get("adaptive_charge_vs_open_loop", {})
        ceil = b["adaptive_eval"].get("ceiling", {}).get("median", {})
        if sup.get("met") is False or chg.get("met") is False:
            def ok(v: dict) -> bool:
                return v["suppression_ratio"] >= sup["target"] and v["charge_fraction"] <= chg["target"] + 1e-9

            timing = [k for k, v in ceil.items() if k.startswith(("oracle:", "duty:")) and ok(v)]
            amps = [k.split(":")[1].replace("mA", " mA") for k, v in ceil.items() if k.startswith("amplitude:") and ok(v)]
            dyn = ceil.get("dynamics", {})
            items.append(
                f"**Adaptive stimulation's charge saving** (≥ {pct(sup['target'])} of the suppression with ≤ "
                f"{pct(chg['target'])} of the charge): "
                + ("no timing-based controller meets it in these simulated patients, not even one that knows the "
                   "future" if not timing else "some timing-based controllers meet it")
                + (f" — their beta bursts last {num(dyn['burst_median_ms'], 0)} ms (median)" if dyn else "")
                + (f"; a lower constant amplitude ({', '.join(amps)}) does. Titrate the amplitude before adding "
                   "closed-loop control" if amps else "")
                + ". [Details](#adaptive).")
    if b.has("decode") and not b["decode"]["targets"]["latent_beats_handcrafted_30s"]["met"]:
        adv = b["decode"]["targets"]["latent_beats_handcrafted_30s"]["measured"]
        if all(v is not None and v <= 0 for v in adv.values()):
            items.append("**Latents as decoding features**: hand-crafted features decode as well or better with few "
                         "labels on every task; the latents' strength is alignment across patients. [Details](#decoding).")
    return "\n".join(f"- {i}" for i in items)


# ------------------------------------------------------------------------------------ provenance
def _wall(d: Any) -> float | None:
    for path in (("wall_s",), ("timing_s", "total"), ("benchmark", "execution"), ("execution",)):
        v: Any = d
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        if isinstance(v, list) and v and isinstance(v[0], dict):
            v = sum(x.get("wall_s", 0) for x in v)
        if isinstance(v, dict):
            tot = [x for k, x in v.items() if "total" in k and isinstance(x, (int, float))]
            v = sum(tot or [x for x in v.values() if isinstance(x, (int, float))])
        if isinstance(v, (int, float)):
            return float(v)
    return None


def _provenance(b: Bench) -> str:
    shipped = shipped_digest()
    rows = []
    for p in sorted(b.root.glob("*.json")):
        d = b[p.stem]
        dig = checkpoint_digest(d)
        w = _wall(d)
        state = DASH if dig is None else ("shipped" if dig == shipped else "earlier")
        rows.append([f"`bench/{p.name}`", f"`{dig}`" if dig else DASH, state, DASH if w is None else f"{w / 60:.0f} min"
                     if w >= 120 else f"{w:.0f} s"])
    return "\n".join([
        f"The shipped checkpoint's digest is `{shipped}` (first 16 hex digits of its SHA-256). Figures measured on an "
        "earlier checkpoint are kept where no rerun has replaced them; the column says which. A dash: the benchmark "
        "does not use the foundation model, or its file does not record the checkpoint.",
        "",
        table(["file", "checkpoint", "measured on", "wall time"], rows, align="llll")])



# ------------------------------------------------------------------------------------ the page
def render(bench_dir: str | Path | None = None) -> str:
    """The whole results page (Markdown) from the JSON files in ``bench_dir`` (default ``bench/``)."""
    b = Bench(bench_dir)
    secs = sections()
    cpus = b["simulator"]["cpu_count"] if b.has("simulator") else None
    first_seed = min((p["seed"] for p in b["surrogate"]["patients"]), default=None) if b.has("surrogate") else None
    toc = ["- [What this means for you](#summary)", "- [Headline figures](#headline)"]
    toc += [f"- [{s.title}](#{s.anchor})" for s in secs] + ["- [Where each figure comes from](#provenance)"]
    parts = [
        "# Benchmark results",
        "",
        f"_Generated by `{REGEN}` from `bench/*.json`; do not edit by hand: `tests/loops/bench/test_docs.py` fails "
        "when this page differs from what the JSON gives._",
        "",
        "Every figure below comes from a benchmark's JSON file in `bench/`, measured on a "
        + (f"{cpus}-core CPU machine" if cpus else "CPU machine")
        + " unless a section says otherwise. Patients are simulated and drawn from the evaluation cohort"
        + (f" (seeds from {num(first_seed, 0)})" if first_seed is not None else "")
        + ", whose seeds never overlap the pretraining cohort's. Figures are medians over patients (or runs) with "
        "the interquartile range in brackets, unless stated.",
        "",
        "**How to read it.** *Regret* is how far an optimizer's recommended stimulus is from the best one, on "
        "noise-free (oracle) costs: 0 is the optimum; *trials to target* counts the trials until it falls below a "
        "threshold. *R²* scores a forecast (1 perfect, 0 no better than the mean); the *state oracle* is the best "
        "forecast possible from the simulator's hidden state, the ceiling of every R². *Spearman ρ* says how well "
        "predicted costs order stimuli like the true ones. A target in **bold** is missed; each section says why.",
        "",
        "## Contents",
        "",
        *toc,
        "",
        '<a id="summary"></a>',
        "",
        "## What this means for you",
        "",
        _summary(b),
        "",
        '<a id="headline"></a>',
        "",
        "## Headline figures",
        "",
        readme_table(bench_dir, link=""),
        "",
        "### What falls short, and why",
        "",
        _shortfalls(b),
        "",
    ]
    parts += [_section(s, b) for s in secs]
    parts += ['<a id="provenance"></a>', "", "## Where each figure comes from", "", _provenance(b), ""]
    text = "\n".join(parts)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip("\n") + "\n"


def replace_block(text: str, block: str) -> str | None:
    """``text`` with what lies between the README markers replaced by ``block``; None without the markers."""
    i, j = text.find(START), text.find(END)
    if i < 0 or j < i:
        return None
    return text[: i + len(START)] + "\n" + block + "\n" + text[j:]


def check_readme(path: str | Path = README, bench_dir: str | Path | None = None) -> str | None:
    """None when ``path`` holds exactly :func:`readme_table` between the markers, else what is wrong."""
    path = Path(path)
    text = path.read_text()
    new = replace_block(text, readme_table(bench_dir))
    if new is None:
        return f"{path.name} has no `{START}` … `{END}` markers for the benchmark table"
    if new != text:
        return f"{path.name}: the benchmark table is stale (bench/*.json changed); run `{REGEN}`"
    return None


def write(bench_dir: str | Path | None = None, *, page: str | Path = PAGE, readme: str | Path | None = README) -> list[Path]:
    """Write the page (and README's table where the markers are); returns the files written."""
    page = Path(page)
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render(bench_dir))
    out = [page]
    if readme is not None and Path(readme).is_file():
        text = Path(readme).read_text()
        new = replace_block(text, readme_table(bench_dir))
        if new is not None and new != text:
            Path(readme).write_text(new)
            out.append(Path(readme))
    return out


def check(bench_dir: str | Path | None = None, *, page: str | Path = PAGE, readme: str | Path | None = README) -> list[str]:
    """What is stale: messages naming the file and the command that regenerates it (empty when up to date)."""
    page = Path(page)
    problems = []
    if not page.is_file():
        problems.append(f"{page.name} is missing; run `{REGEN}`")
    elif page.read_text() != render(bench_dir):
        problems.append(f"{page.name} is stale: it differs from what bench/*.json gives; run `{REGEN}`")
    if readme is not None and Path(readme).is_file() and START in Path(readme).read_text():
        msg = check_readme(readme, bench_dir)
        if msg:
            problems.append(msg)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loops.bench.docs", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/results.md or README's table is stale")
    ap.add_argument("--bench", default=None, help="folder of the benchmark JSON files (default bench/)")
    ap.add_argument("--out", default=str(PAGE), help="the page to write or check (default docs/results.md)")
    ap.add_argument("--readme", default=str(README), help="README with the table markers (default README.md)")
    a = ap.parse_args(argv)
    if a.check:
        problems = check(a.bench, page=a.out, readme=a.readme)
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    for p in write(a.bench, page=a.out, readme=a.readme):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
