"""The benchmark's summary and report, rebuilt from a results folder alone.

:func:`build_report` reads ``OUT/benchmark.json`` (the resolved config and the cell ids) and
``OUT/cells/*.json`` and writes:

* ``summary.json`` — per optimizer (and per optimizer within each family): runs and their status,
  trials to the primary target (median, IQR, bootstrap 95 % interval of the median, censored at
  ``budget + 1``), ERT and successes per threshold, final regret, side-effect trials, hard violations,
  seconds per ask; the paired tests, the win-rate matrix, the ECDF and regret bands; config hash and
  versions;
* ``summary.csv`` (one row per optimizer), ``runs.csv`` (one per run), ``trials.csv`` (one per trial);
* ``plots/*.png`` and ``report.html`` (images embedded as base64: one file to send) with ``report.md``
  beside it (the same tables, images linked from ``plots/``).
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from pathlib import Path
from typing import Any

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ConfigError
from loops.benchmark import metrics as M
from loops.benchmark import plots

__all__ = ["build_report", "write_summary", "summarize", "load_results"]

log = get_logger("loops.benchmark.report")


def load_results(out_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(``benchmark.json`` contents, the stored results of its cells in cell order)."""
    from loops.benchmark.executors import Store

    meta_path = out_dir / "benchmark.json"
    if not meta_path.is_file():
        raise ConfigError(f"{out_dir}: no benchmark.json; give the --out folder of `bfm-stim benchmark`")
    meta = json.loads(meta_path.read_text())
    return meta, Store(out_dir).results(meta["cell_ids"])


