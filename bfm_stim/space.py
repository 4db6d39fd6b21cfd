"""What a stimulus is: :class:`Stimulus`, its parameters, and the space optimizers search.

A :class:`StimulusSpace` holds named :class:`Parameter` s (unit, bounds, linear or log scale,
continuous / integer / categorical kind, device resolution), the patient's :class:`Contact` s and
the :class:`~bfm_stim.safety.SafetyLimits`. It converts stimuli to and from the unit cube (for
Bayesian optimization), to model features (for the surrogate) and to and from JSON (protocol
files, LSL commands). :meth:`StimulusSpace.check` is the one safety choke point.

Example:
    >>> from bfm_stim.space import Contact, Stimulus, StimulusSpace
    >>> space = StimulusSpace.electrical([Contact("c0", (0.0, 0.0, 0.0)), Contact("c1", (0.0, 0.0, 2.0))])
    >>> s = Stimulus.electrical(contact="c1", amplitude_ma=2.0, frequency_hz=130.0, pulse_width_us=60.0)
    >>> space.check(s).charge_uc
    0.12
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from bfm_stim import safety as _safety
from bfm_stim.exceptions import ConfigError, ValidationError
from bfm_stim.safety import SafetyLimits

__all__ = [
    "Contact",
    "Stimulus",
    "Parameter",
    "StimulusSpace",
    "SafetyLimits",
    "FEATURE_NAMES",
    "N_FEATURES",
    "stimulus_features",
    "KINDS",
    "MODALITIES",
]

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


# ---------------------------------------------------------------------------------------------
# Model features
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# The space
# ---------------------------------------------------------------------------------------------
_ELECTRICAL_DEFAULTS = {
    "amplitude_ma": ("mA", (0.0, 5.0), "linear", 0.01),
    "frequency_hz": ("Hz", (2.0, 250.0), "log", 1.0),
    "pulse_width_us": ("µs", (30.0, 450.0), "linear", 1.0),
    "duration_s": ("s", (1.0, 1.0), "linear", 0.1),
}
_SENSORY_DEFAULTS = {
    "frequency_hz": ("Hz", (1.0, 60.0), "log", 0.1),
    "level": ("", (0.0, 1.0), "linear", 0.01),
    "duration_s": ("s", (1.0, 1.0), "linear", 0.1),
}


@dataclass(frozen=True)
class StimulusSpace:
    """A searchable set of stimuli of one kind, with its contacts and safety limits.

    Args:
        kind: ``"electrical"`` or ``"sensory"``.
        parameters: The parameters; electrical spaces have ``contact`` (categorical),
            ``amplitude_ma``, ``frequency_hz``, ``pulse_width_us``, ``duration_s``; sensory ones
            ``modality`` (categorical), ``frequency_hz``, ``level``, ``duration_s``.
        contacts: The patient's contacts (electrical).
        limits: Safety limits in force.
    """

    kind: str
    parameters: tuple[Parameter, ...]
    contacts: tuple[Contact, ...] = ()
    limits: SafetyLimits = field(default_factory=SafetyLimits)

    def __post_init__(self) -> None:
        if self.kind not in ("electrical", "sensory"):
            raise ConfigError(f"space kind={self.kind!r}; expected 'electrical' or 'sensory'")
        object.__setattr__(self, "parameters", tuple(self.parameters))
        object.__setattr__(self, "contacts", tuple(self.contacts))
        names = [p.name for p in self.parameters]
        need = ("contact", "amplitude_ma", "frequency_hz", "pulse_width_us", "duration_s") if self.kind == "electrical" \
            else ("modality", "frequency_hz", "level", "duration_s")
        missing = [n for n in need if n not in names]
        extra = [n for n in names if n not in need]
        if missing or extra or len(set(names)) != len(names):
            raise ConfigError(f"{self.kind} space parameters {names}: need exactly {list(need)}")
        if self.kind == "electrical":
            if not self.contacts:
                raise ConfigError("an electrical space needs at least one contact")
            cnames = {c.name for c in self.contacts}
            bad = [c for c in self.param("contact").choices if c not in cnames]
            if bad:
                raise ConfigError(f"contact choices {bad} are not among the space's contacts {sorted(cnames)}")

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def electrical(
        cls, contacts: Sequence[Contact], *, limits: SafetyLimits | None = None,
        steps: Mapping[str, float | None] | None = None, **bounds: tuple[float, float],
    ) -> "StimulusSpace":
        """Electrical space over ``contacts``; override bounds as ``amplitude_ma=(0, 3)`` etc."""
        if not contacts:
            raise ConfigError("an electrical space needs at least one contact (give 'contacts')")
        params: list[Parameter] = [Parameter("contact", kind="categorical", choices=tuple(c.name for c in contacts))]
        params += _params_from_defaults(_ELECTRICAL_DEFAULTS, bounds, steps or {})
        return cls("electrical", tuple(params), tuple(contacts), limits or SafetyLimits())

    @classmethod
    def sensory(
        cls, modalities: Sequence[str] = MODALITIES, *, limits: SafetyLimits | None = None,
        steps: Mapping[str, float | None] | None = None, **bounds: tuple[float, float],
    ) -> "StimulusSpace":
        """Sensory space (visual flicker / auditory clicks); override bounds as ``frequency_hz=(4, 40)``."""
        bad = [m for m in modalities if m not in MODALITIES]
        if bad:
            raise ConfigError(f"modalities {bad}: expected among {MODALITIES}")
        params = [Parameter("modality", kind="categorical", choices=tuple(modalities))]
        params += _params_from_defaults(_SENSORY_DEFAULTS, bounds, steps or {})
        return cls("sensory", tuple(params), (), limits or SafetyLimits())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "StimulusSpace":
        """Build from a mapping as in TOML: ``kind``, ``contacts`` (list of tables),
        ``parameters`` (table of ``{low, high, scale, step}`` per name), ``safety`` (table)."""
        try:
            kind = d["kind"]
        except KeyError:
            raise ConfigError("space: missing 'kind' (\"electrical\" or \"sensory\")") from None
        limits = SafetyLimits.from_dict(d.get("safety", {}))
        pdefs = dict(d.get("parameters", {}))
        bounds = {k: (v["low"], v["high"]) for k, v in pdefs.items() if "low" in v}
        steps = {k: v.get("step") for k, v in pdefs.items() if "step" in v}
        if kind == "electrical":
            contacts = [Contact(c["name"], tuple(c["position_mm"]), c.get("area_cm2", 0.06)) for c in d.get("contacts", [])]
            space = cls.electrical(contacts, limits=limits, steps=steps, **bounds)
        elif kind == "sensory":
            space = cls.sensory(tuple(d.get("modalities", MODALITIES)), limits=limits, steps=steps, **bounds)
        else:
            raise ConfigError(f"space: kind={kind!r}; expected 'electrical' or 'sensory'")
        scales = {k: v["scale"] for k, v in pdefs.items() if "scale" in v}
        if scales:
            params = tuple(replace(p, scale=scales.get(p.name, p.scale)) for p in space.parameters)
            space = replace(space, parameters=params)
        return space

    @classmethod
    def from_toml(cls, path: str | Path) -> "StimulusSpace":
        """Read a space from a TOML file with a ``[space]`` table (or the space at top level)."""
        from bfm_stim.files import read_toml

        data = read_toml(path, what="stimulus space file")
        return cls.from_dict(data.get("space", data))

    def to_dict(self) -> dict[str, Any]:
        """Inverse of :meth:`from_dict`."""
        d: dict[str, Any] = {"kind": self.kind, "safety": self.limits.to_dict(), "parameters": {}}
        for p in self.parameters:
            if p.kind == "categorical":
                if p.name == "modality":
                    d["modalities"] = list(p.choices)
                continue
            d["parameters"][p.name] = {"low": p.low, "high": p.high, "scale": p.scale, "step": p.step}
        if self.kind == "electrical":
            d["contacts"] = [{"name": c.name, "position_mm": list(c.position_mm), "area_cm2": c.area_cm2} for c in self.contacts]
        return d

    # --- introspection ------------------------------------------------------------------------
    def param(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def free_parameters(self) -> tuple[Parameter, ...]:
        """Parameters that are searched (not fixed); the unit-cube dimensions, in order."""
        return tuple(p for p in self.parameters if not p.fixed)

    @property
    def dim(self) -> int:
        """Dimension of the unit cube."""
        return len(self.free_parameters)

    @property
    def categorical_dims(self) -> dict[int, int]:
        """Unit-cube index -> number of choices, for the categorical parameters."""
        return {i: len(p.choices) for i, p in enumerate(self.free_parameters) if p.kind == "categorical"}

    @property
    def contact_map(self) -> dict[str, Contact]:
        return {c.name: c for c in self.contacts}

    # --- safety: the one choke point ---------------------------------------------------------
    def check(self, stim: Stimulus) -> Stimulus:
        """Raise ``SafetyLimitError``/``ValidationError`` unless ``stim`` is safe here; return it.

        Also refuses stimuli outside the space's bounds (a protocol for another patient).
        """
        if not isinstance(stim, Stimulus):
            raise ValidationError("stimulus", type(stim).__name__, "a bfm_stim.space.Stimulus")
        _safety.check_stimulus(stim, self.contact_map, self.limits)
        if stim.kind == "off" or stim.is_off and stim.kind != self.kind:
            return stim
        if stim.kind != self.kind:
            raise ValidationError("kind", stim.kind, f"'{self.kind}' or 'off' in this space")
        for p in self.parameters:
            v = getattr(stim, p.name)
            if p.name == "amplitude_ma" and v == 0.0:
                continue
            if not p.contains(v):
                allowed = f"one of {p.choices}" if p.kind == "categorical" else f"[{p.low:g}, {p.high:g}] {p.unit}"
                raise ValidationError(p.name, v, allowed)
        return stim

    def is_safe(self, stim: Stimulus) -> bool:
        """True when :meth:`check` passes."""
        try:
            self.check(stim)
        except (ValidationError, _safety.SafetyLimitError):
            return False
        return True

    def project_safe(self, stim: Stimulus) -> Stimulus:
        """The nearest stimulus that passes :meth:`check`: clip to bounds, then lower amplitude."""
        if stim.kind == "off":
            return stim
        changes = {}
        for p in self.parameters:
            if p.kind != "categorical":
                changes[p.name] = p.snap(getattr(stim, p.name))
        s = _safety.project_safe(replace(stim, **changes), self.contact_map, self.limits)
        if s.kind == "electrical":
            p = self.param("amplitude_ma")
            a = s.amplitude_ma
            if p.step:  # round down onto the device grid, then step down until safe
                k = math.floor((a - p.low) / p.step + 1e-9)
                a = round(p.low + k * p.step, 9)
                while a > p.low and not self.is_safe(replace(s, amplitude_ma=a)):
                    k -= 1
                    a = round(p.low + k * p.step, 9)
            a = min(max(a, p.low), p.high)
            if not self.is_safe(replace(s, amplitude_ma=a)):
                a = 0.0  # even the lowest amplitude of the space is unsafe here: deliver nothing
            s = replace(s, amplitude_ma=a)
        return self.check(s)

    # --- conversions ---------------------------------------------------------------------------
    def snap(self, stim: Stimulus) -> Stimulus:
        """Snap every continuous field to the device resolution (no safety change implied)."""
        return replace(stim, **{p.name: p.snap(getattr(stim, p.name)) for p in self.parameters if p.kind != "categorical"})

    def to_unit(self, stims: Stimulus | Iterable[Stimulus]) -> torch.Tensor:
        """Stimuli -> unit cube, ``(n, dim)`` float64 (categoricals as index/(choices-1))."""
        stims = [stims] if isinstance(stims, Stimulus) else list(stims)
        rows = []
        for s in stims:
            if s.kind != self.kind:
                raise ValidationError("kind", s.kind, f"'{self.kind}' (this space)")
            rows.append([p.to_unit(getattr(s, p.name)) for p in self.free_parameters])
        return torch.tensor(rows, dtype=torch.float64).reshape(len(rows), self.dim)

    def from_unit(self, X: torch.Tensor | Sequence[Sequence[float]]) -> list[Stimulus]:
        """Unit cube ``(n, dim)`` -> stimuli (values snapped to resolution; not safety-projected)."""
        X = torch.as_tensor(X, dtype=torch.float64)
        if X.ndim == 1:
            X = X.unsqueeze(0)
        if X.shape[-1] != self.dim:
            raise ValidationError("X.shape[-1]", int(X.shape[-1]), f"{self.dim} (the space's dimension)")
        if not torch.isfinite(X).all():
            raise ValidationError("X", "non-finite values", "finite numbers in [0, 1]")
        out = []
        for row in X.tolist():
            vals = {p.name: (p.choices[0] if p.kind == "categorical" else p.low) for p in self.parameters if p.fixed}
            vals.update({p.name: p.from_unit(u) for p, u in zip(self.free_parameters, row)})
            out.append(Stimulus(self.kind, **vals))
        return out

    def features_from_unit(self, X: torch.Tensor) -> torch.Tensor:
        """Differentiable features from unit-cube points ``(n, dim)`` -> ``(n, N_FEATURES)``.

        Continuous parameters are decoded without snapping so gradients flow; categorical ones
        are rounded (no gradient).
        """
        n = X.shape[0]
        vals: dict[str, torch.Tensor] = {}
        cats: dict[str, list[str]] = {}
        free = {p.name: i for i, p in enumerate(self.free_parameters)}
        for p in self.parameters:
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
        if self.kind == "electrical":
            cm = self.contact_map
            pos = torch.tensor([cm[c].position_mm for c in cats["contact"]], dtype=X.dtype)
            return stimulus_features(on=ones, electrical=ones, contact_pos_mm=pos, amplitude_ma=vals["amplitude_ma"],
                                     frequency_hz=vals["frequency_hz"], pulse_width_us=vals["pulse_width_us"],
                                     visual=zeros, auditory=zeros, level=zeros)
        vis = torch.tensor([m == "visual_flicker" for m in cats["modality"]], dtype=X.dtype)
        return stimulus_features(on=ones, electrical=zeros, contact_pos_mm=torch.zeros(n, 3, dtype=X.dtype),
                                 amplitude_ma=zeros, frequency_hz=vals["frequency_hz"], pulse_width_us=zeros,
                                 visual=vis, auditory=1 - vis, level=vals["level"])

    def to_features(self, stims: Stimulus | Iterable[Stimulus], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Stimuli -> model features ``(n, N_FEATURES)``; ``off`` stimuli give all zeros."""
        stims = [stims] if isinstance(stims, Stimulus) else list(stims)
        return features_of(stims, self.contact_map, dtype=dtype)


def features_of(stims: Sequence[Stimulus], contacts: Mapping[str, Contact], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Model features ``(n, N_FEATURES)`` of stimuli, with contact positions from ``contacts``."""
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


def _params_from_defaults(defaults, bounds, steps) -> list[Parameter]:
    unknown = set(bounds) - set(defaults)
    if unknown:
        raise ConfigError(f"unknown parameter(s) {sorted(unknown)}; expected among {sorted(defaults)}")
    out = []
    for name, (unit, (lo, hi), scale, step) in defaults.items():
        lo, hi = bounds.get(name, (lo, hi))
        out.append(Parameter(name, unit, float(lo), float(hi), scale, "continuous", (), steps.get(name, step)))
    return out
