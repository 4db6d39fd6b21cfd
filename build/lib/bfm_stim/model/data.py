"""Training data for the BFM: patient series, windows, and a sharded on-disk corpus.

A corpus is a directory with ``manifest.json`` and shards ``shard_00000.npz`` …, each holding a few
patients as padded arrays. It is written once (:class:`ShardWriter`) and streamed during training
(:class:`CorpusStream`), a couple of shards in memory at a time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from bfm_stim.exceptions import ModelError, ValidationError

__all__ = ["PatientSeries", "Batch", "sample_batch", "ShardWriter", "CorpusStream", "load_manifest",
           "patch_stimulus"]

MANIFEST_VERSION = 1


@dataclass
class PatientSeries:
    """One patient's continuous recording at the model rate, with the stimulus active at each sample.

    Attributes:
        data: (C, T) signal, µV.
        positions: (C, 3) electrode positions, m (NaN where unknown).
        stim_ids: (T,) int index into ``stim_table`` per sample (row 0 = off).
        stim_table: (n_stim, F) stimulus features; row 0 is the "off" features.
        rest_samples: the first ``rest_samples`` samples are stimulation-off rest.
        patient: training patient index (row of the embedding table), -1 if none.
        group: label for contrastive alignment (same group = same regime and family), -1 if none.
        meta: JSON-able description (id, seed, family, regime, ...).
        forecaster: optional (C, lags, H) linear forecaster of the ongoing activity
            (:func:`bfm_stim.model.linear.fit_forecaster`; see :meth:`with_forecaster`).
    """

    data: np.ndarray
    positions: np.ndarray
    stim_ids: np.ndarray
    stim_table: np.ndarray
    rest_samples: int
    patient: int = -1
    group: int = -1
    meta: dict[str, Any] = field(default_factory=dict)
    forecaster: np.ndarray | None = None

    def __post_init__(self) -> None:
        c, t = self.data.shape
        if self.positions.shape != (c, 3):
            raise ValidationError("positions", self.positions.shape, f"shape ({c}, 3)")
        if self.stim_ids.shape != (t,):
            raise ValidationError("stim_ids", self.stim_ids.shape, f"shape ({t},)")
        if not 0 <= self.rest_samples <= t:
            raise ValidationError("rest_samples", self.rest_samples, f"0..{t}")

    @property
    def onsets(self) -> np.ndarray:
        """Sample indices where a stimulus switches on."""
        on = self.stim_ids > 0
        return np.flatnonzero(on[1:] & ~on[:-1]) + 1

    def samples_since_onset(self) -> np.ndarray:
        """(T,) samples since the current stimulus switched on (-1 where none acts); cached."""
        cached = self.__dict__.get("_since_onset")
        if cached is not None and len(cached) == len(self.stim_ids):
            return cached
        ids = self.stim_ids
        t = len(ids)
        change = np.r_[True, ids[1:] != ids[:-1]]
        run_start = np.maximum.accumulate(np.where(change, np.arange(t), 0))
        out = np.where(ids > 0, np.arange(t) - run_start, -1).astype(np.float32)
        self.__dict__["_since_onset"] = out
        return out

    def off_mask(self, guard: int) -> np.ndarray:
        """(T,) True where no stimulus acts and none ended in the last ``guard`` samples."""
        on = self.stim_ids > 0
        if guard > 0 and on.any():
            on = np.convolve(on.astype(np.float32), np.ones(guard + 1, np.float32))[: len(on)] > 0
        return ~on

    def with_forecaster(self, lags: int, horizon: int, fs: float, guard_s: float = 0.5) -> "PatientSeries":
        """Fit the linear forecaster on this series' stimulation-off stretches (in place; returns self)."""
        from bfm_stim.model.linear import fit_forecaster

        if self.forecaster is None or self.forecaster.shape[1:] != (lags, horizon):
            self.forecaster = fit_forecaster(self.data, lags=lags, horizon=horizon,
                                             off=self.off_mask(int(round(guard_s * fs))))
        return self


