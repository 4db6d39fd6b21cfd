"""What a stimulus is: :class:`Stimulus`, the electrode :class:`Contact` s it is delivered on, and
the :class:`Parameter` s a stimulus space searches.

Units: mA, Hz, µs, s; ``level`` (sensory contrast/level) is a fraction in [0, 1]. These records
only validate themselves; what a patient may safely receive is decided by
:meth:`bfm_stim.space.StimulusSpace.check`, and the encoding as model features lives in
:mod:`bfm_stim.stim_features`.

Example:
    >>> from bfm_stim.stimulus import Stimulus
    >>> Stimulus.electrical(contact="c1", amplitude_ma=2.0, frequency_hz=130.0, pulse_width_us=60.0).charge_uc
    0.12
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

from bfm_stim.exceptions import ConfigError, ValidationError

__all__ = ["Contact", "Stimulus", "Parameter", "KINDS", "MODALITIES"]

KINDS = ("electrical", "sensory", "off")
MODALITIES = ("visual_flicker", "auditory_clicks")
_NUMERIC = ("amplitude_ma", "frequency_hz", "pulse_width_us", "duration_s", "level")


@dataclass(frozen=True)
class Contact:
    """One electrode contact.

    Args:
        name: Contact label, e.g. ``"c0"``.
        position_mm: Position (x, y, z) in the patient's head frame, mm.
        area_cm2: Geometric surface area, cm² (Medtronic 3387 ring ≈ 0.06 cm²).
    """

    name: str
    position_mm: tuple[float, float, float]
    area_cm2: float = 0.06

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValidationError("Contact.name", self.name, "a non-empty string")
        pos = tuple(float(v) for v in self.position_mm)
        if len(pos) != 3 or not all(math.isfinite(v) for v in pos):
            raise ValidationError("Contact.position_mm", self.position_mm, "3 finite numbers (mm)")
        object.__setattr__(self, "position_mm", pos)
        if not (math.isfinite(self.area_cm2) and self.area_cm2 > 0):
            raise ValidationError("Contact.area_cm2", self.area_cm2, "a finite area > 0 cm²")


@dataclass(frozen=True)
class Stimulus:
    """One stimulation train. Units: mA, Hz, µs, s; ``level`` is a fraction in [0, 1].

    ``frequency_hz`` is the pulse rate for electrical stimulation and the flicker/click rate for
    sensory stimulation. Construct with :meth:`electrical`, :meth:`sensory` or :meth:`off`.
    """

    kind: str
    contact: str | None = None
    amplitude_ma: float = 0.0
    frequency_hz: float = 0.0
    pulse_width_us: float = 0.0
    duration_s: float = 1.0
    modality: str | None = None
    level: float = 0.0
    biphasic: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValidationError("kind", self.kind, f"one of {KINDS}")
        for f in _NUMERIC:
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValidationError(f, v, "a number")
            if not math.isfinite(v):
                raise ValidationError(f, v, "a finite number")
            if v < 0:
                raise ValidationError(f, v, ">= 0")
            object.__setattr__(self, f, float(v))
        if not isinstance(self.biphasic, bool):
            raise ValidationError("biphasic", self.biphasic, "true or false")
        if self.kind == "electrical" and not isinstance(self.contact, str):
            raise ValidationError("contact", self.contact, "a contact name (string) for electrical stimulation")
        if self.kind == "sensory" and self.modality not in MODALITIES:
            raise ValidationError("modality", self.modality, f"one of {MODALITIES} for sensory stimulation")

    @classmethod
    def electrical(
        cls, *, contact: str, amplitude_ma: float, frequency_hz: float, pulse_width_us: float,
        duration_s: float = 1.0, biphasic: bool = True,
    ) -> "Stimulus":
        """A biphasic pulse train on one contact (mA per phase, Hz, µs per phase, s)."""
        return cls("electrical", contact=contact, amplitude_ma=amplitude_ma, frequency_hz=frequency_hz,
                   pulse_width_us=pulse_width_us, duration_s=duration_s, biphasic=biphasic)

    @classmethod
    def sensory(cls, *, modality: str, frequency_hz: float, level: float, duration_s: float = 1.0) -> "Stimulus":
        """A visual flicker or auditory click train at ``frequency_hz`` with contrast/level in [0, 1]."""
        return cls("sensory", modality=modality, frequency_hz=frequency_hz, level=level, duration_s=duration_s)

    @classmethod
    def off(cls, duration_s: float = 1.0) -> "Stimulus":
        """No stimulation for ``duration_s`` seconds."""
        return cls("off", duration_s=duration_s)

    @property
    def is_off(self) -> bool:
        """True when the stimulus delivers nothing (kind off, or zero amplitude/level)."""
        if self.kind == "off":
            return True
        if self.kind == "electrical":
            return self.amplitude_ma == 0.0 or self.frequency_hz == 0.0 or self.pulse_width_us == 0.0
        return self.level == 0.0 or self.frequency_hz == 0.0

    @property
    def charge_uc(self) -> float:
        """Charge per phase, µC (mA × µs / 1000); 0 for non-electrical stimuli."""
        if self.kind != "electrical":
            return 0.0
        return self.amplitude_ma * self.pulse_width_us / 1000.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping; only the fields that matter for its kind."""
        d: dict[str, Any] = {"kind": self.kind, "duration_s": self.duration_s}
        if self.kind == "electrical":
            d.update(contact=self.contact, amplitude_ma=self.amplitude_ma, frequency_hz=self.frequency_hz,
                     pulse_width_us=self.pulse_width_us, biphasic=self.biphasic)
        elif self.kind == "sensory":
            d.update(modality=self.modality, frequency_hz=self.frequency_hz, level=self.level)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Stimulus":
        """Parse a mapping from :meth:`to_dict` (JSON, TOML, LSL command); strict about fields."""
        if not isinstance(d, Mapping):
            raise ValidationError("stimulus", d, "a JSON object")
        allowed = set(cls.__dataclass_fields__)
        unknown = set(d) - allowed
        if unknown:
            raise ValidationError("stimulus", sorted(unknown), f"fields among {sorted(allowed)}")
        if "kind" not in d:
            raise ValidationError("kind", None, f"one of {KINDS}")
        return cls(**dict(d))

    def with_(self, **changes: Any) -> "Stimulus":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class Parameter:
    """One searchable parameter.

    Args:
        name: Field of :class:`Stimulus` it sets (``"amplitude_ma"``, ``"contact"``, ...).
        unit: Unit string for people ("mA", "Hz", "µs", "s", "").
        low: Lower bound (continuous/integer), in ``unit``.
        high: Upper bound (continuous/integer), in ``unit``.
        scale: ``"linear"`` or ``"log"`` (log needs ``low > 0``).
        kind: ``"continuous"``, ``"integer"`` or ``"categorical"``.
        choices: Values of a categorical parameter.
        step: Device resolution; values are snapped to ``low + k * step``. ``None``: none.
    """

    name: str
    unit: str = ""
    low: float = 0.0
    high: float = 1.0
    scale: str = "linear"
    kind: str = "continuous"
    choices: tuple[str, ...] = ()
    step: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("continuous", "integer", "categorical"):
            raise ConfigError(f"parameter {self.name!r}: kind={self.kind!r}, expected continuous, integer or categorical")
        if self.scale not in ("linear", "log"):
            raise ConfigError(f"parameter {self.name!r}: scale={self.scale!r}, expected 'linear' or 'log'")
        if self.kind == "categorical":
            if not self.choices:
                raise ConfigError(f"parameter {self.name!r}: categorical needs at least one choice")
            object.__setattr__(self, "choices", tuple(self.choices))
            return
        lo, hi = float(self.low), float(self.high)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ConfigError(f"parameter {self.name!r}: bounds ({self.low}, {self.high}) must be finite with low <= high")
        if self.scale == "log" and lo <= 0:
            raise ConfigError(f"parameter {self.name!r}: log scale needs low > 0, got low={lo}")
        if self.step is not None and not (self.step > 0 and math.isfinite(self.step)):
            raise ConfigError(f"parameter {self.name!r}: step={self.step} must be > 0")
        object.__setattr__(self, "low", lo)
        object.__setattr__(self, "high", hi)

    @property
    def fixed(self) -> bool:
        """True when the parameter has a single value (not searched, not in the unit cube)."""
        return len(self.choices) == 1 if self.kind == "categorical" else self.low == self.high

    def snap(self, v: float) -> float:
        """Clip to bounds and snap to the device resolution (integers for integer kind)."""
        v = min(max(float(v), self.low), self.high)
        step = 1.0 if self.kind == "integer" and self.step is None else self.step
        if step is None:
            return v
        k = round((v - self.low) / step)
        out = round(self.low + k * step, 9)
        if out > self.high:
            out = round(self.low + (k - 1) * step, 9)
        return min(max(out, self.low), self.high)  # rounding to 9 digits must not leave the bounds

    def to_unit(self, v: Any) -> float:
        """Map a value to [0, 1]."""
        if self.kind == "categorical":
            if v not in self.choices:
                raise ValidationError(self.name, v, f"one of {self.choices}")
            n = len(self.choices)
            return self.choices.index(v) / (n - 1) if n > 1 else 0.0
        if self.fixed:
            return 0.0
        v = float(v)
        if self.scale == "log":
            return (math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (v - self.low) / (self.high - self.low)

    def from_unit(self, u: float) -> Any:
        """Map [0, 1] to a snapped value (clipped to the cube first)."""
        u = min(max(float(u), 0.0), 1.0)
        if self.kind == "categorical":
            return self.choices[int(round(u * (len(self.choices) - 1)))]
        if self.fixed:
            return self.low
        if self.scale == "log":
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        return self.snap(v)

    def contains(self, v: Any) -> bool:
        if self.kind == "categorical":
            return v in self.choices
        return self.low - 1e-12 <= float(v) <= self.high + 1e-12
