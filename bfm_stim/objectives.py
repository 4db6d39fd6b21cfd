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
from bfm_stim.stim_features import FEATURE_NAMES

if TYPE_CHECKING:
    from bfm_stim.surrogate import Forecast, Surrogate

__all__ = ["LatentTarget", "band_power", "BandPowerObjective", "EnergyPenalized", "energy_penalty",
           "energy_from_features", "teed_from_features"]


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
    """Cost from the band power of the response (e.g. minimise beta power in the STN).

    On a :class:`~bfm_stim.surrogate.Forecast` of a model with biomarker heads for this band, the
    cost reads the heads' prediction of the response window's log band power per channel (what the
    trial will measure; :mod:`bfm_stim.model.biomarker`), combined over ``channels`` as the log of
    the mean power. Otherwise (no heads, another band, ``use_heads=False``, or a plain signal
    tensor) it is the band power of the forecast signal, which for a conditional-mean forecast
    underestimates the power of oscillations the model cannot phase-lock.

    Attributes:
        band: (low, high) Hz.
        fs: sampling rate, Hz.
        channels: channel indices (default all).
        target: if given, cost = (log power - target)²; else cost = sign * log power.
        sign: +1 to minimise the power, -1 to maximise it.
        log_base: base of the log (10: log10 µV²/Hz; ``math.e`` matches the simulators' measured
            ``simulators.BandPowerObjective``, so energy weights mean the same on both sides).
        use_heads: read the biomarker heads where the forecast has them for this band.
    """

    band: tuple[float, float]
    fs: float
    channels: tuple[int, ...] | None = None
    target: float | None = None
    sign: float = 1.0
    log_base: float = 10.0
    use_heads: bool = True

    def __post_init__(self) -> None:
        if not (self.log_base > 1.0):
            raise ValidationError("log_base", self.log_base, "a number > 1 (10 or e)")

    def _head_index(self, bands: "tuple[tuple[float, float], ...]") -> int | None:
        from bfm_stim.model.biomarker import band_index
        return band_index(bands, self.band) if self.use_heads and bands else None

    def needs_signal(self, surrogate: object) -> bool:
        """Whether forecasts of ``surrogate`` need the signal read-out for this objective (not when
        its model has biomarker heads for the band)."""
        model = getattr(surrogate, "model", None)
        if getattr(model, "biomarker", None) is None:
            return True
        return self._head_index(model.config.biomarker_bands) is None

    def log_power(self, forecast: "Forecast | Tensor") -> Tensor:
        """log (base ``log_base``) of the band power over ``channels``, (N,)."""
        import math
        conv = 1.0 / math.log10(self.log_base)
        chans = list(self.channels) if self.channels else None
        if not isinstance(forecast, Tensor) and forecast.biomarker is not None:
            i = self._head_index(forecast.bands)
            if i is not None:
                lp = forecast.biomarker[..., i]  # (N, C) log10 µV²/Hz
                if chans is not None:
                    lp = lp[:, chans]
                ln10 = math.log(10.0)
                p10 = (torch.logsumexp(lp * ln10, -1) - math.log(lp.shape[-1])) / ln10  # log10 of the channel mean
                return p10 * conv
        sig = forecast if isinstance(forecast, Tensor) else forecast.signal
        if sig is None:
            raise ValidationError("forecast", "signal=None", "a forecast made with signal=True (or a model with "
                                  f"biomarker heads for {self.band} Hz)")
        return band_power(sig, self.fs, self.band, channels=chans) * conv

    def __call__(self, forecast: "Forecast | Tensor") -> Tensor:
        """Cost (N,) of a forecast signal (N, C, T) µV or a :class:`Forecast`."""
        p = self.log_power(forecast)
        return (p - self.target) ** 2 if self.target is not None else self.sign * p


@dataclass(frozen=True)
class EnergyPenalized:
    """An objective plus a weighted delivered-energy penalty: protocols that reach the goal with
    less charge win.

    cost = ``objective(forecast) + weight * TEED``, TEED = I² · f · pw per second of stimulation
    (mA² · Hz · ms, the total electrical energy delivered up to the constant impedance; 0 for
    sensory stimuli), the measure ``simulators.BandPowerObjective(energy_weight=...)`` adds to a
    measured trial, so the same weight means the same trade-off on both sides.

    Attributes:
        objective: the biomarker objective (e.g. :class:`BandPowerObjective` with ``log_base=math.e``).
        weight: cost units per mA² · Hz · ms (>= 0).
    """

    objective: object
    weight: float

    def __post_init__(self) -> None:
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or not self.weight >= 0:
            raise ValidationError("energy weight", self.weight, "a number >= 0 (cost units per mA²·Hz·ms)")

    def needs_signal(self, surrogate: object) -> bool:
        needs = getattr(self.objective, "needs_signal", None)
        return bool(needs(surrogate)) if callable(needs) else True

    def __call__(self, forecast: "Forecast") -> Tensor:
        """Cost (N,) of a :class:`Forecast` (it carries the candidates' features)."""
        base = self.objective(forecast)  # type: ignore[operator]
        feats = getattr(forecast, "features", None)
        if feats is None:
            raise ValidationError("forecast", type(forecast).__name__, "a Forecast carrying the stimulus features")
        f = feats[:, 0] if feats.dim() == 3 else feats
        return base + self.weight * teed_from_features(f).to(base)


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


def teed_from_features(features: Tensor) -> Tensor:
    """TEED-like energy per second of stimulation, mA² · Hz · ms, from model features (…, N_FEATURES)
    (``simulators.oracle.energy`` of the same stimulus; 0 for non-electrical). Differentiable."""
    i = {n: k for k, n in enumerate(FEATURE_NAMES)}
    amp = features[..., i["amplitude"]] * 5.0
    pw_ms = features[..., i["pulse_width"]] * 500.0 / 1000.0
    freq = torch.expm1(features[..., i["log_frequency"]] * float(np.log1p(250.0))) * features[..., i["electrical"]]
    return amp ** 2 * freq * pw_ms
