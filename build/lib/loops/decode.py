"""``bfm-stim embed`` and ``bfm-stim decode``: the foundation model's latents for users.

``embed`` writes the per-patch latents of a recording (or of a live LSL stream, rewritten
atomically as it goes) with their timestamps, channels and model digest (:class:`bfm_stim.features.Embedding`).

``decode`` fits a linear read-out from window features to labels — the recording's annotations
(which annotation a window holds, ``none`` where none) or a continuous channel (its mean over the
window: a regression) — with blocked cross-validation, and reports the score of the BFM's latents
beside hand-crafted features of the same windows. ``--save`` writes a two-class latent decoder that
a session's continuous mode can use as its biomarker (``[continuous] biomarker = "state:FILE"``).
``--simulated FAMILY`` instead trains a healthy-vs-pathological decoder on pretraining-cohort
patients of a family (never the evaluation seeds), re-centred by each patient's rest
(:class:`bfm_stim.decoding.RestAlignment`), for sessions on patients it has not seen.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ValidationError

__all__ = ["embed_recording", "embed_stream", "decode_recording", "train_simulated_state_decoder", "window_labels"]

log = get_logger("loops.decode")


def embed_recording(recording: str | Path, out: str | Path, *, source: str | Path | None = None,
                    scale: float | None = None, channel_files: Sequence[str | Path] = (), montage: str | None = None,
                    rest_s: float | None = None) -> dict[str, Any]:
    """Latents of a recording file -> ``out`` (.npz); returns a summary for the terminal.

    Args:
        recording: any file :meth:`bfm_stim.recording.Recording.read` takes.
        out: the ``.npz`` to write.
        source: checkpoint or ``bfm-stim adapt`` patient file (default: the shipped model, zero-shot).
        scale, channel_files, montage: how to read the recording (:func:`loops.recording_input.prepare_recording`).
        rest_s: infer the zero-shot embedding from the first ``rest_s`` s (default: the whole recording).
    """
    from bfm_stim.features import embed_signal, load_encoder
    from loops.recording_input import model_min_duration_s, prepare_recording

    model, emb, info = load_encoder(source)
    prep = prepare_recording(recording, scale=scale, channel_files=channel_files, montage=montage,
                             min_duration_s=model_min_duration_s(source, adapt=False))
    rec = prep.recording
    if info["kind"] == "patient_file" and info["ch_names"]:
        missing = [c for c in info["ch_names"] if c not in prep.full.ch_names]
        if missing:
            raise ValidationError("channels", missing, f"the patient file's channels {info['ch_names']} in the recording")
        rec = prep.full.pick(info["ch_names"])
    rest = None
    if emb is None and rest_s is not None:
        if not (np.isfinite(rest_s) and rest_s > 0):
            raise ValidationError("--rest-s", rest_s, "> 0 s")
        rest = rec.data[:, : int(rest_s * rec.fs)]
    e = embed_signal(rec.data, rec.fs, rec.positions, ch_names=rec.ch_names, rest=rest, model=model, embedding=emb,
                     info=info)
    e.meta.update(source=Path(str(recording)).name, recording_input=prep.to_dict())
    e.save(out)
    return {"out": str(out), "latents": list(e.latents.shape), "patch_s": e.patch_s, "duration_s": float(e.times[-1]),
            "channels": len(e.ch_names), "embedding": e.meta["embedding"], "model_digest": e.meta["model_digest"]}


def embed_stream(source_id: str, out: str | Path, *, source: str | Path | None = None, duration_s: float | None = None,
                 rest_s: float = 10.0, write_every_s: float = 5.0, timeout_s: float = 10.0,
                 positions: Any = None) -> dict[str, Any]:
    """Latents of a live LSL stream, written to ``out`` as they are computed.

    The zero-shot embedding comes from the first ``rest_s`` s of the stream (or the patient file's);
    then every context window (``max_patches - horizon_patches`` patches) of new signal is encoded and
    appended, and ``out`` is rewritten atomically every ``write_every_s`` s and at the end (Ctrl-C
    stops cleanly). Timestamps are LSL times (the inlet's clock-corrected local clock).
    """
    from bfm_stim.features import Embedding, _resample, encode_windows, load_encoder
    from bfm_stim.lsl.config import configure
    from bfm_stim.lsl.inlet import RingInlet
    from bfm_stim.model.adapt import infer_embedding

    configure("machine")
    model, emb, info = load_encoder(source)
    cfg = model.config
    inlet = RingInlet(source_id, buffer_s=max(60.0, 2 * rest_s)).connect(timeout=timeout_s)
    spec = inlet.spec
    pos = positions if positions is not None else (spec.positions if spec.positions is not None else info.get("positions"))
    if pos is None:
        raise ValidationError("positions", None, f"the stream {source_id!r} announces no electrode positions: "
                              "pass a patient file adapted to this montage")
    pos = np.asarray(pos, float)
    fs = float(spec.fs)
    cw = max(2, cfg.max_patches - cfg.horizon_patches) * cfg.patch_len  # samples at the model rate
    need = int(np.ceil(cw / cfg.fs * fs))
    buf, tbuf = np.zeros((len(spec.ch_names), 0), np.float32), np.zeros(0)
    lat: list[np.ndarray] = []
    times: list[np.ndarray] = []
    t_start = time.monotonic()
    last_write = t_start
    how = "patient_file" if emb is not None else f"zero_shot (first {rest_s:g} s of the stream)"

    def write() -> None:
        if lat:
            Embedding(np.concatenate(lat), np.concatenate(times), cfg.patch_len / cfg.fs, tuple(spec.ch_names),
                      np.asarray(emb, np.float32).reshape(-1),
                      {"source": f"lsl:{source_id}", "model": info["path"], "model_digest": info["digest"],
                       "model_kind": info["kind"], "embedding": how, "fs_model": cfg.fs, "fs_input": fs}).save(out)

    try:
        with inlet:
            while duration_s is None or time.monotonic() - t_start < duration_s:
                inlet.wait_new(1, timeout=0.5)
                x, ts = inlet.pull_new()
                if x.size:
                    buf, tbuf = np.concatenate([buf, x], axis=1), np.concatenate([tbuf, ts])
                if emb is None:
                    if buf.shape[1] >= int(rest_s * fs):
                        emb = infer_embedding(model, _resample(buf, fs, cfg.fs), pos)
                    continue
                while buf.shape[1] >= need:
                    seg, tseg = buf[:, :need], tbuf[:need]
                    buf, tbuf = buf[:, need:], tbuf[need:]
                    z = encode_windows(model, _resample(seg, fs, cfg.fs)[None, :, :cw], pos, emb)[0].numpy()
                    lat.append(z)
                    times.append(tseg[0] + (np.arange(len(z)) + 1) * cfg.patch_len / cfg.fs)
                if time.monotonic() - last_write >= write_every_s:
                    write()
                    last_write = time.monotonic()
    except KeyboardInterrupt:
        log.info("stopped: writing what was encoded")
    write()
    n = sum(len(z) for z in lat)
    if not n:
        raise ValidationError("stream", f"{source_id!r}: no latents", f">= {rest_s + cw / cfg.fs:g} s of signal "
                              "(rest for the embedding, then one context window)")
    return {"out": str(out), "latents": [n, cfg.d_latent], "patch_s": cfg.patch_len / cfg.fs, "embedding": how,
            "model_digest": info["digest"], "stream": source_id}


def window_labels(rec: Any, window_s: float, labels: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(N, C, T) windows of the recording's neural channels, (N,) labels, and the task.

    ``labels``: ``"annotations"`` (the description of the last annotation starting in the window, else
    ``"none"``) or ``"channel:NAME"`` (the mean of that channel over the window: regression).
    """
    w = int(round(window_s * rec.fs))
    n = rec.n_samples // w if w > 0 else 0
    if n < 6:
        raise ValidationError("--window-s", window_s, f"a window that fits >= 6 times in {rec.duration_s:g} s")
    if labels == "annotations":
        ev = [e for e in rec.events if not e.description.lstrip().startswith("<?xml")]
        if not ev:
            raise ValidationError("--labels", labels, "a recording with annotations/events (or --labels channel:NAME)")
        y = []
        for i in range(n):
            inside = [e.description for e in ev if i * window_s <= e.onset_s < (i + 1) * window_s]
            y.append(inside[-1] if inside else "none")
        return np.arange(n), np.asarray(y), "classification"
    if labels.startswith("channel:"):
        name = labels.split(":", 1)[1]
        if name not in rec.ch_names:
            raise ValidationError("--labels", labels, f"channel:NAME with NAME among {list(rec.ch_names)}")
        v = np.asarray(rec.data[rec.ch_names.index(name)], float)[: n * w].reshape(n, w).mean(1)
        return np.arange(n), v, "regression"
    raise ValidationError("--labels", labels, "'annotations' or 'channel:NAME'")


def decode_recording(recording: str | Path, *, labels: str = "annotations", window_s: float = 1.0,
                     source: str | Path | None = None, folds: int = 5, save: str | Path | None = None,
                     positive: str | None = None, scale: float | None = None,
                     channel_files: Sequence[str | Path] = (), montage: str | None = None) -> dict[str, Any]:
    """Blocked-CV scores of latents vs hand-crafted features for the recording's labels (module docstring)."""
    from bfm_stim.decoding import StateDecoder, cross_validate, fit_decoder
    from bfm_stim.features import LatentEncoder
    from bfm_stim.handcrafted import handcrafted_features
    from loops.recording_input import model_min_duration_s, prepare_recording

    prep = prepare_recording(recording, scale=scale, channel_files=channel_files, montage=montage,
                             min_duration_s=model_min_duration_s(source, adapt=False))
    full, rec = prep.full, prep.recording
    _, y, task = window_labels(full, window_s, labels)
    if task == "regression" and labels.split(":", 1)[1] in rec.ch_names:  # the target is not a feature
        rec = rec.pick([c for c in rec.ch_names if c != labels.split(":", 1)[1]])
    w = int(round(window_s * rec.fs))
    X = rec.data[:, : len(y) * w].reshape(rec.n_channels, len(y), w).transpose(1, 0, 2)
    pos = rec.positions
    enc = LatentEncoder(positions=pos, fs=rec.fs, source=source, pool="mean+scale",
                        embedding="patient_file" if _is_patient_file(source) else "infer")
    Z = enc.fit(X).transform(X)
    H = handcrafted_features(X, rec.fs)
    out: dict[str, Any] = {"recording": Path(str(recording)).name, "labels": labels, "task": task, "windows": len(y),
                           "window_s": window_s, "folds": folds, "metric": "balanced accuracy" if task == "classification" else "R2",
                           "model": enc.model_info_}
    if task == "classification":
        cls, cnt = np.unique(y, return_counts=True)
        out["classes"] = {str(c): int(k) for c, k in zip(cls, cnt)}
    for name, F in (("latent", Z), ("handcrafted", H)):
        r = cross_validate(F, y, task, n_folds=folds)
        out[name] = {"score": r["score"], "folds": r["folds"]}
    if save is not None:
        if task != "classification":
            raise ValidationError("--save", str(save), "a classification (--labels annotations) to save a state decoder")
        yy = y
        if len(np.unique(y)) > 2:
            if positive is None:
                raise ValidationError("--positive", None, f"the label to decode against the rest, one of {sorted(set(y))}")
            yy = np.where(y == positive, positive, "other")
        est = fit_decoder(Z, yy, "classification")
        dec = StateDecoder.from_pipeline(est, window_s, None, {"features": "latent mean+scale", "labels": labels,
                                                                "recording": out["recording"], "model": enc.model_info_,
                                                                "cv_balanced_accuracy": out["latent"]["score"]})
        out["saved"] = str(dec.save(save))
    return out


def _is_patient_file(source: str | Path | None) -> bool:
    if source is None:
        return False
    from bfm_stim.features import load_encoder

    return load_encoder(source)[2]["kind"] == "patient_file"


def train_simulated_state_decoder(family: str, out: str | Path, *, n_patients: int = 6, source: str | Path | None = None,
                                  progress: bool = True) -> dict[str, Any]:
    """A healthy-vs-pathological latent decoder from pretraining-cohort patients of ``family``.

    Each patient's latents (its own zero-shot embedding) are re-centred and whitened by its rest
    latents before training; the saved decoder carries no alignment of its own: the session fits one
    on the new patient's calibration rest. Returns the training summary (leave-one-patient-out
    balanced accuracy included).
    """
    from tqdm import tqdm

    from bfm_stim.decoding import RestAlignment, StateDecoder, fit_decoder, score
    from loops.bench.decode import POOL, _Encoders, _rest_windows, simulate_tasks
    from simulators.registry import cohort

    enc = _Encoders(source)
    parts = []
    for seed in tqdm(cohort("pretrain", n_patients), desc=f"{family} patients", disable=not progress):
        p, tasks, rest = simulate_tasks(family, seed, ("state",))
        e = enc.embedding(enc.model, rest, p.fs, p.channel_positions)
        al = RestAlignment().fit(enc.latents(enc.model, _rest_windows(rest, p.fs), p.fs, p.channel_positions, e))
        F = al.transform(enc.latents(enc.model, tasks["state"].X, p.fs, p.channel_positions, e))
        y = np.where(tasks["state"].y == 1, "pathological", "healthy")
        parts.append((F, y, tasks["state"].groups + 1000 * len(parts)))
    loo = []
    for i in range(len(parts)):
        tr = [q for j, q in enumerate(parts) if j != i]
        est = fit_decoder(np.concatenate([q[0] for q in tr]), np.concatenate([q[1] for q in tr]), "classification",
                          np.concatenate([q[2] for q in tr]))
        loo.append(score("classification", parts[i][1], est.predict(parts[i][0])))
    est = fit_decoder(np.concatenate([q[0] for q in parts]), np.concatenate([q[1] for q in parts]), "classification",
                      np.concatenate([q[2] for q in parts]))
    meta = {"features": f"latent {POOL}", "align": "rest", "family": family, "cohort": "pretrain",
            "patients": n_patients, "model_digest": enc.info["digest"], "window_s": 1.0,
            "leave_one_patient_out_balanced_accuracy": loo}
    dec = StateDecoder.from_pipeline(est, 1.0, None, meta)
    dec.save(out)
    return {"out": str(out), "classes": list(dec.classes), **{k: v for k, v in meta.items() if k != "features"}}
