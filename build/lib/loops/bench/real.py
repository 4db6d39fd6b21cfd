"""``bfm-stim bench real``: ``bfm-stim adapt`` on every real recording in a folder, scored on its
held-out end.

Each recording goes the way ``bfm-stim adapt`` takes it: read, sanity-checked
(:mod:`bfm_stim.sanity`, through :func:`loops.recording_input.prepare_recording`), neural channels
only, then adapted with the command's defaults (:func:`loops.adapt.main`), which holds out the last
part of the recording and scores there the forecast R² at 40 and 160 ms of the zero-shot model, the
adapted model, the per-channel linear forecaster and persistence. A recording the checks refuse (too
short, no neural channel) is listed as skipped with the reason.

Targets: the adapted model is no worse than zero-shot on every recording (it is chosen that way on
the held-out part, so this checks the selection, not a gain); it matches or beats the linear
forecaster at 40 ms on at least half of them; no divergence goes unreported (a run whose training
loss turned non-finite or exploded, or whose held-out error grew past the divergence factor, must
carry a ``diverged`` fallback).

Beside the recordings, the ``missing_positions`` block (:mod:`loops.bench.positions`) measures on
simulated evaluation patients, where the electrode positions are known, what the zero-shot forecast
loses when the positions are missing (NaN) or wrong (shuffled across channels), as a recording
without a montage or with the wrong one would give it.

The JSON names recordings by their file name relative to the folder, never by a machine path.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import BfmStimError

__all__ = ["DEFAULT_RECORDINGS", "SUFFIXES", "EXPLODE_FACTOR", "recordings_in", "bench_recording", "run_real_bench"]

log = get_logger("bench.real")
DEFAULT_RECORDINGS = Path(__file__).resolve().parents[3] / "shared" / "data" / "recordings"
SUFFIXES = (".fif", ".fif.gz", ".edf", ".bdf", ".vhdr", ".xdf")  # what Recording.read takes
EXPLODE_FACTOR = 10.0  # as bfm_stim.model.adapt.adapt's default: what counts as a divergence


def recordings_in(folder: str | Path) -> list[Path]:
    """The recording files of ``folder`` (by suffix), sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(SUFFIXES))


def _diverged(summary: dict[str, Any], factor: float = EXPLODE_FACTOR) -> str | None:
    """Whether the run diverged, judged from its record (not from its fallback): a reason or None."""
    losses = summary.get("losses") or []
    if any(not math.isfinite(x) for x in losses):
        return "non-finite training loss"
    k = 10
    if len(losses) >= 2 * k and np.median(losses[-k:]) > factor * np.median(losses[:k]):
        return "training loss exploded"
    held = summary.get("heldout") or {}
    evals = held.get("evals") or []
    if evals:
        zs = {k: v for k, v in evals[0].items() if k != "step"}
        for e in evals[1:]:
            for lead, v in e.items():
                if lead != "step" and (not math.isfinite(v) or (1 - v) > factor * max(1 - zs[lead], 1e-6)):
                    return f"held-out error at {lead} grew {factor:g}x at step {e['step']}"
    if (summary.get("fallback") or {}).get("kind") == "diverged":
        return "stopped by the adaptation's own check"
    return None


def bench_recording(path: str | Path, *, root: str | Path, checkpoint: str | Path | None = None,
                    steps: int | None = None, lr: float | None = None, seed: int = 0) -> dict[str, Any]:
    """``bfm-stim adapt``'s path on one recording; its row of the benchmark.

    Args:
        path: the recording file.
        root: the folder names are given relative to.
        checkpoint: pretrained checkpoint (default: the shipped one).
        steps, lr: adaptation settings (default: the command's).
        seed: adaptation seed.

    Returns: ``{"file", "status": "ok" | "skipped", ...}``: sanity findings, channels, duration,
    held-out R² per forecaster and lead, the kept step, fallback and divergence.
    """
    import importlib

    from loops.recording_input import model_min_duration_s, prepare_recording

    adapt_main = importlib.import_module("loops.adapt").main
    path = Path(path)
    name = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    row: dict[str, Any] = {"file": name}
    t0 = time.perf_counter()
    try:
        prep = prepare_recording(path, min_duration_s=model_min_duration_s(checkpoint))
    except BfmStimError as e:  # the sanity checks refuse it (too short, no neural channel, unreadable)
        return {**row, "status": "skipped", "reason": str(e).replace(str(path), name)}
    rep = prep.report.to_dict()
    rep["source"] = name
    row.update(sanity={"errors": rep["n_errors"], "warnings": rep["n_warnings"],
                       "findings": [{k: f.get(k) for k in ("code", "severity", "channel", "message")}
                                    for f in rep["findings"]]},
               channels=len(prep.recording.ch_names), channel_types=sorted(set(prep.recording.ch_types)),
               duration_s=round(prep.recording.n_samples / prep.recording.fs, 3),
               fs_hz=float(prep.recording.fs))
    for f in row["sanity"]["findings"]:
        f["message"] = str(f["message"]).replace(str(path), name)
    with tempfile.TemporaryDirectory(prefix="bfm-stim-bench-real-") as d, prep.as_file() as src:
        try:
            summary = adapt_main(src, Path(d) / "patient.pt", checkpoint=checkpoint, steps=steps, lr=lr, seed=seed,
                                 progress=False, keep_losses=True)
        except BfmStimError as e:
            return {**row, "status": "skipped", "reason": str(e).replace(str(src), name)}
    held = summary.get("heldout")
    if held is None:
        return {**row, "status": "skipped", "reason": "too short to hold out a part for scoring"}
    why = _diverged(summary)
    fb = summary.get("fallback")
    row.update(status="ok", mode=summary["mode"], steps=summary["steps"], best_step=summary["best_step"],
               heldout_s=round(held["duration_s"], 3), heldout_windows=held["n_windows"], r2=held["r2"],
               evals=held["evals"], fallback=fb, diverged=why,
               silent_divergence=bool(why) and (fb or {}).get("kind") != "diverged",
               loss_first=summary.get("loss_first"), loss_last=summary.get("final_loss"),
               seconds=round(time.perf_counter() - t0, 1))
    return row


