"""The one safety check every stimulus passes, whatever produced it.

Limits follow the clinical conventions for charge-balanced biphasic pulses:

* Shannon (1992) criterion, ``log10(D) <= k - log10(Q)``, with ``Q`` the charge per phase in µC
  (``amplitude_mA * pulse_width_µs / 1000``) and ``D = Q / area`` the charge density in
  µC/cm²/phase; ``k = 1.75`` by default (the value used for macro-electrodes such as DBS leads).
* A hard cap on charge density (default 30 µC/cm²/phase, the limit DBS programmers are warned
  about), on charge per phase and on amplitude.
* Charge balance: only biphasic, charge-balanced pulses are allowed.

:func:`check_stimulus` is the choke point; :func:`is_safe` and :func:`project_safe` are for
optimizers. Nothing unsafe passes :func:`check_stimulus` (property-tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Mapping

from bfm_stim.exceptions import SafetyLimitError, ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from bfm_stim.stimulus import Contact, Stimulus

__all__ = ["SafetyLimits", "check_stimulus", "is_safe", "project_safe", "max_safe_amplitude"]


@dataclass(frozen=True)
class SafetyLimits:
    """Hard limits for electrical and sensory stimulation.

    Args:
        shannon_k: Shannon ``k`` (dimensionless); larger is more permissive. Default 1.75.
        max_charge_density_uc_cm2: Cap on charge density, µC/cm²/phase. Default 30.
        max_charge_uc: Cap on charge per phase, µC. Default 3.0.
        max_amplitude_ma: Cap on current amplitude, mA. Default 10.
        max_frequency_hz: Cap on pulse rate, Hz. Default 500.
        max_pulse_width_us: Cap on phase width, µs. Default 1000.
        max_duration_s: Cap on one train's duration, s. Default 600.
        max_sensory_rate_hz: Cap on flicker/click rate, Hz. Default 100.
        photosensitive_band_hz: Visual flicker rates in this band are refused when
            ``block_photosensitive`` is true (photosensitive epilepsy risk, 15–25 Hz).
        block_photosensitive: Refuse visual flicker inside ``photosensitive_band_hz``. Default False
            (research use with screened participants); set True for clinical use.
    """

    shannon_k: float = 1.75
    max_charge_density_uc_cm2: float = 30.0
    max_charge_uc: float = 3.0
    max_amplitude_ma: float = 10.0
    max_frequency_hz: float = 500.0
    max_pulse_width_us: float = 1000.0
    max_duration_s: float = 600.0
    max_sensory_rate_hz: float = 100.0
    photosensitive_band_hz: tuple[float, float] = (15.0, 25.0)
    block_photosensitive: bool = False

    def __post_init__(self) -> None:
        for name in (
            "max_charge_density_uc_cm2",
            "max_charge_uc",
            "max_amplitude_ma",
            "max_frequency_hz",
            "max_pulse_width_us",
            "max_duration_s",
            "max_sensory_rate_hz",
        ):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValidationError(f"SafetyLimits.{name}", v, "a finite number > 0")
        if not (isinstance(self.shannon_k, (int, float)) and math.isfinite(self.shannon_k)):
            raise ValidationError("SafetyLimits.shannon_k", self.shannon_k, "a finite number (default 1.75)")

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> "SafetyLimits":
        """Build from a mapping (e.g. a TOML ``[safety]`` table); unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValidationError("safety", sorted(unknown), f"keys among {sorted(known)}")
        kw = dict(d)
        if "photosensitive_band_hz" in kw:
            kw["photosensitive_band_hz"] = tuple(kw["photosensitive_band_hz"])  # type: ignore[arg-type]
        return cls(**kw)  # type: ignore[arg-type]

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["photosensitive_band_hz"] = list(self.photosensitive_band_hz)
        return d


def max_safe_amplitude(pulse_width_us: float, area_cm2: float, limits: SafetyLimits) -> float:
    """Largest amplitude (mA) at this phase width and contact area that passes every limit."""
    pw = max(float(pulse_width_us), 1e-9)
    # Shannon: log10(Q/A) + log10(Q) <= k  =>  Q <= sqrt(10**k * A)
    q_shannon = math.sqrt((10.0 ** limits.shannon_k) * area_cm2)
    q_density = limits.max_charge_density_uc_cm2 * area_cm2
    q_max = min(q_shannon, q_density, limits.max_charge_uc)
    return min(limits.max_amplitude_ma, q_max * 1000.0 / pw)


def _finite(field: str, v: float) -> None:
    if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)):
        raise ValidationError(field, v, "a finite number")


