"""A user's own optimizer: local random search around the best trial (worked example).

Subclassing :class:`bfm_stim.optim.Optimizer` is the recommended way in: implement ``_propose`` (points of
the unit cube) and ``_observe``; the base class projects every proposal onto the safe set and checks it.
Name it in a benchmark TOML::

    [[optimizers]]
    label = "local"
    name = "examples.user_optimizer:LocalSearch"
    settings = { n_init = 4, radius = 0.15 }

or publish it under the entry point group ``bfm_stim.optimizers`` and write ``name = "ep:local"``.
(A plain object with ``ask() -> Stimulus`` and ``tell(stimulus, outcome)`` works too; the harness then
checks its proposals itself and counts unsafe ones as hard violations.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bfm_stim.optim import Optimizer, OptimizerSettings, Outcome
from bfm_stim.space import Stimulus


@dataclass(frozen=True)
class LocalSearchSettings(OptimizerSettings):
    """``n_init`` random trials, then Gaussian steps of ``radius`` (unit cube) around the best."""

    n_init: int = 4
    radius: float = 0.15


class LocalSearch(Optimizer):
    """Random start, then Gaussian perturbations of the best trial without a side effect."""

    Settings = LocalSearchSettings
    name = "local"

    def _setup(self) -> None:
        self._rng = np.random.default_rng(self.settings.seed)

    def _propose(self, n: int) -> tuple[torch.Tensor, list[Any]]:
        st: LocalSearchSettings = self.settings  # type: ignore[assignment]
        best = self.best
        if len(self.observations) < st.n_init or best is None:
            U = self._rng.random((n, self.space.dim))
        else:
            u0 = self.space.to_unit([best[0]])[0].numpy()
            U = np.clip(u0 + self._rng.normal(0.0, st.radius, (n, self.space.dim)), 0.0, 1.0)
        return torch.as_tensor(U, dtype=torch.float64), [None] * n

    def _observe(self, stimuli: list[Stimulus], outcomes: list[Outcome], tags: list[Any]) -> None:
        pass
