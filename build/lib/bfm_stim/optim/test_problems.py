"""Declared synthetic problems with a closed-form cost and a known optimum (BoTorch test-function style).

Used by the optimizer recovery tests and by :mod:`loops.bench.ask`; not a patient model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from bfm_stim.exceptions import ValidationError
from bfm_stim.optim.base import Outcome
from bfm_stim.space import Contact, Stimulus, StimulusSpace

__all__ = ["ContactBump"]


@dataclass(frozen=True)
class ContactBump:
    """A smooth bump in (amplitude, log frequency, pulse width) whose height depends on the contact.

    ``cost = 1 - w[contact] * exp(-½ Σ ((u - u*) / ℓ)²)`` with ``u`` the unit-cube coordinates of
    amplitude, frequency (log scale) and pulse width. The best contact has weight 1, so the optimum
    cost is 0 at :attr:`optimum`; costs lie in [0, 1], so ``cost - 0`` is the normalized regret.
    Optional side effects: a trial on ``side_effect_contact`` with amplitude above
    ``side_effect_amplitude_ma`` has one (severity 1).

    Args:
        weights: Bump height per contact (one is 1.0: the best contact).
        area_cm2: Contact area, cm² (0.02 makes the charge-density limit bind at wide pulses).
        best_amplitude_ma: Optimal amplitude, mA.
        best_frequency_hz: Optimal pulse rate, Hz.
        best_pulse_width_us: Optimal phase width, µs.
        widths: Bump widths ℓ in unit-cube coordinates (amplitude, frequency, pulse width).
        side_effect_contact: Contact index with a side-effect region, or ``None``.
        side_effect_amplitude_ma: Amplitude above which that contact causes a side effect, mA.
    """

    weights: tuple[float, ...] = (0.55, 1.0, 0.75, 0.4)
    area_cm2: float = 0.02
    best_amplitude_ma: float = 2.5
    best_frequency_hz: float = 130.0
    best_pulse_width_us: float = 90.0
    widths: tuple[float, float, float] = (0.2, 0.2, 0.25)
    side_effect_contact: int | None = None
    side_effect_amplitude_ma: float = 2.0

    def __post_init__(self) -> None:
        if max(self.weights) != 1.0 or min(self.weights) <= 0:
            raise ValidationError("weights", self.weights, "positive weights with maximum exactly 1.0")
        if not self.space.is_safe(self.optimum):
            raise ValidationError("optimum", self.optimum, "a safe stimulus of the space")

    @property
    def space(self) -> StimulusSpace:
        """Electrical space: one contact per weight, 2 mm apart, default bounds and limits."""
        contacts = [Contact(f"c{i}", (0.0, 0.0, 2.0 * i), self.area_cm2) for i in range(len(self.weights))]
        return StimulusSpace.electrical(contacts)

    @property
    def optimum(self) -> Stimulus:
        best = int(np.argmax(self.weights))
        return Stimulus.electrical(contact=f"c{best}", amplitude_ma=self.best_amplitude_ma,
                                   frequency_hz=self.best_frequency_hz, pulse_width_us=self.best_pulse_width_us)

    optimal_value: ClassVar[float] = 0.0

    def evaluate_true(self, stim: Stimulus) -> float:
        """Noise-free cost of ``stim`` (in [0, 1], lower is better)."""
        space = self.space
        w = self.weights[space.param("contact").choices.index(stim.contact)]
        d2 = 0.0
        for name, ell, best in zip(("amplitude_ma", "frequency_hz", "pulse_width_us"), self.widths,
                                   (self.best_amplitude_ma, self.best_frequency_hz, self.best_pulse_width_us)):
            p = space.param(name)
            d2 += ((p.to_unit(getattr(stim, name)) - p.to_unit(best)) / ell) ** 2
        return 1.0 - w * math.exp(-0.5 * d2)

    def side_effect(self, stim: Stimulus) -> bool:
        """True when ``stim`` is in the side-effect region."""
        if self.side_effect_contact is None:
            return False
        return stim.contact == f"c{self.side_effect_contact}" and stim.amplitude_ma > self.side_effect_amplitude_ma

    def __call__(self, stim: Stimulus, noise_std: float = 0.0, rng: np.random.Generator | None = None) -> Outcome:
        """One trial: cost (plus Gaussian noise of ``noise_std``) and the side effect."""
        c = self.evaluate_true(stim)
        if noise_std > 0:
            c += float((rng or np.random.default_rng()).normal(0.0, noise_std))
        return Outcome(cost=c, side_effect=self.side_effect(stim) if self.side_effect_contact is not None else None)

    def regret(self, cost: float) -> float:
        """Normalized regret ``(cost - optimum) / (1 - optimum)``."""
        return (cost - self.optimal_value) / (1.0 - self.optimal_value)
