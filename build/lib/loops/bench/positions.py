"""What missing or wrong electrode positions cost the foundation model's forecast.

A channel without a position (NaN) gets one shared channel embedding (the origin plus an "unknown"
flag, :class:`bfm_stim.model.layers.ChannelEmbedding`) whose flag weights pretraining never trained,
since every pretraining channel had a position. This measures the price on simulated evaluation
patients, where the true positions are known: the shipped checkpoint zero-shot, its embedding and
linear forecaster from ``rest_s`` of simulated rest, scored (forecast R² at 40 and 160 ms,
:mod:`bfm_stim.model.evaluate`) on windows of a further ``heldout_s`` of the same rest, with

- ``true``: the patient's electrode positions;
- ``nan``: every position NaN (the embedding inferred with NaN positions too);
- ``shuffled``: the true positions permuted across channels, no channel keeping its own (a wrong
  montage).

Only stimulation-off forecasts are scored: the stimulus-locked response term, which reads each
channel's distance to the stimulated contact, is not exercised. The linear forecaster does not read
positions, so it is the same in the three variants; only the
network's use of the positions changes. ``bfm-stim bench real`` (:mod:`loops.bench.real`) writes the
result as its ``missing_positions`` block.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ValidationError

__all__ = ["FAMILIES", "VARIANTS", "derangement", "patient_positions_r2", "run_positions_bench"]

log = get_logger("bench.positions")
FAMILIES = ("bg-beta-v0", "cortex-jr-epileptic-v0")
VARIANTS = ("true", "nan", "shuffled")
TRIAL = 900_000  # noise realisation of the rest (as loops.offline.patient_surrogate)


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of ``range(n)`` that moves every index (``n >= 2``)."""
    if n < 2:
        raise ValidationError("n_channels", n, ">= 2 (one channel cannot be shuffled)")
    while True:
        p = rng.permutation(n)
        if not np.any(p == np.arange(n)):
            return p


def patient_positions_r2(model: Any, patient: Any, *, rest_s: float = 30.0, heldout_s: float = 20.0,
                         seed: int = 0, max_windows: int = 64) -> dict[str, Any]:
    """Zero-shot held-out forecast R² of one simulated patient with true, NaN and shuffled positions.

    Args:
        model: the pretrained BFM.
        patient: a simulated patient (:func:`simulators.make`); ``patient.channel_positions``
            (C, 3), m, are the truth.
        rest_s: stimulation-off rest for the embedding and the linear forecaster, s.
        heldout_s: further rest the scored windows lie in (contexts and futures), s.
        seed: seed of the shuffle.
        max_windows: scored windows at most (evenly spaced).

    Returns: ``{"family", "seed", "channels", "heldout_windows", "shuffle_displacement_mm",
    "r2": {variant: {"40ms": R², "160ms": R²}}}``, plus ``"linear"`` (the linear forecaster alone,
    where the model has one: the part of the forecast no position can change); the displacement is
    the median distance, mm, between a channel's true and shuffled position.
    """
    from bfm_stim.model.adapt import infer_embedding
    from bfm_stim.model.data import PatientSeries
    from bfm_stim.model.evaluate import HeldOut
    from loops.offline import _resample
    from loops.pretrain_corpus import FEATURES_OFF

    cfg = model.config
    x = _resample(patient.simulate(rest_s + heldout_s, None, trial=TRIAL).data, patient.fs, cfg.fs)  # (C, T), µV
    c, t = x.shape
    split = int(round(rest_s * cfg.fs))
    c_len = (cfg.max_patches - cfg.horizon_patches) * cfg.patch_len
    series = PatientSeries(x, np.asarray(patient.channel_positions, np.float32), np.zeros(t, np.int32),
                           FEATURES_OFF[None].astype(np.float32), split)
    fit = PatientSeries(x[:, :split], series.positions, np.zeros(split, np.int32), series.stim_table, split)
    hor = cfg.horizon_patches * cfg.patch_len
    fc = fit.with_forecaster(cfg.ar_lags, hor, cfg.fs).forecaster if cfg.ar_lags else None  # (C, lags, H)
    held = HeldOut.from_series(series, split + c_len, ctx_patches=c_len // cfg.patch_len, patch_len=cfg.patch_len,
                               fs=cfg.fs, max_windows=max_windows)  # contexts too inside the further rest
    perm = derangement(c, np.random.default_rng(seed))
    pos = {"true": series.positions, "nan": np.full_like(series.positions, np.nan),
           "shuffled": series.positions[perm]}
    r2 = {}
    for name in VARIANTS:
        torch.manual_seed(seed)
        emb = infer_embedding(model, x[:, :split], pos[name])
        r2[name] = held.score_model(model, emb, pos[name], fc)
    if fc is not None:
        r2["linear"] = held.score_linear(fc)
    moved = np.linalg.norm(series.positions - series.positions[perm], axis=1) * 1000.0
    return {"family": patient.id, "seed": int(patient.seed), "channels": int(c),
            "heldout_windows": held.n_windows, "shuffle_displacement_mm": round(float(np.median(moved)), 1), "r2": r2}


