"""The space optimizers search: :class:`StimulusSpace`, and the one safety choke point.

A :class:`StimulusSpace` holds named :class:`~bfm_stim.stimulus.Parameter` s (unit, bounds, linear
or log scale, continuous / integer / categorical kind, device resolution), the patient's
:class:`~bfm_stim.stimulus.Contact` s and the :class:`~bfm_stim.safety.SafetyLimits`. It converts
stimuli to and from the unit cube (for Bayesian optimization), to model features (for the
surrogate; implemented in :mod:`bfm_stim.stim_features`) and to and from JSON (protocol files,
LSL commands). :meth:`StimulusSpace.check` is the one safety choke point.

The records (:class:`~bfm_stim.stimulus.Stimulus`, :class:`~bfm_stim.stimulus.Contact`,
:class:`~bfm_stim.stimulus.Parameter`) live in :mod:`bfm_stim.stimulus` and are importable from
here too.

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
from bfm_stim import stim_features as _features
from bfm_stim.exceptions import ConfigError, ValidationError
from bfm_stim.safety import SafetyLimits
from bfm_stim.stim_features import FEATURE_NAMES, N_FEATURES, features_of, stimulus_features
from bfm_stim.stimulus import KINDS, MODALITIES, Contact, Parameter, Stimulus

__all__ = [
    "Contact",
    "Stimulus",
    "Parameter",
    "StimulusSpace",
    "SafetyLimits",
    "KINDS",
    "MODALITIES",
    # re-exported from bfm_stim.stim_features, where they are defined
    "FEATURE_NAMES",
    "N_FEATURES",
    "stimulus_features",
    "features_of",
]

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
        are rounded (no gradient). See :func:`bfm_stim.stim_features.features_from_unit`.
        """
        return _features.features_from_unit(X, kind=self.kind, parameters=self.parameters, contacts=self.contact_map)

    def to_features(self, stims: Stimulus | Iterable[Stimulus], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Stimuli -> model features ``(n, N_FEATURES)``; ``off`` stimuli give all zeros.

        See :func:`bfm_stim.stim_features.features_of`.
        """
        stims = [stims] if isinstance(stims, Stimulus) else list(stims)
        return _features.features_of(stims, self.contact_map, dtype=dtype)


def _params_from_defaults(defaults, bounds, steps) -> list[Parameter]:
    unknown = set(bounds) - set(defaults)
    if unknown:
        raise ConfigError(f"unknown parameter(s) {sorted(unknown)}; expected among {sorted(defaults)}")
    out = []
    for name, (unit, (lo, hi), scale, step) in defaults.items():
        lo, hi = bounds.get(name, (lo, hi))
        out.append(Parameter(name, unit, float(lo), float(hi), scale, "continuous", (), steps.get(name, step)))
    return out
