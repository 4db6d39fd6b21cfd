"""Misspecified settings for ``bfm-stim bench robust``: patients whose surrogate does not know them.

:class:`ForeignModelPatient` is a simulated patient measured as usual (band power of its DBS lead,
its oracle) whose cost model is the foundation model bound to a patient of *another family*: a
surrogate adapted to the wrong patient, the commonest way a model is wrong in a lab.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bfm_stim.space import Stimulus, StimulusSpace

__all__ = ["ForeignModelPatient"]


class ForeignModelPatient:
    """A ``family`` patient whose surrogate is bound to a ``model_family`` patient (rest, positions).

    Args:
        seed: Evaluation seed of the measured patient.
        family: The measured patient's registered id.
        model_family: The family of the patient the surrogate is bound to.
        model_seed_offset: The surrogate's patient is ``seed + offset`` (an evaluation seed too).
        band_hz: Band of the band-power objective, Hz.
        energy_weight: Energy penalty weight (cost per mA²·Hz·ms).
    """

    def __init__(self, seed: int, *, family: str = "bg-beta-v0", model_family: str = "cortex-jr-epileptic-v0",
                 model_seed_offset: int = 500, band_hz: Sequence[float] = (13.0, 30.0),
                 energy_weight: float = 0.0) -> None:
        from loops.benchmark.config import ObjectiveConfig, OracleConfig
        from loops.benchmark.patients import SimulatedPatient

        self.seed = int(seed)
        self.model_family, self.model_seed = model_family, int(seed) + int(model_seed_offset)
        obj = ObjectiveConfig(kind="bandpower", band_hz=tuple(band_hz), energy_weight=energy_weight)
        self._inner = SimulatedPatient(family, self.seed, obj, OracleConfig(repeats=8))
        self._inner._surrogate = None  # the inner patient's own (right) model is not used
        self.id = f"{family}|model:{model_family}"
        self.description = self._inner.description + f" (surrogate bound to a {model_family} patient)"
        self.checkpoint_digest: str | None = None
        self._band, self._w = tuple(band_hz), float(energy_weight)

    def stimulus_space(self) -> StimulusSpace:
        return self._inner.stimulus_space()

    def trial(self, stimulus: Stimulus, *, trial: int) -> tuple[float, float, bool]:
        return self._inner.trial(stimulus, trial=trial)

    def simulate(self, stimulus: Stimulus, *, trial: int) -> float:
        return self._inner.simulate(stimulus, trial=trial)

    def side_effect(self, stimulus: Stimulus, *, trial: int) -> tuple[float, bool]:
        return self._inner.side_effect(stimulus, trial=trial)

    def oracle_cost(self, stimuli: Sequence[Stimulus | None]) -> np.ndarray:
        return self._inner.oracle_cost(stimuli)

    def oracle_optimum(self) -> Stimulus:
        s = self._inner.oracle_optimum()
        self.oracle_grid_cost = self._inner.oracle_grid_cost
        return s

    def cost_model(self, seed: int) -> Any:
        """The foundation model bound to the other family's patient, scoring this patient's stimuli."""
        import simulators
        from bfm_stim.optim import cost_model_from_rest
        from loops.offline import checkpoint_path, file_digest

        q = simulators.make(self.model_family, seed=self.model_seed)
        rest = np.asarray(q.simulate(30.0, None, trial=900_000).data)
        ckpt = checkpoint_path(None)
        self.checkpoint_digest = None if ckpt is None else file_digest(ckpt)
        lo, hi = self._band
        target = f"bandpower:{lo:g}-{hi:g}" + (f",energy={self._w:g}" if self._w else "")
        return cost_model_from_rest(rest, fs=q.fs, positions=q.channel_positions, space=self.stimulus_space(),
                                    target=target, seed=seed)