def check_stimulus(
    stim: "Stimulus", contacts: Mapping[str, "Contact"], limits: SafetyLimits
) -> "Stimulus":
    """Raise unless ``stim`` is safe on these contacts under these limits; return it unchanged.

    Args:
        stim: The stimulus to check.
        contacts: Contacts by name; an electrical stimulus must name one of them.
        limits: The limits in force.

    Raises:
        ValidationError: A field is not finite, negative, or names an unknown contact/modality.
        SafetyLimitError: A limit is exceeded; the message names it, the value and by how much.
    """
    for f in ("amplitude_ma", "frequency_hz", "pulse_width_us", "duration_s", "level"):
        _finite(f, getattr(stim, f))
        if getattr(stim, f) < 0:
            raise ValidationError(f, getattr(stim, f), ">= 0")
    if stim.duration_s > limits.max_duration_s:
        raise SafetyLimitError("duration", stim.duration_s, limits.max_duration_s, "s")
    if stim.kind == "off":
        return stim
    if stim.kind == "sensory":
        if stim.modality not in ("visual_flicker", "auditory_clicks"):
            raise ValidationError("modality", stim.modality, "'visual_flicker' or 'auditory_clicks'")
        if stim.level > 1.0:
            raise SafetyLimitError("level", stim.level, 1.0, "(fraction of full contrast/level)")
        if stim.frequency_hz > limits.max_sensory_rate_hz:
            raise SafetyLimitError("sensory_rate", stim.frequency_hz, limits.max_sensory_rate_hz, "Hz")
        lo, hi = limits.photosensitive_band_hz
        if limits.block_photosensitive and stim.modality == "visual_flicker" and lo <= stim.frequency_hz <= hi:
            raise SafetyLimitError(
                "photosensitive_band", stim.frequency_hz, lo, "Hz",
                f"visual flicker in {lo:g}–{hi:g} Hz is blocked (photosensitive epilepsy risk)",
            )
        return stim
    if stim.kind != "electrical":
        raise ValidationError("kind", stim.kind, "'electrical', 'sensory' or 'off'")
    if stim.contact not in contacts:
        raise ValidationError("contact", stim.contact, f"one of {sorted(contacts)}")
    if not stim.biphasic:
        raise SafetyLimitError(
            "charge_balance", stim.charge_uc, 0.0, "µC net per pulse",
            "only charge-balanced biphasic pulses are allowed",
        )
    if stim.amplitude_ma > limits.max_amplitude_ma:
        raise SafetyLimitError("amplitude", stim.amplitude_ma, limits.max_amplitude_ma, "mA")
    if stim.frequency_hz > limits.max_frequency_hz:
        raise SafetyLimitError("frequency", stim.frequency_hz, limits.max_frequency_hz, "Hz")
    if stim.pulse_width_us > limits.max_pulse_width_us:
        raise SafetyLimitError("pulse_width", stim.pulse_width_us, limits.max_pulse_width_us, "µs")
    q = stim.charge_uc
    if q == 0.0:
        return stim
    if q > limits.max_charge_uc:
        raise SafetyLimitError("charge_per_phase", q, limits.max_charge_uc, "µC/phase")
    area = contacts[stim.contact].area_cm2
    d = q / area
    if d > limits.max_charge_density_uc_cm2:
        raise SafetyLimitError("charge_density", d, limits.max_charge_density_uc_cm2, "µC/cm²/phase",
                               f"contact {stim.contact} area {area:g} cm²")
    shannon = math.log10(d) + math.log10(q)
    if shannon > limits.shannon_k:
        raise SafetyLimitError("shannon", shannon, limits.shannon_k, "(log10 D + log10 Q)",
                               f"Q={q:.4g} µC, D={d:.4g} µC/cm² on contact {stim.contact}")
    return stim


def is_safe(stim: "Stimulus", contacts: Mapping[str, "Contact"], limits: SafetyLimits) -> bool:
    """True when :func:`check_stimulus` would pass."""
    try:
        check_stimulus(stim, contacts, limits)
    except (SafetyLimitError, ValidationError):
        return False
    return True


def project_safe(stim: "Stimulus", contacts: Mapping[str, "Contact"], limits: SafetyLimits) -> "Stimulus":
    """Nearest safe stimulus: clip rates/widths to caps, then lower the amplitude until safe.

    The contact, modality and kind are kept; non-finite fields still raise ``ValidationError``
    (there is no meaningful nearest point to NaN).
    """
    for f in ("amplitude_ma", "frequency_hz", "pulse_width_us", "duration_s", "level"):
        _finite(f, getattr(stim, f))
    s = replace(
        stim,
        amplitude_ma=max(0.0, stim.amplitude_ma),
        frequency_hz=max(0.0, stim.frequency_hz),
        pulse_width_us=max(0.0, stim.pulse_width_us),
        duration_s=min(max(0.0, stim.duration_s), limits.max_duration_s),
        level=min(max(0.0, stim.level), 1.0),
        biphasic=True,
    )
    if s.kind == "sensory":
        rate = min(s.frequency_hz, limits.max_sensory_rate_hz)
        lo, hi = limits.photosensitive_band_hz
        if limits.block_photosensitive and s.modality == "visual_flicker" and lo <= rate <= hi:
            rate = lo - 1e-6 if rate - lo < hi - rate else hi + 1e-6
        return replace(s, frequency_hz=rate)
    if s.kind != "electrical":
        return s
    if s.contact not in contacts:
        raise ValidationError("contact", s.contact, f"one of {sorted(contacts)}")
    s = replace(
        s,
        frequency_hz=min(s.frequency_hz, limits.max_frequency_hz),
        pulse_width_us=min(s.pulse_width_us, limits.max_pulse_width_us),
    )
    a_max = max_safe_amplitude(s.pulse_width_us, contacts[s.contact].area_cm2, limits)
    if s.amplitude_ma > a_max:
        s = replace(s, amplitude_ma=a_max * (1.0 - 1e-9))
    return s
