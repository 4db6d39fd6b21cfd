"""Stimuli as model features: the vector the surrogate's stimulus encoder reads.

Every stimulus becomes ``N_FEATURES`` numbers in the order of :data:`FEATURE_NAMES` (on/off,
electrical, contact position, amplitude, log frequency, pulse width, charge, sensory modality and
level, the phase of the rate). :func:`stimulus_features` is the one formula, written in ``torch``
so gradients flow to the continuous parameters; :func:`features_of` encodes :class:`Stimulus`
records and :func:`features_from_unit` encodes points of a space's unit cube (what gradient-based
optimizers move). :meth:`bfm_stim.space.StimulusSpace.to_features` and
:meth:`~bfm_stim.space.StimulusSpace.features_from_unit` delegate here.

Example:
    >>> from bfm_stim.stimulus import Contact, Stimulus
    >>> s = Stimulus.electrical(contact="c0", amplitude_ma=2.0, frequency_hz=130.0, pulse_width_us=60.0)
    >>> features_of([s], {"c0": Contact("c0", (0.0, 0.0, 0.0))}).shape
    torch.Size([1, 14])
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

from bfm_stim.exceptions import ValidationError
from bfm_stim.stimulus import Contact, Parameter, Stimulus

__all__ = ["FEATURE_NAMES", "N_FEATURES", "stimulus_features", "features_of", "features_from_unit"]

FEATURE_NAMES: tuple[str, ...] = (
    "on",               # 1 when anything is delivered
    "electrical",       # 1 for electrical stimulation
    "contact_x",        # contact position / 10 mm
    "contact_y",
    "contact_z",
    "amplitude",        # mA / 5
    "log_frequency",    # log(1 + Hz) / log(1 + 250)
    "pulse_width",      # µs / 500
    "charge",           # µC per phase / 1
    "visual",           # 1 for visual flicker
    "auditory",         # 1 for auditory clicks
    "level",            # contrast / level in [0, 1]
    "sin_phase_rate",   # sin / cos of 2π·rate/100 Hz: lets a model tell nearby rates apart
    "cos_phase_rate",
)
N_FEATURES = len(FEATURE_NAMES)


def stimulus_features(
    *,
    on: torch.Tensor,
    electrical: torch.Tensor,
    contact_pos_mm: torch.Tensor,
    amplitude_ma: torch.Tensor,
    frequency_hz: torch.Tensor,
    pulse_width_us: torch.Tensor,
    visual: torch.Tensor,
    auditory: torch.Tensor,
    level: torch.Tensor,
) -> torch.Tensor:
    """Differentiable stimulus features for the surrogate.

    Every argument is a tensor of shape ``(n,)`` except ``contact_pos_mm`` ``(n, 3)``; gradients
    flow to amplitude (mA), frequency (Hz), pulse width (µs), level and contact position (mm).

    Returns:
        Tensor ``(n, N_FEATURES)`` in the order of :data:`FEATURE_NAMES`.
    """
    el = electrical * on
    amp = amplitude_ma * el
    pw = pulse_width_us * el
    charge = amp * pw / 1000.0
    logf = torch.log1p(frequency_hz.clamp_min(0.0)) / math.log1p(250.0) * on
    phase = 2 * math.pi * frequency_hz / 100.0
    sens = (visual + auditory).clamp(max=1.0) * on
    return torch.stack(
        [
            on,
            el,
            contact_pos_mm[:, 0] / 10.0 * el,
            contact_pos_mm[:, 1] / 10.0 * el,
            contact_pos_mm[:, 2] / 10.0 * el,
            amp / 5.0,
            logf,
            pw / 500.0,
            charge,
            visual * on,
            auditory * on,
            level * sens,
            torch.sin(phase) * on,
            torch.cos(phase) * on,
        ],
        dim=-1,
    )


def features_of(stims: Sequence[Stimulus], contacts: Mapping[str, Contact], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Model features ``(n, N_FEATURES)`` of stimuli, with contact positions from ``contacts``.

    ``off`` stimuli (and zero amplitude or level) give all zeros.

    Raises:
        ValidationError: An electrical stimulus names a contact that is not in ``contacts``.
    """
    def col(f):
        return torch.tensor([f(s) for s in stims], dtype=dtype).reshape(len(stims))

    def pos(s: Stimulus):
        if s.kind == "electrical":
            if s.contact not in contacts:
                raise ValidationError("contact", s.contact, f"one of {sorted(contacts)}")
            return contacts[s.contact].position_mm
        return (0.0, 0.0, 0.0)

    return stimulus_features(
        on=col(lambda s: 0.0 if s.is_off else 1.0),
        electrical=col(lambda s: float(s.kind == "electrical")),
        contact_pos_mm=torch.tensor([pos(s) for s in stims], dtype=dtype).reshape(len(stims), 3),
        amplitude_ma=col(lambda s: s.amplitude_ma),
        frequency_hz=col(lambda s: s.frequency_hz),
        pulse_width_us=col(lambda s: s.pulse_width_us),
        visual=col(lambda s: float(s.modality == "visual_flicker")),
        auditory=col(lambda s: float(s.modality == "auditory_clicks")),
        level=col(lambda s: s.level),
    )


