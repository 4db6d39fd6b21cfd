"""Gymnasium adapter: one step = one stimulation trial on a synthetic patient.

Action: a point of the unit cube of the patient's electrical stimulus space
(``StimulusSpace.from_unit``), made safe by ``project_safe`` (amplitude reduced) before it is
delivered. Observation: log band powers (δ, θ, α, β, γ) per channel of the response, float32
(n_channels · 5,). Reward: minus the objective (default: log beta power on the DBS contacts, or
the distance to the healthy reference for cortex patients). ``info`` carries the stimulus, the
reported side effect and the trial index. Episodes are truncated after ``max_trials``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from simulators.oracle import BANDS, BandPowerObjective, HealthyReferenceObjective, band_power
from simulators.registry import make

__all__ = ["StimulationEnv", "ENV_IDS"]

ENV_IDS = {"bfm_stim/BGBeta-v0": "bg-beta-v0", "bfm_stim/CortexJR-v0": "cortex-jr-epileptic-v0"}


class StimulationEnv(gym.Env):
    """One patient, one trial per step.

    Args:
        patient_id: Registered patient id.
        patient_seed: Patient seed.
        trial_s: Stimulation (and recording) time per trial, s.
        max_trials: Episode length (truncation).
        objective: Callable ``(patient, data, stimulus) -> cost``; default per family.
    """

    metadata = {"render_modes": []}

    def __init__(self, patient_id: str = "bg-beta-v0", patient_seed: int = 1_000_000, *, trial_s: float = 1.0,
                 max_trials: int = 20, objective: Any = None, **patient_kwargs: Any) -> None:
        self.patient = make(patient_id, patient_seed, **patient_kwargs)
        self.space = self.patient.stimulus_space()
        self.trial_s = float(trial_s)
        self.max_trials = int(max_trials)
        if objective is None:
            objective = BandPowerObjective() if self.patient.family == "bg-beta" else HealthyReferenceObjective()
        self.objective = objective
        n = self.patient.n_channels * len(BANDS)
        self.observation_space = spaces.Box(-60.0, 60.0, (n,), np.float32)  # log µV²/Hz
        self.action_space = spaces.Box(0.0, 1.0, (self.space.dim,), np.float32)
        self._trial = 0

    def _observe(self, data: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(data).double()
        feats = torch.stack([torch.log(band_power(x, self.patient.fs, b) + 1e-12) for b in BANDS.values()], dim=-1)
        return np.clip(feats.reshape(-1).numpy(), -60.0, 60.0).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.patient.reset()
        self._trial = 0
        data = self.patient.advance(int(self.trial_s * self.patient.fs))
        return self._observe(data), {"trial": 0}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(1, -1), 0.0, 1.0)
        stim = self.space.from_unit(torch.from_numpy(a))[0]
        stim = self.space.project_safe(stim.with_(duration_s=self.trial_s))
        self.patient.start_stimulation(stim)
        data = self.patient.advance(int(self.trial_s * self.patient.fs))
        self.patient.stop_stimulation()
        self._trial += 1
        cost = float(self.objective(self.patient, torch.from_numpy(data), stim))
        sev, rep = self.patient.side_effect(stim, trial=self._trial)
        info = {"stimulus": stim.to_dict(), "side_effect": sev, "side_effect_reported": rep, "trial": self._trial}
        return self._observe(data), -cost, False, self._trial >= self.max_trials, info


def register_envs() -> None:
    """Register :data:`ENV_IDS` with Gymnasium (idempotent)."""
    for env_id, pid in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point="simulators.gym_env:StimulationEnv", kwargs={"patient_id": pid})


register_envs()
