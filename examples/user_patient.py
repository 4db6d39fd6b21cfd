"""A user's own benchmark patient: a closed-form response surface (the patient protocol, worked example).

Name it in a benchmark TOML::

    [[cohort.patients]]
    class = "examples.user_patient:QuadraticPatient"
    seeds = [0, 1]
    settings = { noise_sd = 0.05 }

The protocol (:class:`loops.benchmark.patients.BenchPatient`): ``id``, ``seed``, ``stimulus_space()``,
``simulate(stimulus, *, trial) -> cost`` (measured, noisy; the same ``trial`` gives the same noise),
``side_effect(stimulus, *, trial) -> (severity, reported)``, and for the oracle only
``oracle_cost(stimuli) -> (n,)`` (noise-free; ``None`` = stimulation off) and ``oracle_optimum()``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from bfm_stim.space import Contact, Stimulus, StimulusSpace


class QuadraticPatient:
    """Two contacts; cost = a bowl in (amplitude mA, log frequency Hz, pulse width µs) around a
    seed-dependent optimum on the better contact, plus Gaussian trial noise; side effects above a
    charge threshold (µC per phase).

    Args:
        seed: Patient seed (the optimum's location).
        noise_sd: Trial noise standard deviation (cost units).
        side_effect_uc: Charge per phase (µC) above which a side effect is reported.
    """

    def __init__(self, seed: int = 0, *, noise_sd: float = 0.05, side_effect_uc: float = 0.6) -> None:
        self.id, self.seed = "quadratic", int(seed)
        rng = np.random.default_rng([seed, 5])
        self.best_contact = "c1" if seed % 2 else "c0"
        self.opt = {"amplitude_ma": float(rng.uniform(1.0, 3.0)), "frequency_hz": float(rng.uniform(60.0, 160.0)),
                    "pulse_width_us": float(rng.uniform(60.0, 150.0))}
        self.noise_sd, self.side_effect_uc = noise_sd, side_effect_uc
        self._space = StimulusSpace.electrical([Contact("c0", (0.0, 0.0, 0.0)), Contact("c1", (0.0, 0.0, 2.0))])

    def stimulus_space(self) -> StimulusSpace:
        return self._space

    def _mean(self, s: Stimulus | None) -> float:
        if s is None or s.kind == "off":
            return 1.0
        d = ((s.amplitude_ma - self.opt["amplitude_ma"]) / 1.5) ** 2 \
            + (math.log(s.frequency_hz / self.opt["frequency_hz"]) / 1.0) ** 2 \
            + ((s.pulse_width_us - self.opt["pulse_width_us"]) / 150.0) ** 2
        floor = 0.1 if s.contact == self.best_contact else 0.4
        return floor + (1.0 - floor) * (1.0 - math.exp(-d))

    def simulate(self, stimulus: Stimulus, *, trial: int) -> float:
        noise = np.random.default_rng([self.seed, trial, 1]).normal(0.0, self.noise_sd)
        return self._mean(stimulus) + float(noise)

    def side_effect(self, stimulus: Stimulus, *, trial: int) -> tuple[float, bool]:
        sev = min(1.0, max(0.0, stimulus.charge_uc / self.side_effect_uc - 0.5))
        return sev, sev >= 0.5

    def oracle_cost(self, stimuli: Sequence[Stimulus | None]) -> np.ndarray:
        return np.array([self._mean(s) for s in stimuli])

    def oracle_optimum(self) -> Stimulus:
        s = Stimulus.electrical(contact=self.best_contact, **self.opt)
        if not self._space.is_safe(s) or self.side_effect(s, trial=0)[1]:
            s = self._space.project_safe(s.with_(amplitude_ma=min(s.amplitude_ma,
                                                                  0.9 * self.side_effect_uc / (s.pulse_width_us * 1e-3))))
        return s


class QuadraticPatientWithModel(QuadraticPatient):
    """The same patient, with a surrogate for ``guided`` / ``gradient`` / ``egreedy``.

    A benchmark patient that has ``cost_model(seed)`` gives the surrogate optimizers a model; one
    without it leaves them on a flat prior (they say so). The model comes from the patient's rest
    recording and the shipped checkpoint through :func:`bfm_stim.optim.cost_model_from_rest`.

    Here a simulated STN recording stands in for your lab's rest recording (``rest_seed`` picks
    it): the model forecasts that recording's beta power, which has nothing to do with this
    patient's bowl-shaped cost, so the optimizers' online trust (trust in the manifest and rows)
    falls within a few trials and they fall back to plain BO.

    Args:
        rest_seed: Seed of the simulated recording that stands in for the rest recording.
        **kwargs: See :class:`QuadraticPatient`.
    """

    def __init__(self, seed: int = 0, *, rest_seed: int = 1_050_000, **kwargs) -> None:
        super().__init__(seed, **kwargs)
        self.rest_seed = int(rest_seed)

    def rest_recording(self) -> tuple[np.ndarray, float, np.ndarray, list[int]]:
        """(data (C, T) µV, fs Hz, positions (C, 3) m, the channels whose band power is the cost)."""
        import simulators

        p = simulators.make("bg-beta-v0", seed=self.rest_seed)
        data = np.asarray(p.simulate(30.0, None, trial=900_000).data)
        return data, p.fs, p.channel_positions, [i for i, t in enumerate(p.channel_types) if t == "dbs"]

    def cost_model(self, seed: int):
        from bfm_stim.optim import cost_model_from_rest

        data, fs, positions, channels = self.rest_recording()
        return cost_model_from_rest(data, fs=fs, positions=positions, space=self.stimulus_space(),
                                    target="bandpower:13-30", channels=channels, seed=seed)