def _targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r["status"] == "ok"]
    n = len(ok)

    def ge(r: dict, a: str, b: str, leads: Sequence[str]) -> bool:
        return all(r["r2"][a][k] >= r["r2"][b][k] for k in leads)

    leads = list(ok[0]["r2"]["zero_shot"]) if ok else []
    zs = sum(ge(r, "adapted", "zero_shot", leads) for r in ok)
    lin = sum(ge(r, "adapted", "linear", ["40ms"]) for r in ok)
    silent = sum(r["silent_divergence"] for r in ok)
    return {
        "adapted_ge_zero_shot": {"measured": f"{zs} of {n}", "target": "every recording, at 40 and 160 ms "
                                 "(by construction: chosen on the held-out part)", "met": n > 0 and zs == n},
        "adapted_ge_linear_40ms": {"measured": f"{lin} of {n}", "target": "at least half of the recordings",
                                   "met": n > 0 and 2 * lin >= n},
        "silent_divergences": {"measured": silent, "target": 0, "met": silent == 0},
    }


def run_real_bench(recordings: str | Path | None = None, *, files: Sequence[str] | None = None,
                   checkpoint: str | Path | None = None, steps: int | None = None, lr: float | None = None,
                   seed: int = 0, missing_positions: int = 4, progress: bool = True) -> dict[str, Any]:
    """Run the benchmark; returns its JSON-able result.

    Args:
        recordings: the folder (default: ``shared/data/recordings`` beside the repository).
        files: file names in it to run (default: every recording file).
        checkpoint: pretrained checkpoint (default: the shipped one).
        steps, lr: adaptation settings (default: ``bfm-stim adapt``'s).
        seed: adaptation seed.
        missing_positions: simulated patients per family of the ``missing_positions`` block
            (:func:`loops.bench.positions.run_positions_bench`); 0 leaves the block out.
        progress: log one line per recording.

    Raises:
        BfmStimError: the folder does not exist or holds no recording.
    """
    from bfm_stim.exceptions import ConfigError
    from loops.adapt import DEFAULT_EVAL_EVERY, DEFAULT_HOLDOUT, DEFAULT_MIN_HOLDOUT_S

    root = Path(recordings) if recordings is not None else DEFAULT_RECORDINGS
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder of recordings; give --recordings DIR")
    paths = [root / f for f in files] if files is not None else recordings_in(root)
    if not paths:
        raise ConfigError(f"{root}: no recording files ({', '.join(SUFFIXES)})")
    rows = []
    t0 = time.perf_counter()
    for p in paths:
        row = bench_recording(p, root=root, checkpoint=checkpoint, steps=steps, lr=lr, seed=seed)
        rows.append(row)
        if progress:
            if row["status"] == "ok":
                r = row["r2"]
                log.info("%s: R2 40/160 ms zero-shot %.3f/%.3f adapted %.3f/%.3f linear %.3f/%.3f persistence "
                         "%.3f/%.3f%s", row["file"], *(r[m][k] for m in ("zero_shot", "adapted", "linear", "persistence")
                                                        for k in ("40ms", "160ms")),
                         f"; fallback: {row['fallback']['reason']}" if row["fallback"] else "")
            else:
                log.info("%s: skipped (%s)", row["file"], row["reason"])
    extra: dict[str, Any] = {}
    if missing_positions:
        from loops.bench.positions import run_positions_bench

        extra["missing_positions"] = run_positions_bench(checkpoint, n_per_family=missing_positions, seed=seed,
                                                         progress=progress)
    return {"benchmark": "real", "recordings_dir": root.name, "mode": "full (bfm-stim adapt's default)",
            "settings": {"holdout": DEFAULT_HOLDOUT, "min_holdout_s": DEFAULT_MIN_HOLDOUT_S,
                         "eval_every": DEFAULT_EVAL_EVERY, "steps": steps, "lr": lr, "seed": seed,
                         "explode_factor": EXPLODE_FACTOR},
            "metric": "forecast R² at 40 and 160 ms on the held-out end of each recording (windows normalised by "
                      "their context, as the model sees them; bfm_stim.model.evaluate)",
            "recordings": rows, "targets": _targets(rows), **extra, "seconds": round(time.perf_counter() - t0, 1)}
