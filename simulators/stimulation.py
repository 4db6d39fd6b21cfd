"""Electrical and sensory stimulation: strength–duration activation and pulse schedules.

A charge-balanced biphasic pulse of amplitude ``I`` (mA per phase) and phase width ``pw`` (µs)
recruits a neural element at distance ``r`` (mm) from the contact when ``I`` exceeds its
threshold, which combines the strength–duration relation of Lapicque/Weiss,
``I_th(pw) = I_rh (1 + chronaxie / pw)``, with the current–distance relation
``I_rh(r) = I_rh0 + k r²`` (Ranck 1975, Brain Res. 98:417–440; McIntyre et al. 2004). A
population's thresholds spread log-normally, so the recruited fraction is
``Φ(log(I / I_th) / width)``: nothing below threshold, saturation well above it.

Pulses are impulses of afferent input delivered in the sample in which they fall (1 kHz does not
resolve a 60 µs pulse); the model's synapses filter them, so pulse rate and amplitude interact
through the dynamics rather than by a formula. Pulse times depend only on absolute sample
indices, so a run in chunks is identical to one long run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy.special import ndtr

from bfm_stim.exceptions import ValidationError
from bfm_stim.space import Stimulus

__all__ = ["threshold_current_ma", "recruitment", "pulse_counts", "square_wave", "StimProgram", "HiddenSite"]


def threshold_current_ma(pulse_width_us: float, distance_mm: np.ndarray | float, *, rheobase_ma: float,
                         chronaxie_us: float, distance_k_ma_per_mm2: float) -> np.ndarray:
    """Threshold amplitude (mA) of elements at ``distance_mm`` for pulses of ``pulse_width_us``."""
    pw = max(float(pulse_width_us), 1e-3)
    r = np.asarray(distance_mm, dtype=np.float64)
    return (rheobase_ma + distance_k_ma_per_mm2 * r**2) * (1.0 + chronaxie_us / pw)


def recruitment(amplitude_ma: float, pulse_width_us: float, distance_mm: np.ndarray | float, *,
                rheobase_ma: float, chronaxie_us: float, distance_k_ma_per_mm2: float,
                width: float = 0.25) -> np.ndarray:
    """Fraction in [0, 1] of a population at ``distance_mm`` recruited by one pulse."""
    r = np.atleast_1d(np.asarray(distance_mm, dtype=np.float64))
    if amplitude_ma <= 0 or pulse_width_us <= 0:
        return np.zeros_like(r)
    ith = threshold_current_ma(pulse_width_us, r, rheobase_ma=rheobase_ma, chronaxie_us=chronaxie_us,
                               distance_k_ma_per_mm2=distance_k_ma_per_mm2)
    z = np.log(amplitude_ma / ith) / width
    return ndtr(z)


def pulse_counts(start: int, n: int, onset: int, end: int, frequency_hz: float, fs: float) -> np.ndarray:
    """Number of pulses falling in each sample ``start .. start+n-1`` of a train.

    Pulse ``j`` occurs at sample time ``onset + j * fs / frequency_hz`` and is delivered in the
    sample that contains it; the train stops at ``end`` (exclusive).
    """
    k = np.arange(start, start + n, dtype=np.float64)
    if frequency_hz <= 0:
        return np.zeros(n)
    period = fs / frequency_hz
    rel = k - onset
    c = np.ceil((rel + 1.0) / period - 1e-9) - np.ceil(rel / period - 1e-9)
    c[(k < onset) | (k >= end)] = 0.0
    return c


def square_wave(start: int, n: int, onset: int, end: int, frequency_hz: float, fs: float) -> np.ndarray:
    """50 % duty square wave in {0, 1} (flicker ON phases), zero outside the train."""
    k = np.arange(start, start + n, dtype=np.float64)
    phase = ((k - onset) * frequency_hz / fs) % 1.0
    w = (phase < 0.5).astype(np.float64)
    w[(k < onset) | (k >= end)] = 0.0
    return w


@dataclass
class StimProgram:
    """A stimulus bound to one patient: what each sample receives (per stimulation target).

    Attributes:
        stimulus: The stimulus.
        onset: First sample of the train (absolute sample index).
        end: Sample after the last one of the train.
        kick: (n_targets,) per-pulse input per target, family-defined (input area in pulses, or the
            recruited fraction that the family's kernel turns into input).
        drive: (n_targets,) rate added during flicker ON phases per target.
        artifact: (n_channels,) artifact per pulse on each channel, µV.
    """

    stimulus: Stimulus
    onset: int
    end: int
    kick: np.ndarray
    drive: np.ndarray
    artifact: np.ndarray

    def segment(self, start: int, n: int, fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pulses (n,), square (n,), active mask (n,)) for samples ``start .. start+n-1``."""
        s = self.stimulus
        k = np.arange(start, start + n)
        active = (k >= self.onset) & (k < self.end)
        if s.kind == "sensory" and s.modality == "visual_flicker":
            return np.zeros(n), square_wave(start, n, self.onset, self.end, s.frequency_hz, fs), active
        return pulse_counts(start, n, self.onset, self.end, s.frequency_hz, fs), np.zeros(n), active


class HiddenSite:
    """A hidden structure whose recruitment is a side effect (a motor hot spot, eloquent or afterdischarge-prone
    tissue): its recruited fraction, its threshold per contact, and the trial's reported severity.

    Args:
        position_mm: (3,) position of the structure, mm.
        rheobase_ma, chronaxie_us: Strength–duration constants of its elements (mA, µs).
        distance_k_ma_per_mm2: Current–distance constant, mA/mm².
        width: Spread of the recruitment sigmoid (see :func:`recruitment`).
        margin_mm: Distance subtracted from the contact–site distance (an extended site), mm.
    """

    def __init__(self, position_mm: np.ndarray, *, rheobase_ma: float, chronaxie_us: float,
                 distance_k_ma_per_mm2: float, width: float = 0.25, margin_mm: float = 0.0) -> None:
        self.position_mm = np.asarray(position_mm, dtype=float)
        self.rheobase_ma, self.chronaxie_us = float(rheobase_ma), float(chronaxie_us)
        self.distance_k, self.width, self.margin_mm = float(distance_k_ma_per_mm2), float(width), float(margin_mm)

    def distance_mm(self, contact_mm: Any) -> float:
        """Distance (mm) from a contact position ``(3,)`` mm to the site, less ``margin_mm`` (>= 0 with a margin)."""
        d = float(np.linalg.norm(np.asarray(contact_mm) - self.position_mm))
        return max(d - self.margin_mm, 0.0) if self.margin_mm else d

    def recruited(self, stim: Any, locate: Callable[[Any], Any]) -> float:
        """Recruited fraction by ``stim`` (ground truth, no noise); ``locate(contact)`` gives its contact's position."""
        if stim.kind != "electrical" or stim.amplitude_ma <= 0:
            return 0.0
        return float(recruitment(stim.amplitude_ma, stim.pulse_width_us, self.distance_mm(locate(stim.contact)),
                                 rheobase_ma=self.rheobase_ma, chronaxie_us=self.chronaxie_us,
                                 distance_k_ma_per_mm2=self.distance_k, width=self.width)[0])

    def threshold_ma(self, pulse_width_us: float, contact_mm: np.ndarray) -> float:
        """Amplitude (mA) at which the side effect appears from ``contact_mm`` (ground truth)."""
        if not pulse_width_us > 0:
            raise ValidationError("pulse_width_us", pulse_width_us, "> 0 µs")
        return float(threshold_current_ma(pulse_width_us, self.distance_mm(contact_mm), rheobase_ma=self.rheobase_ma,
                                          chronaxie_us=self.chronaxie_us, distance_k_ma_per_mm2=self.distance_k))

    def severity(self, stim: Any, locate: Callable[[Any], Any], rng: np.random.Generator, *, report: float,
                 noise_sd: float = 0.03) -> tuple[float, bool]:
        """(severity in [0, 1], reported?) of one trial: the recruited fraction plus rating noise."""
        if stim.kind != "electrical":
            return 0.0, False
        sev = float(np.clip(self.recruited(stim, locate) + rng.normal(0.0, noise_sd), 0.0, 1.0))
        return sev, sev >= report
