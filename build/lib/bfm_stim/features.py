"""The foundation model as a feature extractor: per-patch latents of any recording or window.

The BFM's encoder turns any montage (channels with positions) into one latent per patch
(``patch_len`` samples, 100 ms for the shipped model) in a space shared across patients. This module
gives them to users:

* :func:`encode_windows` — latents (N, P, D) of N equal-length windows in one batch;
* :func:`embed_signal` — per-patch latents of a continuous recording with their timestamps, as an
  :class:`Embedding` that saves to / loads from ``.npz`` (``bfm-stim embed`` writes these);
* :class:`LatentEncoder` — a scikit-learn transformer: ``fit`` adapts (infers the patient embedding
  from the windows it is given, or takes one from a ``bfm-stim adapt`` patient file), ``transform``
  gives pooled latents per window, so the latents drop into a ``Pipeline`` before a classifier.

Every window is encoded as its own context: normalised per channel over the window (as the surrogate
encodes a context), stimulation features zero (the decoder does not know what was delivered), at
most ``max_patches - horizon_patches`` patches per encoder call (longer windows are cut into
consecutive chunks, the remainder at the start dropped).

Example:
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.linear_model import LogisticRegression
    >>> enc = LatentEncoder(positions=pos, fs=250.0)            # pos: (C, 3) m     # doctest: +SKIP
    >>> clf = make_pipeline(enc, LogisticRegression()).fit(X, y)  # X: (N, C, T) µV   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from bfm_stim.exceptions import ModelError, ValidationError

__all__ = ["Embedding", "LatentEncoder", "encode_windows", "embed_signal", "load_encoder", "POOLS"]

POOLS = ("mean", "mean+std", "last", "mean+scale")
EMBEDDING_FORMAT = "bfm-stim-latents"


def load_encoder(source: str | Path | None = None) -> tuple[Any, torch.Tensor | None, dict[str, Any]]:
    """The model to encode with, a patient embedding when the source has one, and what it was.

    Args:
        source: a BFM checkpoint, a ``bfm-stim adapt`` patient file, or None (the shipped checkpoint).

    Returns: (model in eval mode, (d_patient,) embedding or None, info with ``kind`` ("checkpoint" or
    "patient_file"), ``digest`` (16 hex of the file), ``path`` name, and for a patient file its
    ``positions`` (C, 3) m and ``ch_names``).
    """
    from bfm_stim.model import load_checkpoint
    from bfm_stim.model.checkpoint import load_patient
    from bfm_stim.surrogate import default_checkpoint

    path = Path(source) if source is not None else default_checkpoint()
    if not path.is_file():
        raise ModelError(f"no checkpoint or patient file at {path}: pass a `bfm-stim adapt` patient file, "
                         "a checkpoint, or nothing for the shipped model")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    try:
        model, pinfo = load_patient(path)
    except Exception:  # noqa: BLE001 - not a patient file: a pretrained checkpoint (zero-shot embedding)
        model = load_checkpoint(path)[0]
        return model.eval(), None, {"kind": "checkpoint", "digest": digest, "path": path.name}
    info = {"kind": "patient_file", "digest": digest, "path": path.name,
            "positions": np.asarray(pinfo["positions"], float), "ch_names": list(pinfo["meta"].get("ch_names", []))}
    return model.eval(), torch.as_tensor(pinfo["embedding"], dtype=torch.float32).reshape(-1), info


def _as_windows(x: Any, name: str = "X") -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if t.dim() == 2:
        t = t[None]
    if t.dim() != 3:
        raise ValidationError(name, tuple(t.shape), "windows (N, C, T) µV, or one window (C, T)")
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise ValidationError(name, f"{bad} non-finite samples", "finite µV values (drop or repair bad segments first)")
    return t


@torch.no_grad()
def encode_windows(model: Any, windows: Any, positions: Any, embedding: torch.Tensor, *,
                   batch: int = 256) -> torch.Tensor:
    """Encoder latents of equal-length windows.

    Args:
        model: the BFM.
        windows: (N, C, T) µV at ``model.config.fs``; T >= 2 patches.
        positions: (C, 3) electrode positions, m (NaN where unknown).
        embedding: (d_patient,) patient embedding.
        batch: encoder calls of at most this many chunks.

    Returns: (N, P, d_latent) latents, P = T // patch_len rounded down to whole chunks; latent p
    summarises samples [T - (P - p) * patch_len, T - (P - p - 1) * patch_len) of its window.
    """
    cfg = model.config
    x = _as_windows(windows, "windows")
    pos = torch.as_tensor(np.asarray(positions, dtype=np.float32))
    if pos.shape != (x.shape[1], 3):
        raise ValidationError("positions", tuple(pos.shape), f"({x.shape[1]}, 3) in m, one row per channel")
    L = cfg.patch_len
    p_all = x.shape[-1] // L
    if p_all < 2:
        raise ValidationError("window length", x.shape[-1], f">= {2 * L} samples ({2 * L / cfg.fs:g} s at {cfg.fs:g} Hz)")
    cw = max(2, cfg.max_patches - cfg.horizon_patches)
    n_chunks = max(1, p_all // cw) if p_all >= cw else 1
    cw = min(cw, p_all)
    p_used = n_chunks * cw
    x = x[..., x.shape[-1] - p_used * L:]
    n = x.shape[0]
    chunks = x.reshape(n, x.shape[1], n_chunks, cw * L).permute(0, 2, 1, 3).reshape(n * n_chunks, x.shape[1], cw * L)
    mean = chunks.mean(-1, keepdim=True)
    std = chunks.std(-1, keepdim=True).clamp_min(1e-3)
    xn = (chunks - mean) / std
    chan = model.chan_embed(pos[None])
    e = torch.as_tensor(embedding, dtype=torch.float32).reshape(1, -1)
    out = []
    for i in range(0, len(xn), batch):
        b = xn[i:i + batch]
        stim = torch.zeros(len(b), cw, cfg.n_stim_features)
        out.append(model.encode(b, pos[None].expand(len(b), -1, -1), stim, e.expand(len(b), -1),
                                chan_emb=chan.expand(len(b), -1, -1)))
    return torch.cat(out).reshape(n, n_chunks * cw, -1)


def _resample(x: np.ndarray, fs: float, fs_out: float) -> np.ndarray:
    """``x`` (..., T) at ``fs`` -> at ``fs_out`` (polyphase, float32); unchanged when the rates agree."""
    from bfm_stim.preprocessing import resample_data

    x = np.asarray(x, dtype=np.float64)
    return (x if abs(fs - fs_out) < 1e-9 else resample_data(x, fs, fs_out)).astype(np.float32)


def window_scale(windows: Any) -> np.ndarray:
    """(N, 1) mean over channels of log10 of each channel's standard deviation in the window (µV): the
    amplitude the encoder's per-window normalisation takes away (the rest encoder reads it too)."""
    x = np.asarray(windows, dtype=np.float64)
    return np.log10(x.std(-1).clip(1e-3)).mean(-1, keepdims=True)