@dataclass
class Batch:
    """A batch of training windows (channels padded to the batch maximum).

    Attributes:
        x: (B, C, T) signal, µV, T = (n_ctx + n_hor) * patch_len.
        positions: (B, C, 3) m.
        valid: (B, C) bool, False for padding channels.
        stim: (B, P, F) stimulus features per patch.
        patient: (B,) long training patient indices.
        group: (B,) long contrastive group labels.
        rest: (B, C, T_rest) stimulation-off data of the same patient, µV.
        n_ctx: context patches; the rest of the window is the forecast horizon.
        base: (B, C, n_hor * patch_len) the linear forecast of each window's horizon from its
            context, normalised by the context statistics (zeros for padding channels), or None
            when the series carry no forecaster.
        t_on: (B, n_hor * patch_len) samples since the onset of the stimulus acting at each
            horizon sample (-1 where none acts): the stimulus-locked head's time reference.
    """

    x: Tensor
    positions: Tensor
    valid: Tensor
    stim: Tensor
    patient: Tensor
    group: Tensor
    rest: Tensor
    n_ctx: int
    base: Tensor | None = None
    t_on: Tensor | None = None

    def to(self, device: torch.device | str) -> "Batch":
        """Move every tensor to ``device``."""
        kw = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()}
        return Batch(**kw)


def patch_stimulus(stim_ids: np.ndarray, stim_table: np.ndarray, patch_len: int) -> np.ndarray:
    """Per-patch stimulus features: the mean over samples of each sample's features.

    Args: stim_ids (T,) with T a multiple of patch_len; stim_table (n_stim, F).
    Returns: (T // patch_len, F).
    """
    feats = stim_table[stim_ids]  # (T, F)
    return feats.reshape(-1, patch_len, feats.shape[-1]).mean(1)


def sample_batch(series: Sequence[PatientSeries], batch_size: int, *, n_ctx: int, n_hor: int, patch_len: int,
                 rng: np.random.Generator, onset_frac: float = 0.5, rest_patches: int | None = None,
                 max_channels: int = 0) -> Batch:
    """Draw random windows; ``onset_frac`` of them put a stimulus onset just after the context.

    With ``max_channels > 0``, each window keeps a random subset of at most that many channels
    (cheaper steps, and an augmentation: the read-in must work from any montage).

    Raises:
        ModelError: when a series is shorter than one window.
    """
    win = (n_ctx + n_hor) * patch_len
    rest_len = (rest_patches or n_ctx) * patch_len
    c_max = max(s.data.shape[0] for s in series)
    if max_channels > 0:
        c_max = min(c_max, max_channels)
    f = series[0].stim_table.shape[1]
    x = np.zeros((batch_size, c_max, win), np.float32)
    rest = np.zeros((batch_size, c_max, rest_len), np.float32)
    pos = np.zeros((batch_size, c_max, 3), np.float32)
    valid = np.zeros((batch_size, c_max), bool)
    stim = np.zeros((batch_size, n_ctx + n_hor, f), np.float32)
    patient = np.zeros(batch_size, np.int64)
    group = np.zeros(batch_size, np.int64)
    fc_shape = next((s.forecaster.shape for s in series if s.forecaster is not None), None)
    fc = None
    if fc_shape is not None:
        if fc_shape[2] < n_hor * patch_len:
            raise ModelError(f"forecasters cover {fc_shape[2]} samples; the horizon needs {n_hor * patch_len}")
        fc = np.zeros((batch_size, c_max, n_hor * patch_len), np.float32)
    t_on = np.full((batch_size, n_hor * patch_len), -1.0, np.float32)
    for i in range(batch_size):
        s = series[int(rng.integers(len(series)))]
        c, t = s.data.shape
        chans = np.sort(rng.choice(c, max_channels, replace=False)) if 0 < max_channels < c else slice(None)
        c = min(c, c_max)
        if t < win or s.rest_samples < rest_len:
            raise ModelError(f"series {s.meta.get('id', '?')} too short: {t=} samples, rest {s.rest_samples}; "
                             f"need a window of {win} and rest of {rest_len}")
        onsets = s.onsets
        onsets = onsets[(onsets >= n_ctx * patch_len) & (onsets + n_hor * patch_len <= t)]
        if len(onsets) and rng.random() < onset_frac:
            start = int(rng.choice(onsets)) - n_ctx * patch_len + int(rng.integers(-patch_len, patch_len + 1))
        else:
            start = int(rng.integers(0, t - win + 1))
        start = min(max(start, 0), t - win)
        r0 = int(rng.integers(0, s.rest_samples - rest_len + 1))
        x[i, :c] = s.data[chans, start:start + win]
        rest[i, :c] = s.data[chans, r0:r0 + rest_len]
        pos[i, :c] = s.positions[chans]
        valid[i, :c] = True
        stim[i] = patch_stimulus(s.stim_ids[start:start + win], s.stim_table, patch_len)
        patient[i], group[i] = s.patient, s.group
        t_on[i] = s.samples_since_onset()[start + n_ctx * patch_len:start + win]
        if fc is not None:
            if s.forecaster is None or s.forecaster.shape[1] != fc_shape[1]:
                raise ModelError(f"series {s.meta.get('id', '?')} has no forecaster of {fc_shape[1]} lags; "
                                 "fit every series with PatientSeries.with_forecaster")
            xc = x[i, :c, : n_ctx * patch_len].astype(np.float64)  # as compute_losses normalises
            sd = np.maximum(xc.std(-1, ddof=1, keepdims=True), 1e-3)
            hist = ((xc[:, -fc_shape[1]:] - xc.mean(-1, keepdims=True)) / sd)[:, ::-1]
            fc[i, :c] = np.einsum("cl,clh->ch", hist, s.forecaster[chans, :, : n_hor * patch_len])
    t_ = torch.from_numpy
    return Batch(t_(x), t_(pos), t_(valid), t_(stim), t_(patient), t_(group), t_(rest), n_ctx,
                 None if fc is None else t_(fc), t_(t_on))