def summarize(meta: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    """Every figure of the report as JSON-ready data."""
    cfg = meta["config"]
    th = [float(t) for t in cfg["metrics"]["thresholds"]]
    primary = float(cfg["metrics"]["primary_threshold"])
    budget = int(cfg["budget"])
    runs = M.run_records(results, th)
    fams = list(dict.fromkeys(r["family"] for r in runs))
    n_boot = int(cfg["metrics"]["bootstrap"])
    bands = {f: {o: M.bootstrap_band([r for r in runs if r["family"] == f and r["optimizer"] == o], budget,
                                     n_boot=n_boot, seed=0)
                 for o in dict.fromkeys(r["optimizer"] for r in runs if r["family"] == f)} for f in fams}
    versions = next((r["manifest"].get("versions") for r in results if r["manifest"].get("versions")), None)
    return {
        "name": cfg["name"], "config_hash": meta["config_hash"], "budget": budget, "seeds": cfg["seeds"],
        "thresholds": th, "primary_threshold": primary, "cells": len(meta["cell_ids"]), "results": len(results),
        "patients": len({r["patient"] for r in runs}), "families": fams,
        "objective": next((r["manifest"].get("objective") for r in results if r["manifest"].get("objective")), None),
        "regret": "(c(rec) - c_opt) / (c_off - c_opt) on oracle costs; c_opt, c_off from the manifest's oracle",
        "summary": M.optimizer_summary(runs, th, primary, n_boot=n_boot),
        "summary_by_family": {f: M.optimizer_summary([r for r in runs if r["family"] == f], th, primary,
                                                     n_boot=n_boot) for f in fams},
        "paired_tests": M.paired_tests(runs, primary), "win_rate": M.win_rate(runs, primary),
        "ecdf": M.ecdf(runs, th, budget), "regret_bands": bands, "versions": versions,
        "failures": [{"cell_id": r["cell_id"], "patient": r["patient"], "optimizer": r["optimizer"], "seed": r["seed"],
                      "status": r["status"], "error": (r["error"] or "").split(" | ")[0]}
                     for r in runs if r["status"] != "ok"],
        "execution": meta.get("execution", []),
    }, runs


def _csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        if not rows:
            return
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "∞" if math.isinf(v) else ("–" if math.isnan(v) else f"{v:.3g}")
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return "–" if v is None else str(v)


def _tables(s: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    th, p = s["thresholds"], s["primary_threshold"]
    summ = s["summary"]
    t1 = ("Trials to target, regret and safety", ["optimizer", "runs", f"trials to {p:g} (median)", "IQR",
           "median 95% CI (bootstrap)", f"reached {p:g}", "final regret (median)", "side-effect trials",
           "hard violations", "s per ask", "status"],
          [[o, v["runs"], v["trials_to_target_median"], v["trials_to_target_iqr"], v.get("trials_to_target_ci95"),
            v["reached"], v["final_regret_median"], v["side_effect_trials_total"], v["hard_violations"], v["s_per_ask_median"],
            ", ".join(f"{k} {n}" for k, n in v["status"].items())] for o, v in summ.items()])
    t2 = ("Expected running time (COCO ERT, trials) per target", ["optimizer"] + [f"ERT {t:g}" for t in th]
          + [f"reached {t:g}" for t in th],
          [[o] + [v["by_threshold"][str(t)]["ert"] for t in th] + [v["by_threshold"][str(t)]["reached"] for t in th]
           for o, v in summ.items()])
    t3 = (f"Paired Wilcoxon tests over patients (trials to {p:g}; Holm-corrected)",
          ["a", "b", "patients", "median a - b", "p", "p (Holm)"],
          [[r["a"], r["b"], r["n_patients"], r["median_diff"], r["p"], r["p_holm"]] for r in s["paired_tests"]])
    fam_rows = [[f, o, v["runs"], v["trials_to_target_median"], v["final_regret_median"], v["side_effect_trials_total"]]
                for f, d in s["summary_by_family"].items() for o, v in d.items()]
    t4 = ("Per family", ["family", "optimizer", "runs", f"trials to {p:g}", "final regret", "side-effect trials"],
          fam_rows)
    t5 = ("Runs that did not finish cleanly", ["optimizer", "patient", "seed", "status", "error"],
          [[r["optimizer"], r["patient"], r["seed"], r["status"], r["error"]] for r in s["failures"]])
    return [t1, t2, t4, t3, t5]


def _html(s: dict[str, Any], images: list[tuple[str, Path]]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>bfm-stim benchmark: {html.escape(s['name'])}"
             "</title><style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;"
             "text-align:right}th{background:#eee}td:first-child{text-align:left}img{max-width:100%}</style></head><body>",
             f"<h1>Benchmark: {html.escape(s['name'])}</h1>",
             f"<p>{s['patients']} patients ({', '.join(map(html.escape, s['families']))}) × {s['seeds']} seeds, budget "
             f"{s['budget']}; {s['results']} of {s['cells']} runs stored. Objective: {html.escape(str(s['objective']))}. "
             f"Regret = {html.escape(s['regret'])}. Config hash <code>{s['config_hash']}</code>.</p>"]
    for title, head, rows in _tables(s):
        if not rows:
            continue
        parts.append(f"<h2>{html.escape(title)}</h2><table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
                     + "</tr>" + "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>"
                                         for r in rows) + "</table>")
    for title, path in images:
        b64 = base64.b64encode(path.read_bytes()).decode()
        parts.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{b64}'>")
    parts.append(f"<p><small>versions: {html.escape(json.dumps(s['versions']))}</small></p></body></html>")
    return "\n".join(parts)


def _md(s: dict[str, Any], images: list[tuple[str, Path]], out_dir: Path) -> str:
    lines = [f"# Benchmark: {s['name']}", "",
             f"{s['patients']} patients ({', '.join(s['families'])}) × {s['seeds']} seeds, budget {s['budget']}; "
             f"{s['results']} of {s['cells']} runs stored. Objective: {s['objective']}. Regret = {s['regret']}. "
             f"Config hash `{s['config_hash']}`.", ""]
    for title, head, rows in _tables(s):
        if not rows:
            continue
        lines += [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(_fmt(v).replace("|", "/") for v in r) + " |" for r in rows]
        lines.append("")
    for title, path in images:
        lines += [f"## {title}", "", f"![{title}]({path.relative_to(out_dir).as_posix()})", ""]
    return "\n".join(lines)


def write_summary(out_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Write ``summary.json``, ``summary.csv``, ``runs.csv`` and ``trials.csv``; return (summary, runs, results)."""
    out_dir = Path(out_dir)
    meta, results = load_results(out_dir)
    s, runs = summarize(meta, results)
    (out_dir / "summary.json").write_text(json.dumps(s, indent=1, sort_keys=True, default=float))
    _csv(out_dir / "summary.csv", [{"optimizer": o, **{k: v for k, v in d.items() if not isinstance(v, dict)}}
                                   for o, d in s["summary"].items()])
    _csv(out_dir / "runs.csv", [{k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in r.items()
                                 if k != "regret"} for r in runs])
    trows = []
    for res in results:
        c = res["cell"]
        for r in res["rows"]:
            trows.append({"cell_id": c["id"], "optimizer": c["optimizer"]["label"], "patient": c["patient"]["target"],
                          "patient_seed": c["patient"]["seed"], "seed": c["seed"], "status": res["status"],
                          **{k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in r.items()}})
    _csv(out_dir / "trials.csv", trows)
    return s, runs, results


def build_report(out_dir: Path) -> Path:
    """Write the summary files, plots, ``report.html`` and ``report.md`` of a results folder; return the HTML path."""
    out_dir = Path(out_dir)
    s, runs, _ = write_summary(out_dir)
    pdir = out_dir / "plots"
    pdir.mkdir(exist_ok=True)
    images: list[tuple[str, Path]] = []
    if runs:
        images = [
            ("Regret of the recommendation (median, 95% bootstrap band over patients)",
             plots.plot_regret(s["regret_bands"], s["thresholds"], pdir / "regret.png")),
            ("ECDF of trials to target", plots.plot_ecdf(s["ecdf"], s["budget"], s["thresholds"], pdir / "ecdf.png")),
            ("Win rate", plots.plot_win_rate(s["win_rate"], pdir / "win_rate.png")),
            ("Side effects, safety and seconds per ask", plots.plot_safety(s["summary"], pdir / "safety.png")),
        ]
    (out_dir / "report.md").write_text(_md(s, images, out_dir))
    path = out_dir / "report.html"
    path.write_text(_html(s, images))
    log.info("report: %s (%d runs)", path, len(runs))
    return path
