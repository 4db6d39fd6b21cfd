"""The synthetic patient: declared physiology, anatomy and channels around one physics kernel.

A family subclasses :class:`Patient` the way BoTorch test problems subclass ``BaseTestProblem``:
it declares its parameters and ground truth (:meth:`_build`), its initial state, its noise shape,
how a stimulus reaches its targets (:meth:`_targets`) and one method with the physics
(:meth:`run_kernel`). Everything else — stepping, stimulation programs, noise, observation,
counterfactuals, batching — is shared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from bfm_stim.exceptions import SimulatorError, ValidationError
from bfm_stim.space import Contact, Stimulus, StimulusSpace
from simulators.engine import Engine
from simulators.observation import PINK_TAUS_S, _tag, lead_field
from simulators.stimulation import StimProgram

__all__ = ["Patient", "SimResult", "REGIMES"]

REGIMES = ("healthy", "pathological")
WARMUP_S = 2.0


@dataclass(frozen=True)
class SimResult:
    """One simulated trial.

    Attributes:
        data: (n_channels, n_samples) float32 tensor, µV.
        hidden: (n_samples, n_sources) float32 tensor of source signals (ground truth only).
        stim_mask: (n_samples,) bool tensor, True while the train is on.
        fs: Sampling rate, Hz.
        stimulus: The stimulus (``Stimulus.off`` when none).
        onset_s: Train onset, s.
        channel_names, source_names: Labels of ``data`` rows and ``hidden`` columns.
        side_effect: Reported side-effect severity in [0, 1] (0 for families without one).
        side_effect_reported: Whether the patient reported a side effect on this trial.
        counterfactual: The same trial (same noise) without stimulation, when requested.
    """

    data: torch.Tensor
    hidden: torch.Tensor
    stim_mask: torch.Tensor
    fs: float
    stimulus: Stimulus
    onset_s: float
    channel_names: tuple[str, ...]
    source_names: tuple[str, ...]
    side_effect: float = 0.0
    side_effect_reported: bool = False
    counterfactual: "SimResult | None" = field(default=None, repr=False)

    @property
    def times(self) -> torch.Tensor:
        """(n_samples,) sample times, s."""
        return torch.arange(self.data.shape[-1], dtype=torch.float64) / self.fs


class Patient(ABC):
    """Base of every synthetic patient. Subclasses set the class attributes and the hooks.

    Args:
        seed: Patient seed (>= 0); determines physiology, anatomy, channels and noise.
        regime: ``"healthy"`` or ``"pathological"``; default from the registry entry.
        n_channels: Number of recording channels (family-specific range); default from the seed.
        line_noise_hz: Mains frequency (50 or 60 Hz) or 0 for none; default from the seed.
        artifact: Whether electrical pulses leave an artifact on the channels.
        noise_scale: Multiplies the measurement noise (background and white).
        patient_id: Registry id, set by :func:`simulators.make`.
    """

    family: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_regime: ClassVar[str] = "pathological"
    channel_range: ClassVar[tuple[int, int]] = (8, 64)
    fs: float = 1000.0

    def __init__(self, seed: int, *, regime: str | None = None, n_channels: int | None = None,
                 line_noise_hz: float | None = None, artifact: bool = True, noise_scale: float = 1.0,
                 patient_id: str | None = None) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValidationError("seed", seed, "an integer >= 0")
        self.seed = int(seed)
        self.regime = regime or self.default_regime
        if self.regime not in REGIMES:
            raise ValidationError("regime", regime, f"one of {REGIMES}")
        rng = np.random.default_rng([_tag(self.family), self.seed, 7])
        lo, hi = self.channel_range
        nc = int(rng.integers(lo, hi + 1)) if n_channels is None else n_channels
        if isinstance(nc, bool) or not isinstance(nc, (int, np.integer)) or not lo <= nc <= hi:
            raise ValidationError("n_channels", n_channels, f"an integer in [{lo}, {hi}]")
        line = float(rng.choice([50.0, 60.0])) if line_noise_hz is None else float(line_noise_hz)
        if line not in (0.0, 50.0, 60.0):
            raise ValidationError("line_noise_hz", line_noise_hz, "0 (off), 50 or 60 Hz")
        if not (np.isfinite(noise_scale) and noise_scale >= 0):
            raise ValidationError("noise_scale", noise_scale, "a finite number >= 0")
        self.line_noise_hz = line
        self.artifact = bool(artifact)
        self.noise_scale = float(noise_scale)
        self.id = patient_id or f"{self.family}-v0"
        self._overrides = dict(regime=regime, n_channels=n_channels, line_noise_hz=line_noise_hz,
                               artifact=artifact, noise_scale=noise_scale, patient_id=patient_id)
        # --- declared by the family ----------------------------------------------------------
        self.kernel_params: dict[str, np.ndarray] = {}
        self.contacts: tuple[Contact, ...] = ()
        self.target_positions_mm = np.zeros((0, 3))
        self.source_positions_mm = np.zeros((0, 3))
        self.source_names: tuple[str, ...] = ()
        self.source_gains = np.zeros(0)
        self.channel_names: tuple[str, ...] = ()
        self.channel_types: tuple[str, ...] = ()
        self.channel_positions_mm = np.zeros((0, 3))
        self._build(rng, nc)
        # --- observation ----------------------------------------------------------------------
        C = self.n_channels
        self.lead = lead_field(self.source_positions_mm, self.channel_positions_mm, list(self.channel_types),
                               self.source_gains)
        self.pink_sd = self.noise_scale * rng.uniform(3.0, 8.0) * rng.uniform(0.8, 1.25, C)
        self.white_sd = self.noise_scale * rng.uniform(0.5, 2.0) * rng.uniform(0.8, 1.25, C)
        self.line_amp = (rng.uniform(0.5, 3.0) * rng.uniform(0.5, 1.5, C)) if line else np.zeros(C)
        self.line_phase = rng.uniform(0, 2 * np.pi, C)
        self.dc = np.zeros(C)
        self._state0 = self._warm_state()
        self.reset()

    # --- hooks ------------------------------------------------------------------------------------
    @abstractmethod
    def _build(self, rng: np.random.Generator, n_channels: int) -> None:
        """Draw physiology and anatomy; set kernel_params, contacts, sources, targets and channels."""

    @abstractmethod
    def _default_state(self) -> dict[str, np.ndarray]:
        """State arrays (no batch axis) before warm-up."""

    @property
    @abstractmethod
    def noise_shape(self) -> tuple[int, ...]:
        """Shape of one sample of process noise (its C-order flat index is the element counter)."""

    @abstractmethod
    def _targets(self, stim: Stimulus) -> tuple[np.ndarray, np.ndarray]:
        """(kick per pulse, drive during flicker ON) per stimulation target for ``stim``."""

    @staticmethod
    @abstractmethod
    def run_kernel(state: dict[str, np.ndarray], params: dict[str, np.ndarray], noise_key: np.ndarray, t0: int,
                   kicks: np.ndarray, drive: np.ndarray, dt: float) -> np.ndarray:
        """The physics: advance batched ``state`` in place over ``T = kicks.shape[1]`` samples.

        Process noise is drawn inside the kernel from the (B,) uint64 ``noise_key`` streams at
        absolute sample indices ``t0 .. t0 + T - 1`` (:mod:`simulators._rng`), ``noise_shape``
        elements per sample in C order. Returns (B, T, M) sources.
        """

    # --- declared metadata ---------------------------------------------------------------------------
    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    @property
    def n_targets(self) -> int:
        return self.target_positions_mm.shape[0]

    @property
    def channel_units(self) -> tuple[str, ...]:
        return ("µV",) * self.n_channels

    @property
    def channel_positions(self) -> np.ndarray:
        """(n_channels, 3) channel positions, m."""
        return self.channel_positions_mm / 1000.0

    def stimulus_space(self, kind: str = "electrical", *,
                       duration_s: tuple[float, float] = (1.0, 1.0)) -> StimulusSpace:
        """The patient's searchable stimulus space (``"electrical"`` over its contacts, or ``"sensory"``).

        Args:
            kind: ``"electrical"`` or ``"sensory"``.
            duration_s: Bounds on the train duration, s (fixed at 1 s by default for search).
        """
        if kind == "electrical":
            return StimulusSpace.electrical(self.contacts, duration_s=duration_s)
        if kind == "sensory":
            return StimulusSpace.sensory(duration_s=duration_s)
        raise ValidationError("kind", kind, "'electrical' or 'sensory'")

    def metadata(self) -> dict[str, Any]:
        """JSON-ready description (what a device would announce; no hidden physiology)."""
        return {"id": self.id, "family": self.family, "seed": self.seed, "fs": self.fs,
                "n_channels": self.n_channels, "channel_names": list(self.channel_names),
                "channel_types": list(self.channel_types), "channel_units": list(self.channel_units),
                "channel_positions_m": self.channel_positions.tolist(),
                "contacts": [{"name": c.name, "position_mm": list(c.position_mm), "area_cm2": c.area_cm2}
                             for c in self.contacts]}

    def ground_truth(self) -> dict[str, Any]:
        """Hidden physiology and anatomy (for evaluation only)."""
        return {"regime": self.regime, "kernel_params": {k: v.tolist() for k, v in self.kernel_params.items()},
                "source_names": list(self.source_names), "source_positions_mm": self.source_positions_mm.tolist(),
                "target_positions_mm": self.target_positions_mm.tolist()}

    def healthy_twin(self) -> "Patient":
        """The same patient (anatomy, channels, noise) in the healthy regime: the reference."""
        kw = dict(self._overrides, regime="healthy")
        return type(self)(self.seed, **kw)

    # --- stimulation ------------------------------------------------------------------------------------
    def check(self, stim: Stimulus) -> Stimulus:
        """Validate ``stim`` against the patient's space (safety included); return it."""
        if not isinstance(stim, Stimulus):
            raise ValidationError("stimulus", stim, "a bfm_stim.space.Stimulus")
        if stim.kind == "off":
            return stim
        return self.stimulus_space(stim.kind, duration_s=(1e-3, 600.0)).check(stim)

    def program(self, stim: Stimulus, onset: int) -> StimProgram:
        """Bind ``stim`` to this patient, starting at absolute sample ``onset``."""
        self.check(stim)
        end = onset + int(round(stim.duration_s * self.fs))
        kick, drive = (np.zeros(self.n_targets), np.zeros(self.n_targets)) if stim.kind == "off" else self._targets(stim)
        art = np.zeros(self.n_channels)
        if stim.kind == "electrical" and self.artifact:
            c = self._contact(stim.contact)
            d = np.linalg.norm(self.channel_positions_mm - np.asarray(c.position_mm), axis=1)
            # residual of a biphasic pulse after the amplifier's anti-alias filter, µV per pulse
            art = 40.0 * stim.amplitude_ma * (stim.pulse_width_us / 100.0) / (1.0 + (d / 3.0) ** 2)
        return StimProgram(stim, onset, end, kick, drive, art)

    def _contact(self, name: str | None) -> Contact:
        for c in self.contacts:
            if c.name == name:
                return c
        raise ValidationError("contact", name, f"one of {[c.name for c in self.contacts]}")

    def side_effect(self, stim: Stimulus, *, trial: int = 0) -> tuple[float, bool]:
        """(severity in [0, 1], reported) for one trial of ``stim``; none for this family."""
        return 0.0, False

    # --- state ---------------------------------------------------------------------------------------------
    def initial_state(self) -> dict[str, np.ndarray]:
        """State at t = 0 (after the warm-up), copied."""
        return {k: v.copy() for k, v in self._state0.items()}

    def pink_initial(self, trial: int) -> np.ndarray:
        """(n_channels, n_filters) stationary initial state of the 1/f background filters."""
        rng = np.random.default_rng([_tag(self.family), self.seed, int(trial) % 2**63, 11])
        return rng.standard_normal((self.n_channels, len(PINK_TAUS_S)))

    def _warm_state(self) -> dict[str, np.ndarray]:
        # Warm-up on its own noise stream (trial -1) onto the attractor; also fixes the DC offset.
        self._state0 = self._default_state()
        eng = Engine([self], trials=[-1])
        _, src, _ = eng.advance(int(WARMUP_S * self.fs), hidden=True)
        assert src is not None
        self.dc = -self.lead @ src[0, -int(self.fs):].astype(np.float64).mean(axis=0)
        return {k: v[0].copy() for k, v in eng.state.items()}

    def reset(self) -> "Patient":
        """Back to t = 0 for this seed, no stimulation."""
        self._engine = Engine([self])
        return self

    @property
    def t_samples(self) -> int:
        """Samples advanced since the last reset."""
        return self._engine.t

    @property
    def stimulating(self) -> bool:
        prog = self._engine.programs[0]
        return prog is not None and prog.onset <= self._engine.t < prog.end

    def start_stimulation(self, stim: Stimulus) -> "Patient":
        """Start ``stim`` at the next sample (it stops by itself after ``stim.duration_s``)."""
        self._engine.programs[0] = None if stim.kind == "off" else self.program(stim, self._engine.t)
        if stim.kind == "off":
            self.check(stim)
        return self

    def stop_stimulation(self) -> "Patient":
        """Stop any train from the next sample on."""
        self._engine.programs[0] = None
        return self

    def advance(self, n_samples: int) -> np.ndarray:
        """Advance by ``n_samples``; return (n_channels, n_samples) float32 µV. Chunked == whole."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 0:
            raise ValidationError("n_samples", n_samples, "an integer >= 0")
        data, _, _ = self._engine.advance(int(n_samples))
        return data[0]

    # --- trials ------------------------------------------------------------------------------------------
    def simulate(self, duration_s: float, stimulus: Stimulus | None = None, onset_s: float = 0.0, *,
                 trial: int = 0, counterfactual: bool = False) -> SimResult:
        """One trial from the t = 0 state (independent of :meth:`advance`).

        Args:
            duration_s: Length of the recording, s.
            stimulus: The train (None: no stimulation); its own ``duration_s`` sets how long it lasts.
            onset_s: Train onset within the recording, s.
            trial: Noise realization.
            counterfactual: Also run the same trial (same noise) without the stimulus.
        """
        from simulators.batch import simulate_batch

        stim = stimulus or Stimulus.off(duration_s=max(duration_s, 1e-3))
        res = simulate_batch([self], [stim], duration_s, onset_s=onset_s, trials=[trial], hidden=True)
        cf = None
        if counterfactual:
            cf = self.simulate(duration_s, None, onset_s, trial=trial)
        sev, rep = self.side_effect(stim, trial=trial)
        return SimResult(res.data[0, :self.n_channels], res.hidden[0], res.stim_mask[0], self.fs, stim,
                         float(onset_s), self.channel_names, self.source_names, sev, rep, cf)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, seed={self.seed}, regime={self.regime!r}, n_channels={self.n_channels})"
