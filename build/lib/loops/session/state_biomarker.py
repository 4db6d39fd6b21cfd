"""A latent-space state decoder as the biomarker of the continuous mode.

``[continuous] biomarker = "state:decoder.npz"`` replaces the beta band power by the probability
the foundation model's latents give to a state (e.g. ``pathological``): every control period the
newest ``window_s`` of the model's channels is encoded with the session's adapted model and patient
embedding, pooled as the decoder was trained (mean latent and amplitude), aligned to this patient's
calibration rest when the decoder asks for it (``meta.align = "rest"``: a decoder trained on other
patients, see ``bfm-stim decode --simulated``), and read out. The controller calibrates its
thresholds on the same quantity over the rest, as it does for band power.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bfm_stim.exceptions import ConfigError
from loops.session.biomarker import ExpSmoother

__all__ = ["LatentStateBiomarker"]


class LatentStateBiomarker:
    """P(``decoder.classes[1]``) of the newest window.

    Args:
        decoder: a :class:`bfm_stim.decoding.StateDecoder` on latent ``mean+scale`` features.
        surrogate: the session's :class:`~bfm_stim.surrogate.Surrogate` (model, positions, embedding).
        rows: stream rows of the model's channels, in the model's order.
        fs: stream rate, Hz.
        rest: (n_stream_channels, T) calibration rest at ``fs``, µV (for the rest alignment).
        smoothing_s, period_s: exponential smoothing, as :class:`~loops.session.biomarker.BandPowerBiomarker`.
    """

    def __init__(self, decoder: Any, surrogate: Any, rows: Sequence[int], fs: float, rest: np.ndarray | None = None,
                 *, smoothing_s: float = 0.0, period_s: float = 0.1) -> None:
        from bfm_stim.decoding import RestAlignment

        feats = str(decoder.meta.get("features", ""))
        if not feats.startswith("latent"):
            raise ConfigError(f"the state decoder was trained on {feats or 'unknown'} features; the continuous mode "
                              "reads latent decoders (bfm-stim decode --save / --simulated)")
        if surrogate is None:
            raise ConfigError("biomarker = 'state:...' needs the foundation model: the session's calibration has no "
                              "surrogate (a model-free target); use a latent or healthy target")
        self.decoder, self.sur, self.rows, self.fs = decoder, surrogate, list(rows), float(fs)
        self.n = int(round(decoder.window_s * fs))
        self.label = decoder.classes[1]
        self.align = None
        if decoder.meta.get("align") == "rest" and decoder.align_mean is None:
            if rest is None or rest.shape[1] < 2 * self.n:
                raise ConfigError(f"the state decoder needs this patient's rest to align to (>= {2 * self.n / fs:g} s)")
            step = max(1, self.n // 4)  # windows overlapping by 3/4: more samples of the rest's statistics
            wins = np.stack([rest[self.rows, i:i + self.n] for i in range(0, rest.shape[1] - self.n + 1, step)])
            self.align = RestAlignment().fit(self.features(wins))
        self.smoother = ExpSmoother(smoothing_s, period_s)

    @property
    def n_samples(self) -> int:
        return self.n

    def features(self, windows: np.ndarray) -> np.ndarray:
        """(N, d_latent + 1) mean latent and amplitude of windows (N, C_model, n) at the stream rate."""
        import torch

        from bfm_stim.features import _pool, _resample, encode_windows

        x = _resample(windows, self.fs, self.sur.fs)
        with torch.no_grad():
            z = encode_windows(self.sur.model, x, self.sur.positions.numpy(), self.sur.patient)
        return _pool(z, "mean+scale", x)

    def __call__(self, window: np.ndarray) -> float:
        x = np.asarray(window)[self.rows, -self.n:]
        if x.shape[1] < self.n or not np.isfinite(x).all():
            return float("nan")
        f = self.features(x[None])
        if self.align is not None:
            f = self.align.transform(f)
        return self.smoother(float(self.decoder.probability(f)[0]))

    def reset(self) -> None:
        self.smoother.reset()

    def __repr__(self) -> str:
        return f"LatentStateBiomarker(P({self.label}), window_s={self.decoder.window_s:g})"