def _pool(z: torch.Tensor, pool: str, windows: Any = None) -> np.ndarray:
    if pool == "mean+scale":
        if windows is None:
            raise ValidationError("pool", pool, "windows to take the scale of")
        return np.concatenate([z.mean(1).numpy().astype(np.float64), window_scale(windows)], axis=1)
    if pool == "mean":
        f = z.mean(1)
    elif pool == "mean+std":
        f = torch.cat([z.mean(1), z.std(1) if z.shape[1] > 1 else torch.zeros_like(z[:, 0])], dim=-1)
    elif pool == "last":
        f = z[:, -1]
    else:
        raise ValidationError("pool", pool, f"one of {POOLS}")
    return f.numpy().astype(np.float64)


@dataclass
class Embedding:
    """Per-patch latents of a recording.

    Attributes:
        latents: (P, d_latent) encoder latents.
        times: (P,) s, the end of each latent's patch on the recording's time axis (its first sample at
            ``t0``; for a stream, LSL time).
        patch_s: seconds of signal per latent.
        ch_names: the channels encoded.
        embedding: (d_patient,) the patient embedding the latents were encoded with.
        meta: source, model digest, how the embedding was obtained, sampling rate, etc.
    """

    latents: np.ndarray
    times: np.ndarray
    patch_s: float
    ch_names: tuple[str, ...]
    embedding: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def windows(self, length_s: float, *, step_s: float | None = None, pool: str = "mean") -> tuple[np.ndarray, np.ndarray]:
        """Pooled latents of consecutive windows: (N, D or 2D) features and (N,) window end times, s."""
        k = int(round(length_s / self.patch_s))
        step = int(round((step_s or length_s) / self.patch_s))
        if k < 1 or step < 1 or k > len(self.latents):
            raise ValidationError("length_s", length_s, f"{self.patch_s:g} s to {len(self.latents) * self.patch_s:g} s")
        starts = np.arange(0, len(self.latents) - k + 1, step)
        z = torch.as_tensor(np.stack([self.latents[s:s + k] for s in starts]))
        return _pool(z, pool), self.times[starts + k - 1]

    def save(self, path: str | Path) -> Path:
        """Write ``.npz`` (arrays plus ``meta`` as JSON); atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part.npz")
        np.savez(tmp, format=np.array(EMBEDDING_FORMAT), latents=self.latents.astype(np.float32),
                 times=self.times.astype(np.float64), patch_s=np.array(self.patch_s),
                 ch_names=np.array(self.ch_names, dtype=str), embedding=self.embedding.astype(np.float32),
                 meta=np.array(json.dumps(self.meta, sort_keys=True, default=str)))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Embedding":
        with np.load(path, allow_pickle=False) as f:
            if "format" not in f or str(f["format"]) != EMBEDDING_FORMAT:
                raise ValidationError("file", str(path), "latents written by `bfm-stim embed` (.npz)")
            return cls(f["latents"], f["times"], float(f["patch_s"]), tuple(str(c) for c in f["ch_names"]),
                       f["embedding"], json.loads(str(f["meta"])))


def embed_signal(data: Any, fs: float, positions: Any, *, ch_names: Sequence[str] = (), source: str | Path | None = None,
                 rest: Any = None, t0: float = 0.0, model: Any = None, embedding: torch.Tensor | None = None,
                 info: dict[str, Any] | None = None) -> Embedding:
    """Per-patch latents of a continuous recording.

    Args:
        data: (C, T) µV at ``fs``.
        fs: sampling rate of ``data``, Hz (resampled to the model's rate here).
        positions: (C, 3) m.
        ch_names: channel names (for the output).
        source: checkpoint or patient file (default the shipped model); ignored when ``model`` is given.
        rest: (C, T_rest) µV at ``fs`` to infer the patient embedding from (default: ``data`` itself);
            unused with a patient file's embedding or an explicit ``embedding``.
        t0: time of the first sample, s.
        model, embedding, info: a loaded :func:`load_encoder` result, to reuse.

    Returns: :class:`Embedding` with consecutive context windows' latents (as
    :meth:`bfm_stim.surrogate.Surrogate.latents` reads a recording).
    """
    from bfm_stim.model.adapt import infer_embedding

    if model is None:
        model, embedding, info = load_encoder(source)
    info = dict(info or {})
    cfg = model.config
    x = _resample(np.asarray(data, dtype=np.float64), fs, cfg.fs)
    pos = np.asarray(positions, dtype=np.float64)
    if x.ndim != 2 or pos.shape != (x.shape[0], 3):
        raise ValidationError("data", (tuple(x.shape), tuple(pos.shape)), "data (C, T) µV with positions (C, 3) m")
    how = "given"
    if embedding is None:
        r = x if rest is None else _resample(np.asarray(rest, dtype=np.float64), fs, cfg.fs)
        embedding = infer_embedding(model, r, pos)
        how = "zero_shot (rest encoder on " + ("the recording itself)" if rest is None else "the rest given)")
    elif info.get("kind") == "patient_file":
        how = "patient_file"
    L = cfg.patch_len
    cw = max(2, cfg.max_patches - cfg.horizon_patches) * L
    n = x.shape[1] // cw
    lat, times = [], []
    if n:
        z = encode_windows(model, x[:, : n * cw].reshape(x.shape[0], n, cw).transpose(1, 0, 2), pos, embedding)
        lat.append(z.reshape(-1, z.shape[-1]).numpy())
        times.append(t0 + (np.arange(z.shape[0] * z.shape[1]) + 1) * L / cfg.fs)
    rem = x.shape[1] - n * cw
    if rem >= 2 * L:  # the tail: its own (shorter) context
        p = rem // L
        z = encode_windows(model, x[None, :, n * cw: n * cw + p * L], pos, embedding)[0]
        lat.append(z.numpy())
        times.append(t0 + (n * cw + (np.arange(p) + 1) * L) / cfg.fs)
    if not lat:
        raise ValidationError("recording length", x.shape[1] / cfg.fs, f">= {2 * L / cfg.fs:g} s")
    meta = {"model": info.get("path"), "model_digest": info.get("digest"), "model_kind": info.get("kind"),
            "embedding": how, "fs_model": cfg.fs, "fs_input": float(fs), "context_s": cw / cfg.fs}
    return Embedding(np.concatenate(lat), np.concatenate(times), L / cfg.fs, tuple(ch_names),
                     np.asarray(embedding, dtype=np.float32).reshape(-1), meta)


class LatentEncoder:
    """scikit-learn transformer: windows (N, C, T) µV -> pooled BFM latents (N, D).

    Args:
        positions: (C, 3) electrode positions, m (NaN where unknown); default from the patient file.
        fs: sampling rate of the windows, Hz (resampled to the model's rate).
        source: BFM checkpoint or ``bfm-stim adapt`` patient file (None: the shipped checkpoint).
        embedding: how ``fit`` gets the patient embedding: ``"infer"`` (the rest encoder on the fit
            windows: zero-shot adaptation), ``"patient_file"`` (the file's adapted embedding), or a
            (d_patient,) array to use as it is.
        pool: ``"mean"`` (mean latent of the window), ``"mean+std"``, ``"last"`` or ``"mean+scale"`` (the
            mean latent and :func:`window_scale`: the amplitude the per-window normalisation removes).

    Attributes after ``fit``: ``embedding_`` (d_patient,), ``n_features_out_``, ``model_info_``.
    """

    def __init__(self, positions: Any = None, fs: float = 250.0, source: str | Path | None = None,
                 embedding: Any = "infer", pool: str = "mean") -> None:
        self.positions, self.fs, self.source, self.embedding, self.pool = positions, fs, source, embedding, pool

    # scikit-learn's estimator protocol (no base class needed: get_params/set_params/fit/transform)
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"positions": self.positions, "fs": self.fs, "source": self.source, "embedding": self.embedding,
                "pool": self.pool}

    def set_params(self, **params: Any) -> "LatentEncoder":
        for k, v in params.items():
            if k not in self.get_params():
                raise ValidationError("parameter", k, f"one of {sorted(self.get_params())}")
            setattr(self, k, v)
        return self

    def __sklearn_tags__(self):  # noqa: ANN204 - scikit-learn >= 1.6 asks estimators for their tags
        from sklearn.utils import Tags, TargetTags, TransformerTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False), transformer_tags=TransformerTags(),
                    requires_fit=True)

    def _model(self) -> tuple[Any, torch.Tensor | None, dict[str, Any]]:
        if getattr(self, "_loaded", None) is None or self._loaded[0] != self.source:
            self._loaded = (self.source, *load_encoder(self.source))
        return self._loaded[1:]

    def _resampled(self, X: Any) -> np.ndarray:
        return _resample(_as_windows(X).numpy(), float(self.fs), self._model()[0].config.fs)

    def fit(self, X: Any, y: Any = None) -> "LatentEncoder":
        """Adapt: the patient embedding (see ``embedding``) from windows X (N, C, T) µV."""
        from bfm_stim.model.adapt import infer_embedding

        if self.pool not in POOLS:
            raise ValidationError("pool", self.pool, f"one of {POOLS}")
        model, file_emb, info = self._model()
        x = self._resampled(X)
        pos = self._positions(info, x.shape[1])
        if isinstance(self.embedding, str) and self.embedding == "infer":
            wins_needed = max(2, model.config.max_patches - model.config.horizon_patches) * model.config.patch_len
            rest = x.transpose(1, 0, 2).reshape(x.shape[1], -1)
            if rest.shape[1] < wins_needed:
                raise ValidationError("X", tuple(x.shape), f">= {wins_needed} samples in all to infer the embedding")
            self.embedding_ = infer_embedding(model, rest, pos)
        elif isinstance(self.embedding, str) and self.embedding == "patient_file":
            if file_emb is None:
                raise ValidationError("embedding", "patient_file", "a `bfm-stim adapt` patient file as source")
            self.embedding_ = file_emb
        elif isinstance(self.embedding, str):
            raise ValidationError("embedding", self.embedding, "'infer', 'patient_file' or a (d_patient,) array")
        else:
            self.embedding_ = torch.as_tensor(np.asarray(self.embedding, dtype=np.float32)).reshape(-1)
        self.positions_ = pos
        self.n_features_out_ = model.config.d_latent * (2 if self.pool == "mean+std" else 1) + (self.pool == "mean+scale")
        self.model_info_ = {k: v for k, v in info.items() if k in ("kind", "digest", "path")}
        return self

    def _positions(self, info: dict[str, Any], n_channels: int) -> np.ndarray:
        pos = self.positions if self.positions is not None else info.get("positions")
        if pos is None:
            raise ValidationError("positions", None, f"({n_channels}, 3) electrode positions in m (NaN where unknown)")
        pos = np.asarray(pos, dtype=np.float64)
        if pos.shape != (n_channels, 3):
            raise ValidationError("positions", pos.shape, f"({n_channels}, 3) in m: one row per channel of X")
        return pos

    def transform(self, X: Any) -> np.ndarray:
        """Pooled latents (N, n_features_out_) of windows X (N, C, T) µV."""
        if not hasattr(self, "embedding_"):
            raise ModelError("LatentEncoder is not fitted: call fit(X) (it infers the patient embedding) first")
        model = self._model()[0]
        x = self._resampled(X)
        if x.shape[1] != self.positions_.shape[0]:
            raise ValidationError("X channels", x.shape[1], f"{self.positions_.shape[0]} (as fitted)")
        return _pool(encode_windows(model, x, self.positions_, self.embedding_), self.pool, x)

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X, y).transform(X)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        d = self._model()[0].config.d_latent
        names = [f"z{i}" for i in range(d)]
        if self.pool == "mean+std":
            names += [f"z{i}_std" for i in range(d)]
        if self.pool == "mean+scale":
            names += ["log10_scale"]
        return np.asarray(names, dtype=object)