def features_from_unit(X: torch.Tensor, *, kind: str, parameters: Sequence[Parameter],
                       contacts: Mapping[str, Contact]) -> torch.Tensor:
    """Differentiable features from unit-cube points ``(n, dim)`` -> ``(n, N_FEATURES)``.

    The unit cube is the one of a :class:`~bfm_stim.space.StimulusSpace` with these ``parameters``:
    one column per free (not fixed) parameter, in order. Continuous parameters are decoded without
    snapping so gradients flow; categorical ones are rounded (no gradient).

    Args:
        X: Unit-cube points ``(n, dim)``.
        kind: ``"electrical"`` or ``"sensory"``.
        parameters: All the space's parameters (fixed ones included).
        contacts: Contact name -> contact (electrical spaces).
    """
    n = X.shape[0]
    vals: dict[str, torch.Tensor] = {}
    cats: dict[str, list[str]] = {}
    free = {p.name: i for i, p in enumerate(p for p in parameters if not p.fixed)}
    for p in parameters:
        if p.kind == "categorical":
            if p.name in free:
                idx = torch.round(X[:, free[p.name]].detach().clamp(0, 1) * (len(p.choices) - 1)).long()
                cats[p.name] = [p.choices[i] for i in idx.tolist()]
            else:
                cats[p.name] = [p.choices[0]] * n
            continue
        if p.name not in free:
            vals[p.name] = torch.full((n,), p.low, dtype=X.dtype)
            continue
        u = X[:, free[p.name]]
        if p.scale == "log":
            vals[p.name] = torch.exp(math.log(p.low) + u * (math.log(p.high) - math.log(p.low)))
        else:
            vals[p.name] = p.low + u * (p.high - p.low)
    ones = torch.ones(n, dtype=X.dtype)
    zeros = torch.zeros(n, dtype=X.dtype)
    if kind == "electrical":
        pos = torch.tensor([contacts[c].position_mm for c in cats["contact"]], dtype=X.dtype)
        return stimulus_features(on=ones, electrical=ones, contact_pos_mm=pos, amplitude_ma=vals["amplitude_ma"],
                                 frequency_hz=vals["frequency_hz"], pulse_width_us=vals["pulse_width_us"],
                                 visual=zeros, auditory=zeros, level=zeros)
    vis = torch.tensor([m == "visual_flicker" for m in cats["modality"]], dtype=X.dtype)
    return stimulus_features(on=ones, electrical=zeros, contact_pos_mm=torch.zeros(n, 3, dtype=X.dtype),
                             amplitude_ma=zeros, frequency_hz=vals["frequency_hz"], pulse_width_us=zeros,
                             visual=vis, auditory=1 - vis, level=vals["level"])
