"""``bfm-stim benchmark``: run a benchmark declared in TOML and write its report.

    bfm-stim benchmark --config benchmark --out runs/benchmark       # a bundled config, or a TOML file
    bfm-stim benchmark --quick --out runs/benchmark-quick            # the bundled benchmark-quick
    bfm-stim benchmark --config ... --out ... --executor ray [--address ray://head:10001]
    bfm-stim report runs/benchmark                                   # rebuild the report

Restarting with the same ``--out`` skips the runs already finished.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from bfm_stim.exceptions import ValidationError

__all__ = ["add_arguments", "run"]

DEFAULT_CONFIG = "benchmark"  # bundled configs (loops/configs/), never looked up in the current directory
QUICK_CONFIG = "benchmark-quick"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``bfm-stim benchmark``."""
    p = parser
    p.add_argument("--config", default=None,
                   help=f"benchmark TOML, or a bundled config's name (default {DEFAULT_CONFIG}; with --quick "
                        f"{QUICK_CONFIG}; see `bfm-stim configs`)")
    p.add_argument("--out", default=None, help="results folder; rerunning with the same folder resumes "
                   "(default runs/benchmark, runs/benchmark-quick with --quick)")
    p.add_argument("--executor", choices=["local", "ray"], default=None, help="override [executor] kind")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--workers", type=int, default=None, help="local processes / local Ray CPUs (override)")
    p.add_argument("--max-pending", type=int, default=None, help="Ray: tasks in flight at most (override)")
    p.add_argument("--quick", action="store_true", help=f"the small config ({QUICK_CONFIG}) unless --config is given")
    p.add_argument("--n-patients", type=int, default=None, help="override [cohort] n_patients")
    p.add_argument("--seeds", type=int, default=None, help="override [benchmark] seeds")
    p.add_argument("--budget", type=int, default=None, help="override [benchmark] budget")
    p.add_argument("--optimizers", default=None, help="comma-separated labels: run only these optimizers")
    p.add_argument("--no-report", action="store_true", help="only run (build it later with `bfm-stim report OUT`)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check_opt(name: str, v: int | None, lo: int) -> None:
    if v is not None and v < lo:
        raise ValidationError(name, v, f"an integer >= {lo}")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark ``args`` describe; print where the report is. Returns the exit status."""
    from loops.benchmark.config import load_config
    from loops.benchmark.executors import run_benchmark
    from loops.config_files import bundled_config, config_path

    cfg_path = (config_path(args.config, what="benchmark config") if args.config
                else bundled_config(QUICK_CONFIG if args.quick else DEFAULT_CONFIG))
    out = Path(args.out or ("runs/benchmark-quick" if args.quick and not args.config else "runs/benchmark"))
    for name, v, lo in (("--workers", args.workers, 1), ("--max-pending", args.max_pending, 1),
                        ("--n-patients", args.n_patients, 1), ("--seeds", args.seeds, 1), ("--budget", args.budget, 1)):
        _check_opt(name, v, lo)
    cfg = load_config(cfg_path)
    if args.n_patients is not None:
        cfg = dataclasses.replace(cfg, cohort=dataclasses.replace(cfg.cohort, n_patients=args.n_patients))
    if args.seeds is not None or args.budget is not None:
        cfg = dataclasses.replace(cfg, seeds=args.seeds or cfg.seeds, budget=args.budget or cfg.budget)
    if args.optimizers:
        want = [o.strip() for o in args.optimizers.split(",") if o.strip()]
        labels = [o.label for o in cfg.optimizers]
        bad = [o for o in want if o not in labels]
        if bad:
            raise ValidationError("--optimizers", bad, f"labels among {labels}")
        cfg = dataclasses.replace(cfg, optimizers=tuple(o for o in cfg.optimizers if o.label in want))
    cfg = cfg.with_executor(kind=args.executor, workers=args.workers, address=args.address,
                            max_pending=args.max_pending)
    rec = run_benchmark(cfg, out, progress=not args.no_progress, report=not args.no_report)
    print(f"{rec['ran']} runs done, {rec['skipped']} skipped (already in {out}), {rec['failures']} not ok; "
          f"{rec['wall_s']:.1f} s on {rec['executor']} with {rec['workers']} workers")
    if "report" in rec:
        import json

        s = json.loads((out / "summary.json").read_text())
        p = s["primary_threshold"]
        print(f"{'optimizer':14s} {'trials to ' + format(p, 'g'):>14s} {'final regret':>12s} {'side eff.':>9s} "
              f"{'violations':>10s} {'s/ask':>7s}")
        for o in (e.label for e in cfg.optimizers):
            if o not in s["summary"]:
                continue
            v = s["summary"][o]
            print(f"{o:14s} {v['trials_to_target_median']:14.1f} {v['final_regret_median']:12.3g} "
                  f"{v['side_effect_trials_total']:9d} {v['hard_violations']:10d} {v['s_per_ask_median']:7.3f}")
        print(f"wrote {rec['report']} (and report.md, summary.json, summary.csv, runs.csv, trials.csv)")
    return 0
