"""The known safe set as the image of a box, so optimizers search inside it rather than project onto it.

For an electrical space the safety limits of :mod:`bfm_stim.safety` reduce to box caps (amplitude,
rate, phase width, duration) and one coupling: the charge per phase ``amplitude_mA * width_µs / 1000``
must stay below ``Q_c = min(sqrt(10**k * A_c), D_max * A_c, Q_max)`` µC on contact ``c`` of area
``A_c`` (Shannon, density and charge caps are all monotone in the charge). So the safe set is

    { width <= W_c,  amplitude <= a_max_c(width) = min(a_cap, 1000 * Q_c / width) }

and :class:`SafeBoxMap` maps the unit box ``z ∈ [0, 1]^d`` onto it: rate/width/duration are scaled
to their capped ranges, the amplitude is ``z_amp`` times the largest safe amplitude at the decoded
width (measured on the unit scale of the amplitude parameter), and the categorical coordinate picks
among the contacts that have any safe stimulus (``floor(z * n_feasible)``). The map is differentiable
in the continuous coordinates, so BO optimizes the acquisition through it and CMA-ES samples in
``z``. Margins of one device step on width and amplitude keep the snapped stimulus inside the set.

Sensory spaces: rate and level caps are boxes; the optional photosensitive band (a hole) is left to
the base class's projection.
"""

from __future__ import annotations

import math
import torch

from bfm_stim.exceptions import OptimizerError
from bfm_stim.space import StimulusSpace
from bfm_stim.stimulus import Parameter

__all__ = ["SafeBoxMap"]

_CAPS = {
    "amplitude_ma": "max_amplitude_ma",
    "frequency_hz": "max_frequency_hz",
    "pulse_width_us": "max_pulse_width_us",
    "duration_s": "max_duration_s",
}


def _encode(p: Parameter, v: torch.Tensor) -> torch.Tensor:
    """Value -> unit coordinate (torch, differentiable)."""
    if p.scale == "log":
        return (torch.log(v) - math.log(p.low)) / (math.log(p.high) - math.log(p.low))
    return (v - p.low) / (p.high - p.low)


def _decode(p: Parameter, u: torch.Tensor) -> torch.Tensor:
    if p.scale == "log":
        return torch.exp(math.log(p.low) + u * (math.log(p.high) - math.log(p.low)))
    return p.low + u * (p.high - p.low)


