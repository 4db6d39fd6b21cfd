"""A surrogate cost model for any patient, from its rest recording and the shipped checkpoint.

The surrogate optimizers (``guided``, ``gradient``, ``egreedy``) need a ``cost_model``: a
differentiable prediction of a trial's cost (:mod:`bfm_stim.optim.surrogate_cost`). For a
simulated patient the benchmark builds one; for a patient of your own (a benchmark plug-in, a
device) :func:`cost_model_from_rest` builds it from what every lab has: a stimulation-off
recording and the electrode positions.

Example (a user patient in a benchmark, see ``examples/user_patient.py``)::

    from bfm_stim.optim import cost_model_from_rest

    cost = cost_model_from_rest(rest_uv, fs=1000.0, positions=positions_m, space=space,
                                target="bandpower:13-30,energy=0.005", channels=[0, 1])
    opt = make("guided", space, seed=0, cost_model=cost)

The model is zero-shot on this patient (its embedding is inferred from the rest): the optimizers
measure how far to trust it from the first trials (:mod:`bfm_stim.optim.trust`) and fade to plain
BO when the trials contradict it, so a model that does not know the patient costs a few trials,
not the session.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from bfm_stim.exceptions import ValidationError
from bfm_stim.optim.surrogate_cost import SurrogateCost
from bfm_stim.space import StimulusSpace

__all__ = ["cost_model_from_rest", "parse_bandpower_target"]

#: Shortest rest the zero-shot embedding and the linear forecaster are fitted from, s.
MIN_REST_S = 10.0


def parse_bandpower_target(spec: str) -> tuple[tuple[float, float], float]:
    """``"bandpower:LO-HI[,energy=W]"`` -> ((LO, HI) Hz, W cost per mA²·Hz·ms); raises ValidationError."""
    kind, _, arg = str(spec).partition(":")
    band_s, _, opt = arg.partition(",")
    try:
        if kind != "bandpower":
            raise ValueError(spec)
        lo, hi = (float(v) for v in band_s.split("-"))
        w = 0.0
        if opt:
            key, _, val = opt.partition("=")
            if key.strip() != "energy":
                raise ValueError(opt)
            w = float(val)
        if not (0 < lo < hi and math.isfinite(hi) and w >= 0 and math.isfinite(w)):
            raise ValueError(spec)
    except ValueError:
        raise ValidationError("target", spec, "bandpower:LO-HI[,energy=W] with 0 < LO < HI Hz and W >= 0, "
                              "e.g. bandpower:13-30 or bandpower:13-30,energy=0.005") from None
    return (lo, hi), w


def cost_model_from_rest(rest: np.ndarray, *, fs: float, positions: np.ndarray, space: StimulusSpace,
                         target: str = "bandpower:13-30", channels: Sequence[int] | None = None,
                         checkpoint: str | Path | None = None, seed: int = 0) -> SurrogateCost:
    """The foundation model bound to a patient from its rest, as a band-power cost model.

    Args:
        rest: (C, T) stimulation-off recording, µV at ``fs`` (at least 10 s; 30 s is what the
            benchmark uses).
        fs: Sampling rate of ``rest``, Hz.
        positions: (C, 3) electrode positions, m (NaN where unknown).
        space: The stimulus space the optimizer searches (its contacts' positions condition the model).
        target: ``bandpower:LO-HI[,energy=W]``: minimize the log band power (natural log, as the
            simulators' measured objective) averaged over ``channels``, plus ``W`` × TEED.
        channels: The channels whose band power is the cost (default all).
        checkpoint: A checkpoint file (default the shipped one).
        seed: Seed of the predictive draws.

    Returns:
        A :class:`~bfm_stim.optim.surrogate_cost.SurrogateCost` (``predict(features) -> (mean, std)``).
    """
    from bfm_stim.objectives import BandPowerObjective, EnergyPenalized
    from bfm_stim.preprocessing import resample_data
    from bfm_stim.surrogate import Surrogate, default_checkpoint
    from bfm_stim.model import load_checkpoint

    x = np.asarray(rest, dtype=np.float64)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValidationError("rest", getattr(x, "shape", None), "a finite (channels, samples) array in µV")
    if not (isinstance(fs, (int, float)) and math.isfinite(fs) and fs > 0):
        raise ValidationError("fs", fs, "a sampling rate > 0 Hz")
    if x.shape[1] / fs < MIN_REST_S:
        raise ValidationError("rest", f"{x.shape[1] / fs:.1f} s", f">= {MIN_REST_S:g} s of stimulation-off signal")
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape != (x.shape[0], 3):
        raise ValidationError("positions", pos.shape, f"({x.shape[0]}, 3): one position per channel, m")
    if channels is not None:
        bad = [c for c in channels if not (isinstance(c, (int, np.integer)) and 0 <= c < x.shape[0])]
        if bad or not len(channels):
            raise ValidationError("channels", list(channels), f"channel indices in [0, {x.shape[0]})")
    band, w = parse_bandpower_target(target)
    ckpt = default_checkpoint() if checkpoint is None else Path(checkpoint)
    model, _ = load_checkpoint(ckpt)
    mfs = float(model.config.fs)
    x = x - x.mean(axis=1, keepdims=True)  # DC offsets ring through resampling (see bfm-stim adapt)
    xm = (resample_data(x, fs, mfs) if abs(fs - mfs) > 1e-9 else x).astype(np.float32)
    sur = Surrogate.from_checkpoint(ckpt, positions=pos, rest=xm, space=space)
    obj = BandPowerObjective(band, sur.fs, channels=None if channels is None else tuple(int(c) for c in channels),
                             log_base=math.e)
    objective = EnergyPenalized(obj, w) if w > 0 else obj
    ctx = xm[:, -sur.cfg.max_patches * sur.cfg.patch_len:]
    return SurrogateCost(sur, ctx, objective, seed=seed)
