"""Ground truth for evaluation: objectives, oracle cost and the oracle optimum (cached on disk).

Never give these to an optimizer under test: they read the simulator's noise-free knowledge
(many noise repeats, the healthy twin, the hidden side-effect threshold).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ValidationError
from bfm_stim.space import Stimulus
from simulators.batch import simulate_batch
from simulators.patient import Patient

__all__ = ["band_power", "BandPowerObjective", "HealthyReferenceObjective", "oracle_cost", "oracle_optimum",
           "cache_dir", "ORACLE_VERSION", "SETTLE_S"]

_log = get_logger("simulators.oracle")
ORACLE_VERSION = 3  # 2: bg-beta HFS mechanism, key has kernel params; 3: scored over the stimulation window
# s of response discarded after onset before a trial is scored. 0: the cost is measured over the
# stimulation window [onset, onset + duration], the window the foundation model forecasts (its
# horizon starts at onset with the stimulus held), so predicted and measured costs describe the same data.
SETTLE_S = 0.0
BANDS = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0), "gamma": (30.0, 80.0)}


def cache_dir() -> Path:
    """``$BFM_STIM_CACHE`` or ``~/.cache/bfm-stim``."""
    return Path(os.environ.get("BFM_STIM_CACHE", Path.home() / ".cache" / "bfm-stim"))


def band_power(data: torch.Tensor, fs: float, band: tuple[float, float]) -> torch.Tensor:
    """Mean periodogram power (µV²/Hz) in ``band`` (Hz) over the last axis; Hann window, mean removed."""
    x = data - data.mean(dim=-1, keepdim=True)
    w = torch.hann_window(x.shape[-1], dtype=x.dtype)
    spec = torch.fft.rfft(x * w, dim=-1).abs() ** 2 / (fs * (w**2).sum())
    f = torch.fft.rfftfreq(x.shape[-1], 1.0 / fs)
    m = (f >= band[0]) & (f <= band[1])
    return spec[..., m].mean(dim=-1)


@dataclass(frozen=True)
class BandPowerObjective:
    """Cost = log band power over the trial's stimulation window on chosen channel types (lower is better).

    Args:
        band: (low, high) Hz; default beta.
        channel_types: Channel types averaged (default DBS contacts; falls back to all channels).
        energy_weight: Adds ``energy_weight * I² · f · pw`` (mA² · Hz · ms), a TEED-like energy penalty.
    """

    band: tuple[float, float] = BANDS["beta"]
    channel_types: tuple[str, ...] = ("dbs",)
    energy_weight: float = 0.0

    @property
    def key(self) -> str:
        return f"bandpower{self.band}{self.channel_types}{self.energy_weight}"

    def __call__(self, patient: Patient, data: torch.Tensor, stimulus: Stimulus | None) -> torch.Tensor:
        """``data``: (..., n_channels, n_samples) µV → cost (...,)."""
        idx = [i for i, t in enumerate(patient.channel_types) if t in self.channel_types] or list(range(patient.n_channels))
        cost = torch.log(band_power(data[..., idx, :].double(), patient.fs, self.band).mean(dim=-1))
        return cost + self.energy_weight * energy(stimulus)


def energy(stimulus: Stimulus | None) -> float:
    """TEED-like energy per second, mA² · Hz · ms (0 for non-electrical)."""
    if stimulus is None or stimulus.kind != "electrical":
        return 0.0
    return stimulus.amplitude_ma**2 * stimulus.frequency_hz * stimulus.pulse_width_us / 1000.0


@dataclass(frozen=True)
class HealthyReferenceObjective:
    """Cost = distance of log band powers (δ–γ per channel) to the patient's own healthy twin.

    The reference is the mean over ``n_reference`` healthy-regime trials of the same patient.
    """

    duration_s: float = 2.0
    n_reference: int = 4
    energy_weight: float = 0.0

    @property
    def key(self) -> str:
        return f"healthyref{self.duration_s}{self.n_reference}{self.energy_weight}"

    @staticmethod
    def features(data: torch.Tensor, fs: float) -> torch.Tensor:
        return torch.stack([torch.log(band_power(data.double(), fs, b) + 1e-12) for b in BANDS.values()], dim=-1)

    def reference(self, patient: Patient) -> torch.Tensor:
        twin = patient.healthy_twin()
        res = simulate_batch([twin] * self.n_reference, [None] * self.n_reference, self.duration_s,
                             trials=range(10_000, 10_000 + self.n_reference))
        return self.features(res.data[:, :patient.n_channels], patient.fs).mean(dim=0)

    def __call__(self, patient: Patient, data: torch.Tensor, stimulus: Stimulus | None) -> torch.Tensor:
        ref = _ref_cache.setdefault((patient.id, patient.seed, self.key), self.reference(patient))
        d = (self.features(data[..., :patient.n_channels, :], patient.fs) - ref).pow(2).mean(dim=(-1, -2)).sqrt()
        return d + self.energy_weight * energy(stimulus)


_ref_cache: dict[tuple, torch.Tensor] = {}
Objective = Callable[[Patient, torch.Tensor, "Stimulus | None"], torch.Tensor]


def _evaluate(patient: Patient, stimuli: Sequence[Stimulus | None], objective: Objective, repeats: int,
              settle_s: float, trial0: int) -> np.ndarray:
    """Mean cost over ``repeats`` noise realizations for each stimulus; (n,) array."""
    dur = max((s.duration_s for s in stimuli if s is not None), default=1.0)
    rows_p, rows_s, rows_t = [], [], []
    for s in stimuli:
        for r in range(repeats):
            rows_p.append(patient)
            rows_s.append(s)
            rows_t.append(trial0 + r)
    res = simulate_batch(rows_p, rows_s, dur + settle_s, onset_s=0.0, trials=rows_t)
    k0 = int(round(settle_s * patient.fs))
    costs = [float(objective(patient, res.data[i, :patient.n_channels, k0:], rows_s[i])) for i in range(len(rows_s))]
    return np.asarray(costs).reshape(len(stimuli), repeats).mean(axis=1)


def oracle_cost(patient: Patient, stimulus: Stimulus | None, objective: Objective, repeats: int = 8, *,
                settle_s: float = SETTLE_S) -> float:
    """Expected cost of ``stimulus`` (averaged over ``repeats`` noise realizations, scored from ``settle_s``
    after onset). Every call uses the same noise realizations (trials 50 000 ...), so differences between
    stimuli are paired (common random numbers)."""
    return float(_evaluate(patient, [stimulus], objective, repeats, settle_s, 50_000)[0])


def _feasible(patient: Patient, s: Stimulus) -> bool:
    space = patient.stimulus_space(s.kind, duration_s=(1e-3, 600.0))
    if not space.is_safe(s):
        return False
    thr = getattr(patient, "side_effect_threshold_ma", None)
    return thr is None or s.kind != "electrical" or s.amplitude_ma < thr(s.contact, s.pulse_width_us)


def oracle_optimum(patient: Patient, objective: Objective, *, n_amplitude: int = 6, frequencies: Sequence[float] = (
        10.0, 20.0, 60.0, 130.0, 185.0), pulse_widths: Sequence[float] = (60.0, 120.0, 240.0), repeats: int = 4,
        refine_steps: int = 2, duration_s: float = 1.0, use_cache: bool = True) -> dict:
    """Best feasible electrical stimulus by dense batched grid search plus local refinement.

    Feasible = passes the safety check and stays below the hidden side-effect threshold. Cached per
    patient, objective and grid under :func:`cache_dir` (``oracle/<hash>.json``).

    Returns:
        ``{"stimulus": dict, "cost": float, "baseline_cost": float, "n_evaluated": int}``.
    """
    key_src = json.dumps([ORACLE_VERSION, patient.id, patient.seed, patient.regime, patient.n_channels,
                          getattr(objective, "key", repr(objective)), n_amplitude, list(frequencies),
                          list(pulse_widths), repeats, refine_steps, duration_s, SETTLE_S,
                          {k: np.asarray(v).tolist() for k, v in sorted(patient.kernel_params.items())}])
    path = cache_dir() / "oracle" / (hashlib.sha256(key_src.encode()).hexdigest()[:24] + ".json")
    if use_cache and path.is_file():
        return json.loads(path.read_text())
    space = patient.stimulus_space()
    amp_hi = space.param("amplitude_ma").high
    grid = [Stimulus.electrical(contact=c.name, amplitude_ma=float(a), frequency_hz=float(f), pulse_width_us=float(pw),
                                duration_s=duration_s)
            for c in patient.contacts for a in np.linspace(amp_hi / n_amplitude, amp_hi, n_amplitude)
            for f in frequencies for pw in pulse_widths]
    grid = [s for s in grid if _feasible(patient, s)]
    costs = _evaluate(patient, grid, objective, repeats, SETTLE_S, 60_000) if grid else np.zeros(0)
    n_eval = len(grid)
    best_i = int(np.argmin(costs)) if len(grid) else -1
    best, best_c = (grid[best_i], float(costs[best_i])) if best_i >= 0 else (Stimulus.off(duration_s), np.inf)
    step = {"amplitude_ma": amp_hi / n_amplitude / 2, "frequency_hz": 0.25, "pulse_width_us": 0.25}
    for _ in range(refine_steps if best.kind == "electrical" else 0):
        cands = []
        for name, h in step.items():
            for sgn in (-1.0, 1.0):
                v = getattr(best, name)
                nv = v + sgn * h if name == "amplitude_ma" else v * (1.0 + sgn * h)
                p = space.param(name)
                nv = float(min(max(nv, p.low), p.high))
                c = best.with_(**{name: nv})
                if _feasible(patient, c):
                    cands.append(c)
        if not cands:
            break
        cc = _evaluate(patient, cands, objective, repeats, SETTLE_S, 60_000)
        n_eval += len(cands)
        if cc.min() < best_c:
            best, best_c = cands[int(np.argmin(cc))], float(cc.min())
        step = {k: v / 2 for k, v in step.items()}
    base = float(_evaluate(patient, [None], objective, repeats, SETTLE_S, 60_000)[0])
    out = {"stimulus": best.to_dict(), "cost": best_c, "baseline_cost": base, "n_evaluated": n_eval,
           "patient": patient.id, "seed": patient.seed}
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1))
        _log.info("oracle optimum for %s seed %d cached at %s", patient.id, patient.seed, path)
    return out
