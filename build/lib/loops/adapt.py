"""``bfm-stim adapt``: tune the pretrained BFM to one patient's recording and write a patient file.

The patient file (``.pt``, read with ``weights_only=True``) holds the adapted weights, the patient
embedding, the montage and conformal calibration scales; load it with
:meth:`bfm_stim.surrogate.Surrogate.from_patient_file`.

Modes (see :mod:`bfm_stim.model.adapt`): ``"zero_shot"`` infers the embedding from ~30 s of
stimulation-off data; ``"embedding"`` also tunes the read-in/read-out on seconds to minutes of data;
``"full"`` fine-tunes every weight (the default).

The last 20 % of the recording (at least 3 s) is never trained on. There the command scores the
forecast R² at 40 and 160 ms of the zero-shot model, the adaptation every 10 steps, the per-channel
linear forecaster and persistence (the summary's ``heldout`` block and a table on the screen), keeps
the best adaptation that is no worse than zero-shot at either lead, and fits the conformal scales. A
run that diverges (non-finite or exploding loss or held-out error) or never beats zero-shot says so
with a warning and a ``fallback`` record (kind, reason, what was returned) in the summary and the
patient file, and returns the held-out best or the zero-shot model.

Why ``full`` is the default, and its steps and learning rate: ``bfm-stim bench adapt-tuning
--rest`` (``bench/adapt_tuning_rest.json``) adapts 8 validation patients (never pretrained on,
never in the evaluation) on 2 min of stimulation-off data, like the data this command usually
gets, and picks each mode's setting by median R² 160 ms + stimulation-effect R² on probe trials.
(There the zero-shot embedding is inferred from all 120 s of rest, where :func:`main` takes
``rest_s`` = 30 s, and the trained modes start from it and use all the data, where this
command holds out the last 20 % for model selection and calibration.) Medians of R² at 40 ms / 160 ms / stimulation
effect: zero-shot 0.62 / 0.49 / 0.62; ``full`` (100 steps, lr 3e-4, anchor 100) 0.63 / 0.56 / 0.63;
``embedding`` (150 steps, lr 3e-3, anchor 100) 0.63 / 0.56 / 0.63. On rest alone adaptation
improves the forecast, not the prediction of stimulation effects (that needs probe trials:
``bfm-stim bench surrogate``). The differences are small: the picks' median scores (``full`` 1.102,
``embedding`` 1.106) lie within 0.005 of zero-shot's (1.105), and the anchored picks beat the best
unanchored settings (``full`` 100 steps at 1e-4: 1.091; ``embedding`` 150 at 1e-3: 1.099) by 0.011
and 0.007, within noise; ``full`` stays the default mode. The anchor keeps a recording with a few
probe stimuli from undoing pretraining (``bench/adapt_tuning_10s.json``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import RecordingError, ValidationError
from bfm_stim.model.adapt import MODES, adapt
from bfm_stim.model.checkpoint import load_checkpoint, save_patient
from bfm_stim.model.data import PatientSeries, patch_stimulus
from bfm_stim.model.evaluate import HeldOut
from bfm_stim.model.linear import fit_forecaster
from bfm_stim.space import Stimulus
from bfm_stim.stim_features import features_of
from bfm_stim.surrogate import Surrogate, default_checkpoint
from loops.pretrain_corpus import FEATURES_OFF, resample_to

__all__ = ["main", "series_from_recording", "calibration_windows", "calibrate_surrogate", "DEFAULT_STEPS", "DEFAULT_LR", "DEFAULT_ANCHOR",
           "DEFAULT_BATCH", "DEFAULT_MAX_CHANNELS", "DEFAULT_HOLDOUT", "DEFAULT_MIN_HOLDOUT_S", "DEFAULT_EVAL_EVERY",
           "heldout_table"]

log = get_logger("adapt")
NEURAL_TYPES = ("eeg", "seeg", "ecog", "dbs")
DEFAULT_STEPS = {"zero_shot": 0, "embedding": 150, "full": 100}
DEFAULT_LR = {"zero_shot": 0.0, "embedding": 3e-3, "full": 3e-4}
DEFAULT_ANCHOR = {"zero_shot": 0.0, "embedding": 100.0, "full": 100.0}  # pull towards the pretrained weights
DEFAULT_BATCH = 8  # windows per step
DEFAULT_MAX_CHANNELS = 8  # random channel subset per window (0: all), as in pretraining and the benchmarks
DEFAULT_HOLDOUT = 0.2  # fraction of the recording held out at its end: model selection, R² and calibration
DEFAULT_MIN_HOLDOUT_S = 3.0  # the held-out part's least length, s
DEFAULT_EVAL_EVERY = 10  # optimiser steps between held-out evaluations


def series_from_recording(rec: Any, fs: float) -> tuple[PatientSeries, list[str]]:
    """A :class:`PatientSeries` at ``fs`` Hz from a :class:`~bfm_stim.recording.Recording`.

    Neural channels (EEG, sEEG, ECoG, DBS) are kept (all channels when none is typed), each without
    its mean (the offset of a DC-coupled amplifier would ring at the resampled edges). Stimulus
    events (``Event.stimulus``) become the per-sample stimulus features; electrical contacts are
    placed at the origin when the recording does not say where they are. The stimulation-off
    stretch before the first stimulus is the rest data.

    Returns: (series, kept channel names).
    """
    types = list(rec.ch_types or ["eeg"] * rec.n_channels)
    keep = [i for i, t in enumerate(types) if t in NEURAL_TYPES] or list(range(rec.n_channels))
    # Each channel's offset goes before resampling. DC-coupled amplifiers record offsets far above
    # the signal (test_edf_stim_channel.edf: +-2e5 uV on a 7 uV EEG); the resampler pads with zeros,
    # so an offset became an edge transient of 1e4-2e5 uV, and a training window whose future held it
    # scored a loss in the thousands (`bfm-stim adapt` logged 1.94 -> 3137). The model normalises
    # every window by its context, so the offset carries nothing it uses.
    x = np.asarray(rec.data, np.float64)[keep]
    data = resample_to(x - x.mean(1, keepdims=True), float(rec.fs), fs)
    t = data.shape[1]
    pos = np.asarray(rec.positions, np.float32)[keep] if rec.positions is not None else np.full((len(keep), 3), np.nan)
    ids = np.zeros(t, np.int32)
    table = [FEATURES_OFF]
    first_on = t
    for ev in rec.events:
        if not ev.stimulus:
            continue
        stim = Stimulus.from_dict(ev.stimulus)
        if stim.is_off:
            continue
        contacts = {}
        if stim.kind == "electrical":
            from bfm_stim.space import Contact
            contacts = {stim.contact: Contact(str(stim.contact), (0.0, 0.0, 0.0))}
        table.append(features_of([stim], contacts)[0].numpy())
        a = int(round(ev.onset_s * fs))
        b = int(round((ev.onset_s + (ev.duration_s or stim.duration_s)) * fs))
        ids[max(a, 0):min(b, t)] = len(table) - 1
        first_on = min(first_on, max(a, 0))
    names = [rec.ch_names[i] for i in keep]
    return PatientSeries(data, pos, ids, np.stack(table).astype(np.float32), first_on, -1, -1,
                         {"id": "recording"}), names


def calibration_windows(series: PatientSeries, cfg: Any, n: int, *, start: int = 0,
                        rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Held-out windows for :meth:`Surrogate.calibrate` from ``series.data[:, start:]``.

    Windows look like the surrogate's use: about half end their context exactly at a stimulus
    onset (the candidate is delivered at the horizon start), the rest are drawn at random with no
    stimulus acting in their horizon.

    Returns: contexts (M, C, ctx * L) µV, per-patch stimulus (M, H, F), futures (M, C, H * L) µV.
    """
    rng = rng or np.random.default_rng(0)
    L, hor = cfg.patch_len, cfg.horizon_patches
    ctx = max(2, cfg.max_patches - hor)
    win = (ctx + hor) * L
    hi = series.data.shape[1] - win
    if hi < start:
        raise ValidationError("series", series.data.shape, f"at least {start + win} samples for calibration")
    on = series.onsets - ctx * L
    on = on[(on >= start) & (on <= hi)]
    n_on = min(len(on), n // 2)
    starts = list(rng.choice(on, n_on, replace=False)) if n_on else []
    active = series.stim_ids > 0
    for _ in range(50 * n):
        if len(starts) >= n:
            break
        s = int(rng.integers(start, hi + 1))
        if not active[s + ctx * L:s + win].any():
            starts.append(s)
    while len(starts) < n:  # no stimulation-free horizon found: take random windows
        starts.append(int(rng.integers(start, hi + 1)))
    starts = np.asarray(starts, dtype=np.int64)
    x = np.stack([series.data[:, s:s + win] for s in starts])
    st = np.stack([patch_stimulus(series.stim_ids[s:s + win], series.stim_table, L) for s in starts])
    xt = torch.from_numpy(x)
    return xt[..., : ctx * L], torch.from_numpy(st[:, ctx:]).float(), xt[..., ctx * L:]


def calibrate_surrogate(sur: Surrogate, series: PatientSeries, *, start: int, n: int = 32,
                        level: float = 0.9, seed: int = 0) -> dict[str, float]:
    """Fit the surrogate's conformal scales on ``n`` windows of ``series`` after sample ``start``."""
    ctx, stim, fut = calibration_windows(series, sur.cfg, n, start=start, rng=np.random.default_rng(seed))
    return sur.calibrate(ctx, stim, fut, level=level)


def main(recording: str | Path, out: str | Path, *, checkpoint: str | Path | None = None, mode: str = "full",
         rest_s: float = 30.0, steps: int | None = None, lr: float | None = None, anchor: float | None = None,
         seed: int = 0, holdout: float = DEFAULT_HOLDOUT, min_holdout_s: float = DEFAULT_MIN_HOLDOUT_S,
         eval_every: int = DEFAULT_EVAL_EVERY, keep_losses: bool = False, progress: bool = True) -> dict[str, Any]:
    """Adapt the BFM to one recording and write the patient file.

    The last ``holdout`` of the recording (at least ``min_holdout_s``) is never trained on: the
    zero-shot model, the adaptation every ``eval_every`` steps, the per-channel linear forecaster and
    persistence are scored there (forecast R² at 40 and 160 ms), the best adaptation no worse than
    zero-shot is kept, and the conformal scales are fitted there. A diverging or non-improving run
    falls back (to the held-out best or zero-shot) with a warning and a ``fallback`` record.

    Args:
        recording: a recording file (.fif, .edf, .bdf, .vhdr, .xdf) readable by
            :meth:`bfm_stim.recording.Recording.read`; its stimulation-off start is the rest data.
        out: patient file to write (``.pt``).
        checkpoint: pretrained checkpoint (default: the one shipped with the package).
        mode: ``"zero_shot"`` (>= ~30 s of rest), ``"embedding"`` (seconds to minutes) or ``"full"``.
        rest_s: stimulation-off data used for the zero-shot embedding, s.
        steps, lr: optimiser steps and learning rate (defaults per mode).
        anchor: pull towards the pretrained weights, 1/unit (:func:`bfm_stim.model.adapt.adapt`;
            default per mode). Each weight drifts about ``1 / anchor`` at most; worth setting when
            the recording holds only a few probe stimuli (``bench/adapt_tuning_10s.json``).
        seed: random seed of the training windows, masks and dropout: the same recording and seed
            give the same patient file.
        holdout: fraction of the recording held out at its end (0: none; no held-out check).
        min_holdout_s: the held-out part's least length, s (when the rest still leaves one training
            window; else nothing is held out, with a warning).
        eval_every: optimiser steps between held-out evaluations.
        keep_losses: put every step's training loss in the summary (``"losses"``).
        progress: log progress and the held-out table.

    Returns: summary (mode, steps, losses, held-out R², fallback, calibration, channels, output path).
    """
    from bfm_stim.recording import Recording

    if mode not in MODES:
        raise ValidationError("mode", mode, f"one of {MODES}")
    if not (math.isfinite(holdout) and 0 <= holdout < 0.9):
        raise ValidationError("holdout", holdout, "a fraction in [0, 0.9) (0: nothing held out)")
    if not (math.isfinite(min_holdout_s) and min_holdout_s >= 0):
        raise ValidationError("min_holdout_s", min_holdout_s, ">= 0 s")
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1:
        raise ValidationError("eval_every", eval_every, "an integer >= 1 (steps)")
    ckpt_path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    model, info = load_checkpoint(ckpt_path)
    cfg = model.config
    rec = Recording.read(recording)
    series, names = series_from_recording(rec, cfg.fs)
    L = cfg.patch_len
    n_ctx = max(2, cfg.max_patches - cfg.horizon_patches)
    win = (n_ctx + cfg.horizon_patches) * L
    if series.rest_samples < win:
        raise RecordingError(f"{recording}: needs at least {win / cfg.fs:.1f} s of stimulation-off data before "
                             f"the first stimulus; got {series.rest_samples / cfg.fs:.1f} s")
    n_steps = DEFAULT_STEPS[mode] if steps is None else int(steps)
    anchor = DEFAULT_ANCHOR[mode] if anchor is None else float(anchor)
    lr = DEFAULT_LR[mode] if lr is None else float(lr)
    if n_steps < 0:
        raise ValidationError("steps", n_steps, ">= 0 (0: zero-shot)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValidationError("seed", seed, "an integer >= 0")
    if mode != "zero_shot" and n_steps and not (math.isfinite(lr) and lr > 0):
        raise ValidationError("lr", lr, "> 0 and finite")
    t = series.data.shape[1]
    split = t - max(int(round(holdout * t)), int(round(min_holdout_s * cfg.fs))) if holdout > 0 else t
    if split < win:
        log.warning("%s: %.1f s is too short to hold out %.1f s and train on %.1f s: nothing held out, no "
                    "held-out check", recording, t / cfg.fs, (t - split) / cfg.fs, win / cfg.fs)
        split = t
    train = PatientSeries(series.data[:, :split], series.positions, series.stim_ids[:split], series.stim_table,
                          min(series.rest_samples, split), -1, -1, series.meta)
    held = (HeldOut.from_series(series, split, ctx_patches=n_ctx, patch_len=L, fs=cfg.fs) if split < t else None)
    cal = dict(info["extra"].get("calibration", {}))
    # dropout draws from torch's global generator: seed it here (and leave the caller's as it was)
    # so that the same recording and seed give the same patient file
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if mode == "zero_shot" or n_steps == 0:  # the embedding and forecaster from rest_s of rest
            rest = min(train.rest_samples, int(rest_s * cfg.fs))
            train = PatientSeries(train.data[:, :rest], train.positions, train.stim_ids[:rest], train.stim_table,
                                  rest, -1, -1, train.meta)
        res = adapt(model, train, mode="zero_shot" if n_steps == 0 else mode, steps=n_steps, lr=lr, seed=seed,
                    anchor=anchor, batch_size=DEFAULT_BATCH, max_channels=DEFAULT_MAX_CHANNELS, heldout=held,
                    eval_every=eval_every)
    tuned, emb, losses, fc = res.model, res.embedding, res.losses, res.forecaster
    sur = Surrogate(tuned, positions=series.positions, patient=emb, signal_scale=cal.get("signal_scale", 1.0),
                    latent_scale=cal.get("latent_scale", 1.0), response_scale=cal.get("response_scale", 1.0),
                    forecaster=fc)
    if t - split >= win:
        cal = calibrate_surrogate(sur, series, start=split, seed=seed)
    heldout = None
    if held is not None:
        lin = fit_forecaster(train.data, lags=cfg.ar_lags or 75, horizon=held.fut.shape[-1],
                             off=train.off_mask(int(round(0.5 * cfg.fs))))
        heldout = {"start_s": split / cfg.fs, "duration_s": (t - split) / cfg.fs, "n_windows": held.n_windows,
                   "r2": {**res.heldout, "linear": held.score_linear(lin), "persistence": held.score_persistence()},
                   "evals": res.evals}
    fallback = res.fallback.to_dict() if res.fallback is not None else None
    extra = {"mode": mode, "recording": str(recording), "checkpoint": str(ckpt_path), "steps": n_steps,
             "lr": lr if n_steps and mode != "zero_shot" else None, "anchor": anchor, "seed": seed,
             "fs": cfg.fs, "final_loss": losses[-1] if losses else None, "best_step": res.best_step,
             "heldout": heldout, "fallback": fallback}
    path = save_patient(out, tuned, embedding=emb, positions=series.positions, ch_names=names,
                        calibration=cal, extra=extra, forecaster=fc)
    summary = {**extra, "out": str(path), "n_channels": len(names), "duration_s": t / cfg.fs,
               "calibration": cal, "loss_first": losses[0] if losses else None}
    if keep_losses:
        summary["losses"] = list(losses)
    if progress:
        log.info("adapted %s (%s, %d steps) -> %s", recording, mode, n_steps, path)
        if heldout is not None:
            for line in heldout_table(heldout):
                log.info("%s", line)
    return summary


def heldout_table(heldout: dict[str, Any]) -> list[str]:
    """The held-out R² block of a summary as lines of a table (one row per forecaster)."""
    rows = heldout["r2"]
    leads = list(next(iter(rows.values())))
    out = [f"held-out forecast R2 (last {heldout['duration_s']:.1f} s, {heldout['n_windows']} windows): "
           + "  ".join(f"{k:>7s}" for k in leads)]
    for name in ("zero_shot", "adapted", "linear", "persistence"):
        if name in rows:
            out.append(f"  {name:<12s}" + "  ".join(f"{rows[name][k]:7.3f}" for k in leads))
    return out
