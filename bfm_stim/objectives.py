"""Objectives for stimulation optimisation: plain ``torch`` functions, so Bayesian optimisation
and gradients through the surrogate share them. Every cost is "lower is better", shape (N,).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from bfm_stim.exceptions import ValidationError
from bfm_stim.space import FEATURE_NAMES

if TYPE_CHECKING:
    from bfm_stim.surrogate import Forecast, Surrogate

__all__ = ["LatentTarget", "band_power", "BandPowerObjective", "energy_penalty", "energy_from_features"]


def _latent_of(x: "Forecast | Tensor") -> Tensor:
    """The latents a target compares: a tensor as given; of a forecast, the predicted response
    latents (the frame :meth:`Surrogate.latents` measures) where the model has a response head,
    else the rolled-out latents."""
    if isinstance(x, Tensor):
        return x
    r = getattr(x, "response", None)
    return x.z if r is None else r


@dataclass(frozen=True)
class LatentTarget:
    """A desired latent state; cost = weighted squared distance, averaged over the horizon.

    Targets are read with :meth:`~bfm_stim.surrogate.Surrogate.latents` (a recording normalised by
    its own statistics, stimulus input off), and so is a measured trial; a forecast is compared
    through its ``response`` latents, the model's prediction of that reading of the horizon after
    onset (the window a trial of ``loops.offline.run_trial`` is scored over; see
    :mod:`bfm_stim.model.response`).

    Attributes:
        z: (D,) target latent.
        weight: (D,) per-dimension weights (default ones), e.g. 1 / variance of the latent.
        last: if > 0, only the last ``last`` horizon patches count (the settled response).
    """

    z: Tensor
    weight: Tensor | None = None
    last: int = 0

    def __post_init__(self) -> None:
        if self.z.dim() != 1 or not torch.isfinite(self.z).all():
            raise ValidationError("z", tuple(self.z.shape), "a finite vector (D,)")
        if self.weight is not None and (self.weight.shape != self.z.shape or (self.weight < 0).any()):
            raise ValidationError("weight", tuple(self.weight.shape), f"non-negative weights of shape {tuple(self.z.shape)}")
        if self.last < 0:
            raise ValidationError("last", self.last, "an integer >= 0")

    @classmethod
    def from_vector(cls, z: Tensor | np.ndarray | list[float], weight: Tensor | None = None, *, last: int = 0) -> "LatentTarget":
        """Target from an explicit latent vector (D,)."""
        return cls(torch.as_tensor(np.asarray(z, dtype=np.float32)).reshape(-1), weight, last)

    @classmethod
    def from_recording(cls, surrogate: "Surrogate", data: "Tensor | np.ndarray | object", *,
                       whiten: bool = True, last: int = 0) -> "LatentTarget":
        """Target = mean encoder latent of a recording of the desired state (e.g. a healthy segment).

        Args:
            surrogate: the patient's surrogate (fixes montage, rate and embedding).
            data: (C, T) µV at ``surrogate.fs``, or a :class:`~bfm_stim.recording.Recording`
                (resampled to the surrogate's rate; its channels must match the montage).
            whiten: weight each dimension by 1 / its variance over the recording.
            last: see :attr:`last`.
        """
        if hasattr(data, "data") and hasattr(data, "fs"):
            rec = data
            if abs(rec.fs - surrogate.fs) > 1e-6:
                rec = rec.resample(surrogate.fs)
            data = rec.data
        z = surrogate.latents(data)
        w = 1.0 / (z.var(0) + 1e-3) if whiten and len(z) > 1 else None
        if w is not None:
            w = w / w.mean()
        return cls(z.mean(0).detach(), None if w is None else w.detach(), last)

    def __call__(self, forecast: "Forecast | Tensor") -> Tensor:
        """Cost (N,) of latents (N, H, D) or (N, D), or of a :class:`Forecast`; differentiable."""
        z = _latent_of(forecast)
        if z.dim() == 2:
            z = z[:, None]
        if z.shape[-1] != self.z.shape[0]:
            raise ValidationError("z", tuple(z.shape), f"latents of width {self.z.shape[0]}")
        if self.last:
            z = z[:, -self.last:]
        d2 = (z - self.z.to(z)) ** 2
        if self.weight is not None:
            d2 = d2 * self.weight.to(z)
        return d2.mean((1, 2))


def band_power(signal: Tensor, fs: float, band: tuple[float, float], *, channels: list[int] | None = None,
               log: bool = True) -> Tensor:
    """Mean band power over channels (Hann-windowed periodogram).

    Args:
        signal: (N, C, T) µV.
        fs: sampling rate, Hz.
        band: (low, high) Hz.
        channels: channel indices to average (default all).
        log: return log10 of the power (µV²/Hz).

    Returns: (N,) power, differentiable.
    """
    lo, hi = band
    if not 0 <= lo < hi <= fs / 2:
        raise ValidationError("band", band, f"0 <= low < high <= Nyquist ({fs / 2} Hz)")
    x = signal if channels is None else signal[:, channels]
    x = x - x.mean(-1, keepdim=True)
    t = x.shape[-1]
    w = torch.hann_window(t, dtype=x.dtype, device=x.device)
    psd = torch.fft.rfft(x * w).abs() ** 2 / (fs * (w ** 2).sum())
    f = torch.fft.rfftfreq(t, 1.0 / fs).to(x.device)
    sel = (f >= lo) & (f <= hi)
    if not sel.any():
        raise ValidationError("band", band, f"a band containing a frequency bin (resolution {fs / t:.2f} Hz)")
    p = psd[..., sel].mean((-1, -2))
    return torch.log10(p + 1e-12) if log else p


@dataclass(frozen=True)
class BandPowerObjective:
    """Cost from band power of the forecast signal (e.g. minimise beta power in the STN).

    Attributes:
        band: (low, high) Hz.
        fs: sampling rate, Hz.
        channels: channel indices (default all).
        target: if given, cost = (log power - target)²; else cost = sign * log power.
        sign: +1 to minimise the power, -1 to maximise it.
    """

    band: tuple[float, float]
    fs: float
    channels: tuple[int, ...] | None = None
    target: float | None = None
    sign: float = 1.0

    def __call__(self, forecast: "Forecast | Tensor") -> Tensor:
        """Cost (N,) of a forecast signal (N, C, T) µV or a :class:`Forecast`."""
        sig = forecast if isinstance(forecast, Tensor) else forecast.signal
        if sig is None:
            raise ValidationError("forecast", "signal=None", "a forecast made with signal=True")
        p = band_power(sig, self.fs, self.band, channels=list(self.channels) if self.channels else None)
        return (p - self.target) ** 2 if self.target is not None else self.sign * p


def energy_penalty(amplitude_ma: Tensor, pulse_width_us: Tensor, frequency_hz: Tensor, duration_s: Tensor | float = 1.0,
                   *, impedance_ohm: float = 1000.0, biphasic: bool = True) -> Tensor:
    """Delivered electrical energy, µJ: I² · R · (phase width · phases) · rate · duration.

    Args: amplitude_ma, pulse_width_us, frequency_hz (N,) tensors; duration_s (N,) or float, s;
    impedance_ohm: electrode impedance, Ω. Returns (N,) µJ, differentiable.
    """
    phases = 2.0 if biphasic else 1.0
    i_a = amplitude_ma * 1e-3
    return i_a ** 2 * impedance_ohm * (pulse_width_us * 1e-6 * phases) * frequency_hz * duration_s * 1e6


def energy_from_features(features: Tensor, duration_s: Tensor | float = 1.0, *, impedance_ohm: float = 1000.0) -> Tensor:
    """:func:`energy_penalty` computed from model features (…, N_FEATURES) (inverts their scaling), µJ."""
    i = {n: k for k, n in enumerate(FEATURE_NAMES)}
    amp = features[..., i["amplitude"]] * 5.0
    pw = features[..., i["pulse_width"]] * 500.0
    freq = torch.expm1(features[..., i["log_frequency"]] * float(np.log1p(250.0))) * features[..., i["electrical"]]
    return energy_penalty(amp, pw, freq, duration_s, impedance_ohm=impedance_ohm)