class ShardWriter:
    """Write patient series into ``.npz`` shards plus a JSON manifest.

    Args:
        out_dir: corpus directory (created).
        patients_per_shard: patients per shard file.
        info: extra JSON-able metadata for the manifest (fs, feature names, corpus config...).
    """

    def __init__(self, out_dir: str | Path, *, patients_per_shard: int = 8, info: dict[str, Any] | None = None) -> None:
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.per_shard = patients_per_shard
        self.info = dict(info or {})
        self._pending: list[PatientSeries] = []
        self._shards: list[dict[str, Any]] = []

    def add(self, s: PatientSeries) -> None:
        """Queue a series; a full shard is written immediately."""
        self._pending.append(s)
        if len(self._pending) >= self.per_shard:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        ps, name = self._pending, f"shard_{len(self._shards):05d}.npz"
        c_max = max(s.data.shape[0] for s in ps)
        t_max = max(s.data.shape[1] for s in ps)
        n_stim = max(s.stim_table.shape[0] for s in ps)
        f = ps[0].stim_table.shape[1]
        arr = {
            "data": np.zeros((len(ps), c_max, t_max), np.float32),
            "positions": np.full((len(ps), c_max, 3), np.nan, np.float32),
            "stim_ids": np.zeros((len(ps), t_max), np.int32),
            "stim_table": np.zeros((len(ps), n_stim, f), np.float32),
            "n_channels": np.array([s.data.shape[0] for s in ps]),
            "n_samples": np.array([s.data.shape[1] for s in ps]),
            "rest_samples": np.array([s.rest_samples for s in ps]),
            "patient": np.array([s.patient for s in ps]),
            "group": np.array([s.group for s in ps]),
        }
        for i, s in enumerate(ps):
            c, t = s.data.shape
            arr["data"][i, :c, :t] = s.data
            arr["positions"][i, :c] = s.positions
            arr["stim_ids"][i, :t] = s.stim_ids
            arr["stim_table"][i, : s.stim_table.shape[0]] = s.stim_table
        np.savez(self.dir / name, **arr)
        self._shards.append({"file": name, "patients": [s.meta for s in ps]})
        self._pending = []

    def close(self) -> Path:
        """Flush and write ``manifest.json``; returns its path."""
        self._flush()
        manifest = {"version": MANIFEST_VERSION, **self.info, "shards": self._shards,
                    "n_patients": sum(len(s["patients"]) for s in self._shards)}
        path = self.dir / "manifest.json"
        path.write_text(json.dumps(manifest, indent=1))
        return path