class SafeBoxMap:
    """Differentiable map from the unit box onto the known safe set, in unit-cube coordinates.

    Args:
        space: The stimulus space (its parameters, contacts and limits).

    Attributes:
        cat_dim: Unit-cube column of the categorical parameter (contact/modality), or ``None``.
        feasible: Choice indices of the categorical parameter that have a safe non-zero stimulus.
        n_choices: Number of choices of the categorical parameter.
    """

    def __init__(self, space: StimulusSpace) -> None:
        self.space = space
        free = space.free_parameters
        self.dim = len(free)
        self.col = {p.name: i for i, p in enumerate(free)}
        cat = [i for i, p in enumerate(free) if p.kind == "categorical"]
        self.cat_dim: int | None = cat[0] if cat else None
        catp = [p for p in space.parameters if p.kind == "categorical"][0]
        self.n_choices = len(catp.choices)
        lim = space.limits
        self._top: dict[str, float] = {}
        for p in space.parameters:
            if p.kind == "categorical":
                continue
            cap = p.high
            if space.kind == "electrical" and p.name in _CAPS:
                cap = min(cap, getattr(lim, _CAPS[p.name]))
            elif space.kind == "sensory" and p.name == "frequency_hz":
                cap = min(cap, lim.max_sensory_rate_hz)
            elif space.kind == "sensory" and p.name == "level":
                cap = min(cap, 1.0)
            if cap < p.low:
                raise OptimizerError(f"no safe stimulus in this space: {p.name} >= {p.low:g} {p.unit} "
                                     f"but the safety limits allow at most {cap:g} {p.unit}")
            self._top[p.name] = cap
        self.feasible = list(range(self.n_choices))
        if space.kind == "electrical":
            self._setup_electrical(catp)
        if not self.feasible:
            raise OptimizerError(
                f"no contact of this space has a safe stimulus with amplitude >= "
                f"{space.param('amplitude_ma').low:g} mA and pulse width >= {space.param('pulse_width_us').low:g} µs "
                f"under {lim}; lower the bounds or change the limits")

    def _setup_electrical(self, contact_param: Parameter) -> None:
        space, lim = self.space, self.space.limits
        cmap = space.contact_map
        amp, pw = space.param("amplitude_ma"), space.param("pulse_width_us")
        self._da = amp.step or 0.0
        self._dpw = pw.step or 0.0
        q = []
        for name in contact_param.choices:
            area = cmap[name].area_cm2
            q.append(min(math.sqrt((10.0 ** lim.shannon_k) * area), lim.max_charge_density_uc_cm2 * area,
                         lim.max_charge_uc))
        self._q = torch.tensor(q, dtype=torch.float64)
        # Largest width per contact (with margins) at which the amplitude floor is still safe.
        pw_top = []
        feasible = []
        for i, qi in enumerate(q):
            top = self._top["pulse_width_us"]
            if amp.low > 0:
                top = min(top, 1000.0 * qi * (1 - 1e-9) / (amp.low + self._da) - self._dpw)
            if amp.low * pw.low / 1000.0 <= qi * (1 - 1e-9) or amp.low == 0:
                feasible.append(i)
            pw_top.append(max(top, pw.low))
        self.feasible = feasible
        self._pw_top = torch.tensor(pw_top, dtype=torch.float64)

    # --- categorical ----------------------------------------------------------------------------
    def choice_z(self) -> list[float]:
        """``z`` values of the categorical coordinate that select each feasible choice (midpoints)."""
        m = len(self.feasible)
        return [(j + 0.5) / m for j in range(m)]

    def _choice_index(self, z: torch.Tensor) -> torch.Tensor:
        m = len(self.feasible)
        j = torch.clamp(torch.floor(z.detach() * m), 0, m - 1).long()
        return torch.tensor(self.feasible, dtype=torch.long)[j]

    # --- the map ------------------------------------------------------------------------------
    def __call__(self, Z: torch.Tensor) -> torch.Tensor:
        """Map ``Z`` (``... x dim``, in [0, 1]) to unit-cube points of the safe set (same shape)."""
        Z = Z.clamp(0.0, 1.0)
        cols = list(Z.unbind(-1))
        space = self.space
        idx = None
        if self.cat_dim is not None:
            idx = self._choice_index(cols[self.cat_dim])
            denom = max(self.n_choices - 1, 1)
            cols[self.cat_dim] = idx.to(Z.dtype) / denom
        else:
            idx = torch.zeros(Z.shape[:-1], dtype=torch.long)
        for name, c in self.col.items():
            p = space.param(name)
            if p.kind == "categorical" or (space.kind == "electrical" and name in ("amplitude_ma", "pulse_width_us")):
                continue
            top = _encode(p, torch.tensor(self._top[name], dtype=Z.dtype))
            cols[c] = cols[c] * top
        if space.kind == "electrical":
            cols = self._electrical(cols, idx, Z.dtype)
        return torch.stack(cols, dim=-1) if cols else Z

    def _electrical(self, cols: list[torch.Tensor], idx: torch.Tensor, dtype: torch.dtype) -> list[torch.Tensor]:
        space = self.space
        amp, pw = space.param("amplitude_ma"), space.param("pulse_width_us")
        q = self._q.to(dtype)[idx]
        if "pulse_width_us" in self.col:
            c = self.col["pulse_width_us"]
            top_u = _encode(pw, self._pw_top.to(dtype)[idx])
            cols[c] = cols[c] * top_u
            width = _decode(pw, cols[c])
        else:
            width = torch.full_like(q, pw.low)
        if "amplitude_ma" in self.col:
            c = self.col["amplitude_ma"]
            a_top = torch.minimum(torch.full_like(q, self._top["amplitude_ma"]),
                                  1000.0 * q * (1 - 1e-9) / (width + self._dpw).clamp_min(1e-9) - self._da)
            a_top = a_top.clamp_min(amp.low if amp.scale == "linear" else amp.low * (1 + 1e-12))
            cols[c] = cols[c] * _encode(amp, a_top).clamp(0.0, 1.0)
        return cols