def run_positions_bench(checkpoint: str | Path | None = None, *, families: Sequence[str] = FAMILIES,
                        n_per_family: int = 4, rest_s: float = 30.0, heldout_s: float = 20.0, seed: int = 0,
                        max_windows: int = 64, progress: bool = True) -> dict[str, Any]:
    """The ``missing_positions`` block: :func:`patient_positions_r2` on the first ``n_per_family``
    evaluation-cohort seeds of each family, with per-family medians.

    Args:
        checkpoint: pretrained checkpoint (default: the shipped one).
        families: simulator ids.
        n_per_family: patients per family (evaluation seeds only).
        rest_s: rest for the embedding and the linear forecaster, s.
        heldout_s: further rest scored, s.
        seed: seed of the shuffles.
        max_windows: scored windows per patient at most.
        progress: log one line per patient.

    Returns: JSON-able ``{"note", "checkpoint": {"file", "digest"}, "settings", "patients": [...],
    "medians": {family: {variant: {"40ms", "160ms"}}}, "seconds"}`` (the checkpoint named relative to the
    repository, its digest from :func:`loops.offline.file_digest`).
    """
    import simulators
    from bfm_stim.model.checkpoint import load_checkpoint
    from bfm_stim.surrogate import default_checkpoint
    from loops.offline import file_digest, repo_path

    if isinstance(n_per_family, bool) or not isinstance(n_per_family, int) or n_per_family < 1:
        raise ValidationError("n_per_family", n_per_family, "an integer >= 1")
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    digest = file_digest(path)
    model, _ = load_checkpoint(path)
    model.eval()
    t0 = time.perf_counter()
    rows = []
    for fam in families:
        for s in simulators.cohort("eval", n_per_family):
            row = patient_positions_r2(model, simulators.make(fam, s, cohort="eval"), rest_s=rest_s,
                                       heldout_s=heldout_s, seed=seed, max_windows=max_windows)
            rows.append(row)
            if progress:
                log.info("%s seed %d: R2 40/160 ms true %.3f/%.3f nan %.3f/%.3f shuffled %.3f/%.3f", fam, s,
                         *(row["r2"][v][k] for v in VARIANTS for k in ("40ms", "160ms")))
    leads = list(rows[0]["r2"]["true"])
    medians = {fam: {v: {k: float(np.median([r["r2"][v][k] for r in rows if r["family"] == fam])) for k in leads}
                     for v in rows[0]["r2"]} for fam in families}
    name = repo_path(path)
    return {"note": "zero-shot forecast R² on simulated evaluation patients with the true electrode positions, "
                    "all positions NaN (one shared 'unknown' channel embedding) and the positions shuffled across "
                    "channels (a wrong montage); embedding and linear forecaster from the first rest_s of rest, "
                    "scored on windows of the further heldout_s (stimulation off: the distance to a stimulated "
                    "contact, which the stimulus-locked term reads, is not measured here)",
            "checkpoint": {"file": name, "digest": digest},
            "settings": {"families": list(families), "n_per_family": n_per_family, "rest_s": rest_s,
                         "heldout_s": heldout_s, "seed": seed, "max_windows": max_windows, "trial": TRIAL},
            "patients": rows, "medians": medians, "seconds": round(time.perf_counter() - t0, 1)}