def load_manifest(corpus_dir: str | Path) -> dict[str, Any]:
    """Read and check ``manifest.json``; raises :class:`ModelError` when absent or of another version."""
    path = Path(corpus_dir) / "manifest.json"
    if not path.exists():
        raise ModelError(f"no corpus manifest at {path}")
    m = json.loads(path.read_text())
    if m.get("version") != MANIFEST_VERSION:
        raise ModelError(f"corpus manifest {path} has version {m.get('version')}; expected {MANIFEST_VERSION}")
    return m


def load_shard(path: str | Path) -> list[PatientSeries]:
    """Read one shard back into patient series (padding removed)."""
    with np.load(path) as z:
        out = []
        for i in range(len(z["n_channels"])):
            c, t = int(z["n_channels"][i]), int(z["n_samples"][i])
            out.append(PatientSeries(z["data"][i, :c, :t], z["positions"][i, :c], z["stim_ids"][i, :t],
                                     z["stim_table"][i], int(z["rest_samples"][i]), int(z["patient"][i]),
                                     int(z["group"][i])))
    return out


class CorpusStream:
    """Endless stream of batches from a sharded corpus, a few shards in memory at a time.

    With ``world`` ranks, rank ``r`` reads shards ``r, r + world, …`` (all shards, with its own
    random stream, when there are fewer shards than ranks).

    Args:
        corpus_dir: directory with ``manifest.json``.
        batch_size, n_ctx, n_hor, patch_len: window geometry (patches of ``patch_len`` samples).
        seed: random seed; the stream is deterministic given seed and rank.
        rank, world: data-parallel position.
        shards_in_memory: shards mixed at a time.
        batches_per_visit: batches drawn before the next shards are loaded.
        onset_frac: fraction of windows aligned to a stimulus onset.
        max_channels: random channel subset per window (0: all channels).
        forecaster_lags: fit each patient's linear forecaster with this many lags when its shard
            is loaded (0: none); ``fs`` (Hz) sets the post-stimulus guard.
    """

    def __init__(self, corpus_dir: str | Path, *, batch_size: int, n_ctx: int, n_hor: int, patch_len: int,
                 seed: int = 0, rank: int = 0, world: int = 1, shards_in_memory: int = 2,
                 batches_per_visit: int = 20, onset_frac: float = 0.5, max_channels: int = 0,
                 forecaster_lags: int = 0, fs: float = 250.0) -> None:
        self.forecaster_lags, self.fs = int(forecaster_lags), float(fs)
        self._fc_cache: dict[tuple[str, int], np.ndarray] = {}
        self.dir = Path(corpus_dir)
        self.manifest = load_manifest(self.dir)
        files = [s["file"] for s in self.manifest["shards"]]
        self.files = files[rank::world] if len(files) >= world else files
        self.kw = dict(batch_size=batch_size, n_ctx=n_ctx, n_hor=n_hor, patch_len=patch_len, onset_frac=onset_frac,
                       max_channels=max_channels)
        self.rng = np.random.default_rng([seed, rank])
        self.shards_in_memory, self.batches_per_visit = shards_in_memory, batches_per_visit

    def __iter__(self) -> Iterator[Batch]:
        while True:
            order = self.rng.permutation(len(self.files))
            for i in range(0, len(order), self.shards_in_memory):
                series = [s for j in order[i:i + self.shards_in_memory] for s in self._load(self.files[j])]
                for _ in range(self.batches_per_visit):
                    yield sample_batch(series, rng=self.rng, **self.kw)

    def _load(self, name: str) -> list[PatientSeries]:
        series = load_shard(self.dir / name)
        if self.forecaster_lags:
            hor = self.kw["n_hor"] * self.kw["patch_len"]
            for k, s in enumerate(series):
                key = (name, k)
                if key not in self._fc_cache:  # float16 cache: fitted once per patient and run
                    s.with_forecaster(self.forecaster_lags, hor, self.fs)
                    self._fc_cache[key] = s.forecaster.astype(np.float16)
                s.forecaster = self._fc_cache[key].astype(np.float32)
        return series
