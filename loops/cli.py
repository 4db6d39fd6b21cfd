"""The ``bfm-stim`` command.

One subcommand per job; each imports what it needs only when it runs, so ``bfm-stim --help`` is
fast. Errors from the package's hierarchy (and file errors with a file name) are printed as one
clear line (no traceback unless ``-v``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from bfm_stim import __version__
from bfm_stim._logging import log_to_stderr
from bfm_stim.exceptions import BfmStimError, ConfigError, ValidationError

log = logging.getLogger("bfm_stim")
PRETRAIN_CONFIG = "pretrain-small"  # the bundled default of `bfm-stim pretrain`



def _write_json(path: str, payload: dict) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text + "\n")
    print(text)
    print(f"wrote {path}")


# --- handlers ---------------------------------------------------------------------------------
def _cmd_patients(args: argparse.Namespace) -> int:
    import simulators

    from simulators.registry import is_held_out

    import shutil
    import textwrap

    rows = simulators.list_patients()
    w = max(len(pid) for pid, _ in rows) + 2
    width = max(shutil.get_terminal_size((100, 24)).columns, w + 40)
    for pid, desc in rows:
        mark = " [held out of pretraining: the out-of-distribution test bed]" if is_held_out(pid) else ""
        # the description wraps in its own column, so the ids stay a column of their own
        print(textwrap.fill(desc + mark, width=width, initial_indent=f"{pid:<{w}}", subsequent_indent=" " * w))
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from loops.simulate import simulate_to_file

    out = simulate_to_file(
        patient=args.patient, seed=args.seed, duration_s=args.duration, stimulus_file=args.stimulus,
        out=args.out, onset_s=args.onset, regime=args.regime, overwrite=args.overwrite,
    )
    print(f"wrote {out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from loops.demo import run_demo

    for line in run_demo(Path(args.out), seed=args.seed, speed=args.speed, budget=args.budget,
                         live=False if args.no_live else None):
        print(line)
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from bfm_stim.lsl.protocol import keygen

    target = args.out or args.file
    if not target:
        raise ConfigError("keygen: give the key file to write, e.g. `bfm-stim keygen session.key`")
    path = keygen(target, overwrite=args.force)
    print(f"wrote session key {path} (mode 0600); give it to both the session and the device")
    return 0


def _serve(argv: list[str]) -> int:
    from simulators.stream import main as serve_main

    return int(serve_main(argv, prog="bfm-stim serve") or 0)


def _play(argv: list[str]) -> int:
    from simulators.playback import main as play_main

    return int(play_main(_bundled_value(argv, "--space"), prog="bfm-stim play") or 0)


def _bundled_value(argv: list[str], flag: str) -> list[str]:
    """``argv`` with the value of ``flag`` (``FLAG V`` or ``FLAG=V``) made a path: a bundled config's name
    becomes its file (:func:`loops.config_files.config_path`), for the parsers of ``serve``/``play``."""
    from loops.config_files import config_path

    out = list(argv)
    for i, a in enumerate(out):
        if a == flag and i + 1 < len(out):
            out[i + 1] = str(config_path(out[i + 1], what=flag))
        elif a.startswith(flag + "="):
            out[i] = f"{flag}={config_path(a.split('=', 1)[1], what=flag)}"
    return out


_PASSTHROUGH: dict[str, Callable[[list[str]], int]] = {"serve": _serve, "play": _play}


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from loops.config_files import bundled_config
    from loops.pretrain import main as pretrain_main

    config = args.config if args.config is not None else bundled_config(PRETRAIN_CONFIG)
    summary = pretrain_main(config, args.out, resume=args.resume, steps=args.steps, progress=not args.quiet,
                            minutes=args.minutes, batch_size=args.batch_size, init_from=args.init_from, lr=args.lr)
    print(json.dumps(summary, indent=1, default=str))
    return 0


def _cmd_configs(args: argparse.Namespace) -> int:
    from loops.config_files import CONFIG_DIR, bundled_config, bundled_configs, copy_config, description

    if args.name is None:
        if args.out is not None:
            raise ConfigError("--out copies one config: name it, e.g. `bfm-stim configs session --out my-session.toml`")
        configs = bundled_configs()
        width = max((len(n) for n in configs), default=0)
        for name, path in configs.items():
            print(f"{name:{width}s}  {description(path)}")
        print(f"\n{len(configs)} configs in {CONFIG_DIR}; give a name wherever a command takes a config file "
              "(--config session), or copy one to edit: bfm-stim configs NAME --out FILE")
        return 0
    if args.out is None:  # show it
        print(bundled_config(args.name).read_text(encoding="utf-8"), end="")
        return 0
    path = copy_config(args.name, args.out, overwrite=args.force)
    print(f"wrote {path} (a copy of the bundled {args.name.removesuffix('.toml')}); edit it and give its path "
          "where the name went")
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    from loops.decode import embed_recording, embed_stream

    if (args.recording is None) == (args.stream is None):
        raise ConfigError("embed needs a RECORDING file or --stream SOURCE_ID (one of them)")
    if args.stream is not None:
        res = embed_stream(args.stream, args.out, source=args.checkpoint, duration_s=args.duration,
                           rest_s=args.rest_s or 10.0)
    else:
        res = embed_recording(args.recording, args.out, source=args.checkpoint, scale=args.scale,
                              channel_files=args.channel_files or (), montage=args.montage, rest_s=args.rest_s)
    print(json.dumps(res, indent=1, default=str))
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    from loops.decode import decode_recording, train_simulated_state_decoder

    if (args.recording is None) == (args.simulated is None):
        raise ConfigError("decode needs a RECORDING with labels or --simulated FAMILY (one of them)")
    if args.simulated is not None:
        if args.save is None:
            raise ConfigError("--simulated trains a decoder to keep: name the file with --save FILE.npz")
        res = train_simulated_state_decoder(args.simulated, args.save, n_patients=args.n_patients,
                                            source=args.checkpoint, progress=not args.quiet)
    else:
        res = decode_recording(args.recording, labels=args.labels, window_s=args.window_s, source=args.checkpoint,
                               folds=args.folds, save=args.save, positive=args.positive, scale=args.scale,
                               channel_files=args.channel_files or (), montage=args.montage)
    print(json.dumps(res, indent=1, default=str))
    return 0


def _cmd_adapt(args: argparse.Namespace) -> int:
    from loops.adapt import main as adapt_main
    from loops.recording_input import model_min_duration_s, prepare_recording

    prep = prepare_recording(args.recording, scale=args.scale, channel_files=args.channel_files or (),
                             montage=args.montage, min_duration_s=model_min_duration_s(args.checkpoint))
    with prep.as_file() as path:  # the scaled, placed, neural-only recording when it differs from the file
        result = adapt_main(path, args.out, checkpoint=args.checkpoint, mode=args.mode, steps=args.steps,
                            lr=args.lr, anchor=args.anchor, seed=args.seed)
    result.update(recording=str(args.recording), recording_input=prep.to_dict())
    print(json.dumps(result, indent=1, default=str))
    return 0


def _cmd_optimize(args: argparse.Namespace) -> int:
    from loops.offline import run_offline

    result = run_offline(
        patient=args.patient, seed=args.seed, target=args.target, optimizer=args.optimizer, budget=args.budget,
        out=args.out, surrogate_only=args.surrogate_only, recording=args.recording, checkpoint=args.checkpoint,
        config=args.config, space=args.space, scale=args.scale, channel_files=tuple(args.channel_files or ()),
        montage=args.montage, on_trust_message=lambda msg: print(msg, flush=True),
    )
    best = result.get("protocol", result.get("top", []))
    if result.get("ranking"):  # surrogate-only: whether the surrogate can tell the candidates apart
        print(result["ranking"]["message"])
    trust = result.get("trust") or {}
    if trust.get("trust") is not None:  # a surrogate method with a model: how far its model was trusted
        from loops.model_trust import trust_text

        print(f"model trust at the end: {trust_text(trust['trust'], trust.get('model_weight'))}: {trust['reason']}")
    print(json.dumps(best[:3] if isinstance(best, list) else best, indent=1, default=str))
    print(f"wrote {args.out}")
    return 0


# Which benchmarks take each `bfm-stim bench` option (all of them take --json); any other is refused.
_BENCH_OPTIONS: dict[str, tuple[str, ...]] = {
    "patients": ("simulator",),
    "quick": ("session", "optimizers", "ranking", "adapt-tuning", "ablation", "surrogate", "decode", "robust", "fidelity"),
    "throughput_only": ("surrogate",),
    "amount": ("adapt-tuning",),
    "rest": ("adapt-tuning",),
    "reuse": ("adapt-tuning",),
    "variants": ("ablation",),
    "runs_dir": ("ablation", "robust"),
    "optimizers": ("optimizers", "robust"),
    "n_patients": ("session", "optimizers", "ranking", "decode", "robust", "fidelity"),
    "seeds": ("optimizers", "robust"),
    "budget": ("session", "optimizers", "robust"),
    "workers": ("optimizers", "ranking", "robust"),
    "settings": ("robust",),
    "family": ("session",),
    "recordings": ("real", "decode", "fidelity"),
}
BENCH_DEFAULT_DIR = Path("runs/bench")  # without --json: never over the committed bench/*.json


def _check_bench_options(args: argparse.Namespace) -> None:
    for dest, takers in _BENCH_OPTIONS.items():
        if getattr(args, dest) not in (None, False) and args.what not in takers:
            flag = "--" + dest.replace("_", "-")
            raise ConfigError(f"{flag} does not apply to `bfm-stim bench {args.what}`; "
                              f"only {', '.join(takers)} take{'s' if len(takers) == 1 else ''} it")


def _bench_out(args: argparse.Namespace, stem: str) -> str:
    """``--json``, else ``runs/bench/STEM[-quick].json`` (git-ignored)."""
    return args.json or str(BENCH_DEFAULT_DIR / f"{stem}{'-quick' if args.quick else ''}.json")


def _cmd_bench(args: argparse.Namespace) -> int:
    _check_bench_options(args)
    if args.what == "simulator":
        from loops.bench.simulator import run_simulator_bench

        kw = {"n_patients": args.patients} if args.patients else {}
        _write_json(_bench_out(args, "simulator"), run_simulator_bench(**kw))
        return 0
    if args.what == "session":
        from loops.bench.session import run_session_bench

        kw = {"n_patients": args.n_patients} if args.n_patients else {}
        if args.budget:
            kw["budget"] = args.budget
        if args.family:  # its own run folder: finished patients of another family are not reused
            kw.update(family=args.family, out=f"runs/bench-session-{args.family}")
        _write_json(_bench_out(args, "session"), run_session_bench(quick=args.quick, **kw))
        return 0
    if args.what == "latency":
        from loops.bench.latency import run_latency_bench

        _write_json(_bench_out(args, "latency"), run_latency_bench())
        return 0
    if args.what == "optimizers":
        from loops.bench.optimizers import run_optimizer_bench

        kw: dict[str, Any] = {k: v for k, v in (("n_patients", args.n_patients), ("seeds", args.seeds),
                                                ("budget", args.budget), ("workers", args.workers)) if v is not None}
        out = _bench_out(args, "optimizers")
        kw["png"] = Path(out).with_suffix(".png")  # the regret curves beside the JSON
        if args.optimizers:
            kw["optimizers"] = tuple(o.strip() for o in args.optimizers.split(",") if o.strip())
        _write_json(out, run_optimizer_bench(quick=args.quick, **kw))
        return 0
    if args.what == "ranking":
        from loops.bench.ranking import run_ranking_bench

        kw = {k: v for k, v in (("n_patients", args.n_patients), ("workers", args.workers)) if v is not None}
        _write_json(_bench_out(args, "ranking"), run_ranking_bench(quick=args.quick, **kw))
        return 0
    if args.what == "adapt-tuning":
        from loops.bench.adapt_tuning import run_adapt_tuning

        if args.rest and args.amount is not None:
            raise ValidationError("--amount", args.amount, "not with --rest (rest only has no probe trials)")
        if args.amount is not None and not (math.isfinite(args.amount) and args.amount > 0):
            raise ValidationError("--amount", args.amount, "> 0 s of probe trials (--rest for rest only)")
        stem = ("adapt_tuning_rest" if args.rest else "adapt_tuning" if args.amount is None
                else f"adapt_tuning_{args.amount:g}s")
        _write_json(_bench_out(args, stem), run_adapt_tuning(quick=args.quick, rest=args.rest, amount_s=args.amount,
                                                             progress=not args.quiet, reuse=args.reuse or ()))
        return 0
    if args.what == "ablation":
        from loops.bench.ablation import run_ablation

        if args.variants is not None and args.json is None:  # a subset must not replace the whole ablation's file
            raise ValidationError("--json", None, "a path when --variants runs a subset (e.g. bench/ablation_seed.json)")
        runs = args.runs_dir or ("runs/ablation-quick" if args.quick else "runs/ablation")  # never over the full runs
        _write_json(_bench_out(args, "ablation"), run_ablation(quick=args.quick, runs_dir=runs, progress=not args.quiet,
                                                               variants=args.variants))
        return 0
    if args.what == "surrogate":
        from loops.bench.surrogate import main as surrogate_bench

        if args.throughput_only:
            from loops.bench.surrogate import remeasure_throughput

            if not args.json:
                raise ConfigError("--throughput-only measures again into an earlier result: name it with --json "
                                  "(e.g. --json bench/surrogate.json, the committed figures)")
            print(json.dumps(remeasure_throughput(args.json), indent=2))
            print(f"wrote {args.json}")
            return 0
        out = _bench_out(args, "surrogate")
        res = surrogate_bench(out, quick=args.quick, progress=not args.quiet)
        print(json.dumps(res, indent=2, sort_keys=True, default=str))
        print(f"wrote {out}")
        return 0
    if args.what == "decode":
        from loops.bench.decode import run_decode_bench

        kw = {"n_patients": args.n_patients} if args.n_patients else {}
        _write_json(_bench_out(args, "decode"), run_decode_bench(quick=args.quick, recordings=args.recordings,
                                                                 progress=not args.quiet, **kw))
        return 0
    if args.what == "robust":
        from loops.bench.robust import run_robust_bench, table

        kw = {k: v for k, v in (("n_home", args.n_patients), ("seeds", args.seeds), ("budget", args.budget),
                                ("workers", args.workers)) if v is not None}
        if args.quick:  # a smoke run: 2 patients per setting, 1 seed, 12 trials, the key optimizers
            kw = {"n_home": 2, "n_mis": 2, "seeds": 1, "budget": 12, **kw}
            kw.setdefault("optimizers", ["guided", "gradient", "bo"])
        if args.n_patients is not None:
            kw["n_mis"] = args.n_patients
        if args.optimizers:
            kw["optimizers"] = [o.strip() for o in args.optimizers.split(",") if o.strip()]
        if args.settings:
            kw["settings"] = [o.strip() for o in args.settings.split(",") if o.strip()]
        runs = args.runs_dir or ("runs/robust-quick" if args.quick else "runs/robust")
        res = run_robust_bench(runs_dir=runs, progress=not args.quiet, **kw)
        _write_json(_bench_out(args, "robust"), res)
        print(table(res))
        return 0
    if args.what == "real":
        from loops.bench.real import run_real_bench

        _write_json(_bench_out(args, "real"), run_real_bench(args.recordings, progress=not args.quiet))
        return 0
    if args.what == "fidelity":
        from loops.bench.fidelity import run_fidelity_bench

        out = _bench_out(args, "fidelity")
        _write_json(out, run_fidelity_bench(quick=args.quick, n_patients=args.n_patients, recordings=args.recordings,
                                            plots_to=Path(out).parent, progress=not args.quiet))
        return 0
    raise AssertionError(args.what)  # argparse restricts the choices


def _session_arguments(s: argparse.ArgumentParser) -> None:
    from loops.session.cli import add_arguments

    add_arguments(s)


def _cmd_session(args: argparse.Namespace) -> int:
    from loops.session.cli import run

    return run(args)


def _benchmark_arguments(s: argparse.ArgumentParser) -> None:
    try:
        from loops.benchmark.cli import add_arguments
    except ImportError:  # the harness is not installed in this checkout
        return
    add_arguments(s)


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from loops.benchmark.cli import run

    return run(args)


def _cmd_report(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    if (d / "session.json").is_file():
        from loops.session.report import build_report
    elif (d / "summary.json").is_file():
        from loops.benchmark.report import build_report  # type: ignore[no-redef]
    else:
        raise ConfigError(f"{d}: neither a session directory (session.json) nor a benchmark directory "
                          "(summary.json); give the --out folder of `bfm-stim session` or `bfm-stim benchmark`")
    path = Path(build_report(d))
    print(f"wrote {path}")
    if args.open:
        print(path.resolve().as_uri())
    return 0


# --- parser -----------------------------------------------------------------------------------
def _recording_arguments(s: argparse.ArgumentParser) -> None:
    """How to read --recording: unit scale, channel types and positions (loops.recording_input)."""
    s.add_argument("--scale", type=float, default=None,
                   help="multiply the recording's voltage channels by this factor (e.g. 1e-6 when volts were "
                        "read as µV; the sanity check suggests it)")
    s.add_argument("--channels-file", "--electrodes", dest="channel_files", action="append", default=None,
                   metavar="FILE", help="channel types and electrode positions: BIDS channels.tsv/electrodes.tsv, "
                   "CSV or TOML (name, type, x, y, z in m, area_mm2, lead, contact, stim); repeatable; BIDS "
                   "sidecars beside the recording are read without it")
    s.add_argument("--montage", default=None,
                   help="electrode positions from an MNE montage: a standard name (standard_1020, biosemi64, ...) "
                        "or a montage file")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bfm-stim",
        description="Closed-loop brain stimulation optimization with a brain foundation model surrogate.",
    )
    p.add_argument("--version", action="version", version=f"bfm-stim {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="debug log output, and tracebacks of errors")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("demo", help="a closed-loop session against a simulated patient, end to end (make demo)")
    s.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    s.add_argument("--seed", type=int, default=None, help="evaluation-cohort patient seed (default: first)")
    s.add_argument("--speed", type=float, default=2.0, help="the simulated patient's speed-up over real time")
    s.add_argument("--budget", type=int, default=12, help="trials of the session")
    s.add_argument("--no-live", action="store_true", help="log lines instead of the live terminal view")
    s.set_defaults(func=_cmd_demo)

    s = sub.add_parser("patients", help="list the synthetic patient families")
    s.set_defaults(func=_cmd_patients)

    s = sub.add_parser("simulate", help="simulate a synthetic patient and write a FIF recording")
    s.add_argument("--patient", default="bg-beta-v0", help="patient id (see `bfm-stim patients`)")
    s.add_argument("--seed", type=int, default=3)
    s.add_argument("--duration", type=float, default=60.0, help="seconds to simulate")
    s.add_argument("--stimulus", default=None, help="JSON file: one stimulus, or a list of {onset_s, stimulus}")
    s.add_argument("--onset", type=float, default=None, help="onset (s) of a single stimulus (default: duration/3)")
    s.add_argument("--regime", choices=["healthy", "pathological"], default=None, help="override the patient's regime")
    s.add_argument("--out", required=True, help="output .fif path")
    s.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    s.set_defaults(func=_cmd_simulate)

    s = sub.add_parser("configs", help="list the bundled TOML configs, show one, or copy one to edit",
                       description="Without NAME: list the bundled configs. With NAME: print it, or copy it to "
                                   "--out FILE to edit. Every --config (and --space) takes a bundled name too.")
    s.add_argument("name", nargs="?", default=None, metavar="NAME", help="a bundled config (with or without .toml)")
    s.add_argument("--out", default=None, metavar="FILE", help="copy NAME to this file (or into this folder)")
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    s.set_defaults(func=_cmd_configs)

    s = sub.add_parser("keygen", help="write a per-session HMAC key for the stimulation command protocol")
    s.add_argument("file", nargs="?", help="key file to write (mode 0600)")
    s.add_argument("--out", default=None, help="same as FILE")
    s.add_argument("--force", action="store_true", help="replace an existing key file")
    s.set_defaults(func=_cmd_keygen)

    # Listed for --help; `main` hands their arguments to the device modules' own parsers.
    sub.add_parser("serve", help="serve a synthetic patient as an LSL device (see `bfm-stim serve --help`)")
    sub.add_parser("play", help="serve a recording as a live LSL stream (see `bfm-stim play --help`)")

    s = sub.add_parser("pretrain", help="build the corpus and pretrain the foundation model "
                       "(data-parallel: torchrun --nproc-per-node N -m loops.pretrain CONFIG OUT)")
    s.add_argument("--config", default=None, help=f"pretraining TOML, or a bundled config's name (default "
                   f"{PRETRAIN_CONFIG}; see `bfm-stim configs`)")
    s.add_argument("--out", default="runs/pretrain", help="run folder: corpus/, checkpoints/, model.pt")
    s.add_argument("--resume", action="store_true", help="resume from OUT/checkpoints/last.pt")
    s.add_argument("--steps", type=int, default=None, help="override the number of training steps")
    s.add_argument("--minutes", type=float, default=None,
                   help="training time budget in minutes: the LR schedule follows it and training stops when spent")
    s.add_argument("--batch-size", type=int, default=None, help="override train.batch_size (e.g. larger on a GPU)")
    s.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="continue pretraining from this checkpoint's weights (same model config; new optimiser "
                        "and schedule), e.g. bfm_stim/checkpoints/default/model.pt")
    s.add_argument("--lr", type=float, default=None, help="override train.lr, the schedule's peak")
    s.set_defaults(func=_cmd_pretrain)

    s = sub.add_parser("session", help="run a closed-loop session over LSL (trial and continuous modes)")
    _session_arguments(s)
    s.set_defaults(func=_cmd_session)

    s = sub.add_parser("benchmark", help="benchmark optimizers on patient cohorts (TOML config; local pool or Ray)")
    _benchmark_arguments(s)
    s.set_defaults(func=_cmd_benchmark)

    s = sub.add_parser("report", help="rebuild the HTML report of a session or benchmark directory")
    s.add_argument("dir", help="a session directory (session.json) or a benchmark --out directory (summary.json)")
    s.add_argument("--open", action="store_true", help="print a file:// URL of the report to open in a browser")
    s.set_defaults(func=_cmd_report)

    s = sub.add_parser("embed", help="the foundation model's latents of a recording or a live LSL stream (.npz)")
    s.add_argument("recording", nargs="?", default=None, help="recording (FIF, EDF, BDF, BrainVision, XDF)")
    s.add_argument("--out", required=True, help="latents file to write (.npz: latents, times, channels, model digest)")
    s.add_argument("--stream", default=None, metavar="SOURCE_ID", help="encode a live LSL stream instead (machine-only)")
    s.add_argument("--duration", type=float, default=None, help="--stream: stop after this many s (default: Ctrl-C)")
    s.add_argument("--checkpoint", default=None,
                   help="checkpoint or `bfm-stim adapt` patient file (default: the shipped model, zero-shot)")
    s.add_argument("--rest-s", type=float, default=None,
                   help="infer the zero-shot patient embedding from the first REST_S s (default: the whole "
                        "recording; 10 s of a stream)")
    _recording_arguments(s)
    s.set_defaults(func=_cmd_embed)

    s = sub.add_parser("decode", help="decode labels from the model's latents vs hand-crafted features "
                                      "(blocked CV); save a state decoder for the continuous mode")
    s.add_argument("recording", nargs="?", default=None, help="recording with annotations (or a label channel)")
    s.add_argument("--labels", default="annotations", help="annotations | channel:NAME (regression on its window mean)")
    s.add_argument("--window-s", type=float, default=1.0, help="window length, s (default 1)")
    s.add_argument("--folds", type=int, default=5, help="blocked cross-validation folds (default 5)")
    s.add_argument("--checkpoint", default=None, help="checkpoint or `bfm-stim adapt` patient file")
    s.add_argument("--save", default=None, metavar="FILE.npz",
                   help="write a two-class latent decoder ([continuous] biomarker = 'state:FILE.npz')")
    s.add_argument("--positive", default=None, help="with --save and > 2 labels: the label decoded against the rest")
    s.add_argument("--simulated", default=None, metavar="FAMILY",
                   help="train a healthy-vs-pathological decoder on pretraining-cohort patients of FAMILY "
                        "(bg-beta-v0, cortex-jr-epileptic-v0) instead of a recording; needs --save")
    s.add_argument("--n-patients", type=int, default=6, help="--simulated: patients to train on (default 6)")
    _recording_arguments(s)
    s.set_defaults(func=_cmd_decode)

    s = sub.add_parser("adapt", help="adapt the foundation model to a new patient from a recording")
    s.add_argument("--recording", required=True, help="recording (FIF, EDF, BDF, BrainVision, XDF)")
    s.add_argument("--out", required=True, help="adapted patient file to write (.pt)")
    s.add_argument("--checkpoint", default=None, help="pretrained checkpoint (default: the shipped one)")
    s.add_argument("--mode", choices=["zero_shot", "embedding", "full"], default="full",
                   help="zero_shot: infer the patient embedding from rest; embedding: also tune read-in/out; "
                        "full (default): fine-tune everything, the best measured")
    s.add_argument("--steps", type=int, default=None, help="optimiser steps (default per mode, tuned on rest data)")
    s.add_argument("--lr", type=float, default=None, help="learning rate (default per mode)")
    s.add_argument("--anchor", type=float, default=None,
                   help="pull towards the pretrained weights, 1/unit: each weight drifts about 1/ANCHOR at most "
                        "(default 100 in the trained modes, tuned on rest data; 0: none)")
    s.add_argument("--seed", type=int, default=0,
                   help="random seed of the training windows and dropout: the same recording and seed give the "
                        "same patient file")
    _recording_arguments(s)
    s.set_defaults(func=_cmd_adapt)

    s = sub.add_parser("optimize", help="optimize a stimulation protocol offline (simulated patient or surrogate)")
    s.add_argument("--patient", default="bg-beta-v0", help="synthetic patient id")
    s.add_argument("--seed", type=int, default=7, help="patient seed")
    s.add_argument("--target", default="healthy",
                   help="healthy | recording:PATH[:TMIN:TMAX] | latent:FILE.npy | bandpower:LO-HI")
    s.add_argument("--optimizer", default="guided", help="registered optimizer name (bo, guided, gradient, ...)")
    s.add_argument("--budget", type=int, default=30, help="number of trials")
    s.add_argument("--out", default="protocol.json", help="protocol JSON to write (a PNG is written beside it)")
    s.add_argument("--surrogate-only", action="store_true", help="no trials: optimize against the adapted surrogate")
    s.add_argument("--recording", default=None, help="with --surrogate-only: the patient's recording")
    s.add_argument("--checkpoint", default=None, help="foundation-model checkpoint (default: the shipped one)")
    s.add_argument("--config", default=None, help="TOML with optimizer settings, or a bundled config's name "
                   "(default: the bundled optimizers)")
    s.add_argument("--space", default=None, metavar="FILE.toml",
                   help="with --surrogate-only: the stimulus space ([space] with the contacts, as the bundled "
                        "space-dbs); a file or a bundled config's name; default: the recording's own lead contacts, "
                        "else an error")
    _recording_arguments(s)
    s.set_defaults(func=_cmd_optimize)

    s = sub.add_parser("bench", help="benchmarks that write JSON figures",
                       description="Run one benchmark; options that the chosen benchmark does not take are refused.")
    s.add_argument("what", choices=["simulator", "surrogate", "adapt-tuning", "ablation", "optimizers", "ranking",
                                        "latency", "session", "real", "decode", "robust", "fidelity"])
    s.add_argument("--json", default=None, help="write the figures to this JSON file (default: runs/bench/WHAT.json, "
                   "WHAT-quick.json with --quick; pass bench/WHAT.json to update the committed figures)")
    s.add_argument("--patients", type=int, default=None, help="simulator: number of batched patients")
    s.add_argument("--quick", action="store_true", help="a smaller run for smoke tests")
    s.add_argument("--throughput-only", action="store_true",
                   help="surrogate: measure only the candidates/s figure again, alone, into the existing --json file")
    s.add_argument("--amount", type=float, default=None,
                   help="adapt-tuning: seconds of probe trials to tune at (default 120)")
    s.add_argument("--rest", action="store_true",
                   help="adapt-tuning: tune `bfm-stim adapt`'s defaults on 2 min of rest (no probes)")
    s.add_argument("--reuse", action="append", default=None, metavar="JSON",
                   help="adapt-tuning: take over the rows of this earlier sweep (same patients, data and "
                        "checkpoint; checked) instead of recomputing them; repeatable")
    s.add_argument("--variants", default=None,
                   help="ablation: comma-separated variants to run, 'full' first (default: all; "
                        "full,no_masked,no_contrastive,no_spectral,full_seed1)")
    s.add_argument("--runs-dir", default=None,
                   help="ablation: where the variants' pretraining runs go, reused when their config matches "
                        "(default runs/ablation, runs/ablation-quick with --quick)")
    s.add_argument("--optimizers", default=None, help="optimizers: comma-separated variants (default: all)")
    s.add_argument("--n-patients", type=int, default=None, help="session, optimizers, ranking, decode: evaluation patients")
    s.add_argument("--seeds", type=int, default=None, help="optimizers: seeds per patient (default 3)")
    s.add_argument("--budget", type=int, default=None, help="session, optimizers: trials per run")
    s.add_argument("--workers", type=int, default=None, help="optimizers, ranking: worker processes (default 2)")
    s.add_argument("--family", default=None, metavar="ID",
                   help="session: the served patients' family (default bg-beta-v0; bg-beta-v1 has long beta bursts)")
    s.add_argument("--settings", default=None,
                   help="robust: comma-separated settings (default all: home-latent, home-bandpower, foreign-model, "
                        "user-patient, held-out)")
    s.add_argument("--recordings", default=None, metavar="DIR",
                   help="real, decode: folder of recordings to score (default: shared/data/recordings)")
    s.set_defaults(func=_cmd_bench)
    return p


def _setup_logging(verbose: int, quiet: bool) -> None:
    """INFO by default, DEBUG with ``-v``, WARNING with ``-q``; one handler (``serve``/``play`` reuse it)."""
    log_to_stderr(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)


def _one_line(e: BaseException) -> str:
    """The error for the terminal: the package's messages are one line; another library's text may run on."""
    if isinstance(e, OSError) and not isinstance(e, BfmStimError):
        return f"{e.filename}: {e.strerror or e}; check the path and its permissions"
    lines = str(e).strip().splitlines() or [type(e).__name__]
    return lines[0] + (" [... -v shows the rest]" if len(lines) > 1 else "")


_GLOBAL_FLAGS = {"-v": "verbose", "--verbose": "verbose", "-q": "quiet", "--quiet": "quiet"}


def _hoist_global_flags(argv: list[str]) -> list[str]:
    """Move ``-v``/``--verbose``/``-vv…`` and ``-q``/``--quiet`` to the front, wherever they are on the
    line (up to a ``--``), so ``bfm-stim bench robust -q`` means what ``bfm-stim -q bench robust`` does.
    No subcommand uses these names for anything else."""
    front, rest = [], []
    for i, a in enumerate(argv):
        if a == "--":
            rest += argv[i:]
            break
        if a in _GLOBAL_FLAGS or (len(a) > 2 and a.startswith("-v") and set(a[1:]) == {"v"}):
            front.append(a)
        else:
            rest.append(a)
    return front + rest


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``bfm-stim``; returns the exit status."""
    argv = _hoist_global_flags(list(sys.argv[1:] if argv is None else argv))
    # `serve` and `play` own their options (so `bfm-stim serve --help` shows them).
    cmd_at = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if cmd_at is not None and argv[cmd_at] in _PASSTHROUGH:
        pre = build_parser().parse_args(argv[:cmd_at] + ["patients"])  # global flags only
        _setup_logging(pre.verbose, pre.quiet)
        try:
            return int(_PASSTHROUGH[argv[cmd_at]](argv[cmd_at + 1:]) or 0)
        except (BfmStimError, OSError) as e:
            if isinstance(e, OSError) and e.filename is None:
                raise
            if pre.verbose:
                log.exception("failed")
            msg = _one_line(e)
            print(f"bfm-stim {argv[cmd_at]}: error: {msg}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except (BfmStimError, OSError) as e:
        if isinstance(e, OSError) and e.filename is None:  # not a file a person named: a bug, keep the traceback
            raise
        if args.verbose:
            log.exception("failed")
        msg = _one_line(e)
        print(f"bfm-stim {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bfm-stim {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
