"""``bench/benchmark.json``: the harness' figures and its targets, measured on the machine that runs it.

    python -m loops.benchmark.figures --full runs/benchmark --json bench/benchmark.json
    python -m loops.benchmark.figures --bandpower runs/benchmark-bandpower --note "..."

* From a finished benchmark folder (``--full``, the default config or a stated reduction of it): per
  optimizer the median and IQR of trials to gap-normalized regret <= 0.05, final regret, side-effect
  trials, hard violations, seconds per ask; and the targets (zero hard violations; ``guided`` needs
  fewer trials than every external optimizer; ``bo`` no more than Optuna's GP sampler, with fewer
  side-effect trials).
* The quick config (the bundled ``benchmark-quick``) end to end as a user runs it, report included,
  in a fresh process with an empty oracle cache: its wall time (target < 5 min on 2 cores).
* Scale, on the same work (the quick config's cells): runs per minute for the local executor with 1
  and 2 workers and for Ray (local instance, 2 CPUs), Ray's overhead per task (submit-to-result time
  minus the run's own time, pending tasks capped at the workers so none queues), and whether Ray's
  rows equal the local ones (all but timings).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bfm_stim._logging import get_logger

log = get_logger("loops.benchmark.figures")
REPO = Path(__file__).resolve().parents[2]
EXTERNAL_LABELS = ("optuna_tpe", "optuna_gp", "nevergrad")


def _check(measured: Any, target: str, met: bool | None) -> dict[str, Any]:
    return {"measured": measured, "target": target, "met": None if measured is None else bool(met)}


def targets(summary: dict[str, Any]) -> dict[str, Any]:
    """The targets on a ``summary.json``'s per-optimizer figures."""
    s = summary["summary"]
    med = {o: v["trials_to_target_median"] for o, v in s.items()}
    t: dict[str, Any] = {}
    hv = {o: v["hard_violations"] for o, v in s.items()}
    t["zero_hard_violations"] = _check(hv, "0 for every optimizer", all(v == 0 for v in hv.values()))
    ext = {o: med[o] for o in EXTERNAL_LABELS if o in med}
    if "guided" in med and ext:
        t["guided_fewer_trials_than_every_external"] = _check(
            {"guided": med["guided"], **ext}, "guided median < each external median",
            all(med["guided"] < v for v in ext.values()))
    if "bo" in med and "optuna_gp" in med:
        t["bo_no_more_trials_than_optuna_gp"] = _check({"bo": med["bo"], "optuna_gp": med["optuna_gp"]},
                                                      "bo median <= optuna_gp median", med["bo"] <= med["optuna_gp"])
        se = {o: s[o]["side_effect_trials_total"] for o in ("bo", "optuna_gp")}
        t["bo_fewer_side_effect_trials_than_optuna_gp"] = _check(se, "bo < optuna_gp (total over runs)",
                                                                 se["bo"] < se["optuna_gp"])
    if all(o in med for o in ("guided", "bo", "random")):  # the surrogate's latent-target figures
        g = med["guided"]
        t["guided_le_5_trials"] = _check(g, "guided median <= 5", g <= 5)
        t["guided_3x_fewer_trials_than_bo"] = _check({"guided": g, "bo": med["bo"], "ratio": med["bo"] / g},
                                                     "bo / guided >= 3", med["bo"] >= 3 * g)
        t["guided_6x_fewer_trials_than_random"] = _check({"guided": g, "random": med["random"],
                                                          "ratio": med["random"] / g}, "random / guided >= 6",
                                                         med["random"] >= 6 * g)
    return t


def bandpower_targets(summary: dict[str, Any]) -> dict[str, Any]:
    """The band-power targets: ``guided`` needs >= 2x fewer trials than ``bo`` and fewer side-effect trials."""
    s = summary["summary"]
    g, b = s["guided"], s["bo"]
    return {
        "guided_2x_fewer_trials_than_bo": _check(
            {"guided": g["trials_to_target_median"], "bo": b["trials_to_target_median"]}, "guided <= bo / 2",
            g["trials_to_target_median"] <= b["trials_to_target_median"] / 2),
        "guided_fewer_side_effect_trials_than_bo": _check(
            {"guided": g["side_effect_trials_total"], "bo": b["side_effect_trials_total"]}, "guided < bo",
            g["side_effect_trials_total"] < b["side_effect_trials_total"]),
        "zero_hard_violations": _check({o: v["hard_violations"] for o, v in s.items()}, "0 for every optimizer",
                                       all(v["hard_violations"] == 0 for v in s.values()))}


