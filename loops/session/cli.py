"""Arguments and handler of ``bfm-stim session`` (wired into :mod:`loops.cli`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="session TOML, or a bundled config's name (session; see "
                   "`bfm-stim configs`); not with --resume")
    p.add_argument("--out", default=None, help="session directory to create (default: sessions/<time>)")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue the session in DIR after a crash or stop")
    p.add_argument("--export-bids", default=None, metavar="BIDS_ROOT",
                   help="write the session in --out (or --resume) DIR as BIDS iEEG under BIDS_ROOT and exit")
    p.add_argument("--source-id", default=None, help="override [device] source_id")
    p.add_argument("--budget", type=int, default=None, help="override [trials] budget")
    p.add_argument("--optimizer", default=None, help="override [trials] optimizer")
    p.add_argument("--no-live", action="store_true", help="log lines instead of the live terminal view")


def run(args: argparse.Namespace) -> int:
    from bfm_stim.exceptions import ConfigError
    from loops.config_files import config_path
    from loops.session.config import load_config
    from loops.session.runner import run_session

    if args.export_bids:
        from loops.session.bids import export_bids

        d = args.resume or args.out
        if not d:
            raise ConfigError("--export-bids needs the session directory: --out DIR (or --resume DIR)")
        print(f"wrote {export_bids(Path(d), Path(args.export_bids))}")
        return 0
    if args.resume:
        if args.config:
            raise ConfigError("--resume DIR continues with the config stored in DIR; drop --config")
        summary = run_session(None, args.resume, resume=True, live=False if args.no_live else None)
        out = Path(args.resume)
    else:
        if not args.config:
            raise ConfigError("give --config FILE (or `--config session`, the bundled example), or --resume DIR")
        src = config_path(args.config, what="session config")
        cfg = load_config(src)
        for table, key, val in (("device", "source_id", args.source_id), ("trials", "budget", args.budget),
                                ("trials", "optimizer", args.optimizer)):
            if val is not None:
                cfg = cfg.replace(table, **{key: val})
        import time

        import shutil

        out = Path(args.out or f"sessions/{time.strftime('%Y%m%d-%H%M%S')}")
        if (out / "trials.jsonl").exists():
            raise ConfigError(f"{out} already holds a session; continue it with `bfm-stim session --resume {out}` "
                              "or choose another --out")
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out / "config.toml")
        summary = run_session(cfg, out, live=False if args.no_live else None)
    print(json.dumps(summary, indent=1, default=str))
    print(f"session directory: {out}  (report: {out / 'report' / 'index.html'})")
    return 0 if summary.get("end_reason") not in ("error", "no_valid_data") else 1