def bandpower(run: Path, path: Path, note: str) -> dict[str, Any]:
    """``bench/benchmark_bandpower.json``: a finished band-power run's summary, its note and targets."""
    s = json.loads((run / "summary.json").read_text())
    meta = json.loads((run / "benchmark.json").read_text())
    out = {**s, "config": meta["config"], "config_hash": meta["config_hash"], "note": note,
           "targets": bandpower_targets(s)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, sort_keys=True, default=float) + "\n")
    return out["targets"]


def quick_run(out: Path) -> dict[str, Any]:
    """``bfm-stim benchmark --quick`` in a fresh process with an empty oracle cache; wall time and outputs."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="bfm-quick-cache-") as cache:
        env["BFM_STIM_CACHE"] = cache
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "loops.cli", "-q", "benchmark", "--quick", "--out", str(out),
                            "--no-progress"], cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if p.returncode:
        raise RuntimeError(f"quick benchmark failed ({p.returncode}): {p.stderr[-2000:]}")
    plots = sorted(x.name for x in (out / "plots").glob("*.png"))
    html = (out / "report.html").read_text()
    return {"wall_s": wall, "runs": len(json.loads((out / "benchmark.json").read_text())["cell_ids"]),
            "plots": plots, "report_images_embedded": html.count("data:image/png;base64,"),
            "oracle_cache": "empty at start"}


def scale(out: Path) -> dict[str, Any]:
    """Runs per minute of the quick config's cells: local 1 and 2 workers, Ray with 2 CPUs."""
    from loops.benchmark.cells import expand
    from loops.benchmark.config import load_config
    from loops.benchmark.executors import LocalExecutor, RayExecutor, Store, execute
    from loops.config_files import bundled_config

    cfg = load_config(bundled_config("benchmark-quick"))
    cells = expand(cfg)
    res: dict[str, Any] = {"work": f"the bundled benchmark-quick config: {len(cells)} runs (oracle optima cached)"}
    execute(cfg, cells, out / "warm", progress=False, executor=LocalExecutor(2))  # oracle cache and imports warm
    for name, ex in (("local_1", LocalExecutor(1)), ("local_2", LocalExecutor(2))):
        rec = execute(cfg, cells, out / name, progress=False, executor=ex)
        res[name] = {"wall_s": rec["wall_s"], "runs_per_min": 60 * len(cells) / rec["wall_s"]}
    ex = RayExecutor(2, max_pending=2)
    t0 = time.perf_counter()
    ray = ex._init()  # a local instance, as `--executor ray` starts it
    init_s = time.perf_counter() - t0
    try:
        rec = execute(cfg, cells, out / "ray", progress=False, executor=ex)

        @ray.remote(num_cpus=1)
        def noop(x: Any) -> Any:
            return x

        payload = Store(out / "ray").results([cells[0].id])[0]
        ray.get(noop.remote(payload))
        rt = []
        for _ in range(20):
            t1 = time.perf_counter()
            ray.get(noop.remote(payload))
            rt.append(time.perf_counter() - t1)
    finally:
        ray.shutdown()
    import numpy as np

    runs = [r["run_s"] for r in Store(out / "ray").results([c.id for c in cells])]
    res["ray_2"] = {"wall_s": rec["wall_s"], "runs_per_min": 60 * len(cells) / rec["wall_s"], "ray_init_s": init_s,
                    "overhead_per_task_s_median": rec.get("ray_overhead_s_median"),
                    "overhead_per_task_s_max": rec.get("ray_overhead_s_max"),
                    "noop_round_trip_s_median": float(np.median(rt)),
                    "run_s_median": float(np.median(runs)), "run_s_mean": float(np.mean(runs))}
    res["ray_2"]["overhead_fraction_of_run"] = res["ray_2"]["overhead_per_task_s_median"] / res["ray_2"]["run_s_median"]
    def comparable(rs: list[dict]) -> list[dict]:
        return [{**{k: v for k, v in r.items() if k not in ("run_s", "worker")},
                 "rows": [{k: v for k, v in row.items() if not k.endswith("_s")} for row in r["rows"]]} for r in rs]

    ids = [c.id for c in cells]
    local2 = comparable(Store(out / "local_2").results(ids))
    res["ray_rows_equal_local"] = comparable(Store(out / "ray").results(ids)) == local2
    res["local_1_rows_equal_local_2"] = comparable(Store(out / "local_1").results(ids)) == local2
    rss = [r["worker"].get("max_rss_mb") for r in Store(out / "ray").results(ids) if r.get("worker")]
    res["ray_2"]["worker_max_rss_mb"] = max((x for x in rss if x), default=None)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", default="runs/benchmark", help="results folder of the default config's run")
    ap.add_argument("--json", default="bench/benchmark.json")
    ap.add_argument("--work", default="runs/benchmark-figures", help="scratch folder of the quick and scale runs")
    ap.add_argument("--skip-quick", action="store_true")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--note", default="", help="what was run, stated in the JSON (e.g. a reduced default config)")
    ap.add_argument("--bandpower", default=None, metavar="DIR",
                    help="instead: a finished benchmark-bandpower run -> --json (its own file)")
    a = ap.parse_args(argv)
    if a.bandpower:
        if a.json == "bench/benchmark.json":
            a.json = "bench/benchmark_bandpower.json"
        print(json.dumps(bandpower(Path(a.bandpower), Path(a.json), a.note), indent=1))
        return 0
    path = Path(a.json)
    old = json.loads(path.read_text()) if path.is_file() else {}
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = dict(old)
    if not a.skip_quick:
        import shutil

        shutil.rmtree(work / "quick", ignore_errors=True)
        out["quick"] = quick_run(work / "quick")
    if not a.skip_scale:
        import shutil

        shutil.rmtree(work / "scale", ignore_errors=True)
        out["scale"] = scale(work / "scale")
    full = Path(a.full)
    if (full / "summary.json").is_file():
        s = json.loads((full / "summary.json").read_text())
        meta = json.loads((full / "benchmark.json").read_text())
        keep = ("runs", "status", "trials_to_target_median", "trials_to_target_iqr", "reached", "final_regret_median",
                "final_regret_iqr", "side_effect_trials_total", "side_effect_trials_median", "hard_violations",
                "s_per_ask_median", "run_s_median")
        out["benchmark"] = {
            "config": meta["config"], "config_hash": meta["config_hash"], "note": a.note or old.get("benchmark", {}).get("note", ""),
            "patients": s["patients"], "families": s["families"], "seeds": s["seeds"], "budget": s["budget"],
            "runs": s["results"], "objective": s["objective"], "threshold": s["primary_threshold"],
            "regret": s["regret"], "execution": meta["execution"],
            "summary": {o: {k: v[k] for k in keep} for o, v in s["summary"].items()},
            "ert": {o: {t: d["ert"] for t, d in v["by_threshold"].items()} for o, v in s["summary"].items()},
            "paired_tests": s["paired_tests"], "failures": s["failures"]}
        out["targets"] = targets(s)
    tg = out.setdefault("targets", {})
    if "scale" in out:
        sc = out["scale"]
        tg["ray_equals_local"] = _check(sc["ray_rows_equal_local"], "identical rows (all but timings)",
                                        sc["ray_rows_equal_local"])
        tg["ray_overhead_le_5pct_of_run"] = _check(sc["ray_2"]["overhead_fraction_of_run"], "<= 0.05",
                                                   sc["ray_2"]["overhead_fraction_of_run"] <= 0.05)
    if "quick" in out:
        tg["quick_config_under_5_min"] = _check(out["quick"]["wall_s"], "< 300 s on 2 cores, report with plots",
                                                out["quick"]["wall_s"] < 300 and len(out["quick"]["plots"]) >= 4)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, sort_keys=True, default=float) + "\n")
    print(json.dumps(out["targets"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
