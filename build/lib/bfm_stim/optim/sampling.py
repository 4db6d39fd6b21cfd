"""Model-free baselines: uniform random search and scrambled Sobol sequences.

``random`` draws uniformly from the unit cube (categorical parameters uniformly over their
choices) and keeps the draws that are safe, so its proposals are uniform over the known safe set
(rejection sampling); after ``max_rejections`` failed rounds it falls back to the safe-set map.
``sobol`` draws a scrambled Sobol sequence (``torch.quasirandom.SobolEngine``) in the box
coordinates of :class:`~bfm_stim.optim.safe_set.SafeBoxMap`, so the design fills the safe set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from bfm_stim.exceptions import ValidationError
from bfm_stim.optim.base import Optimizer, OptimizerSettings
from bfm_stim.optim.registry import register

__all__ = ["RandomSettings", "RandomSearch", "SobolSettings", "SobolSearch"]


@dataclass(frozen=True)
class RandomSettings(OptimizerSettings):
    """Settings of ``random``.

    Args:
        seed: Seed of the numpy generator (PCG64).
        max_rejections: Rounds of rejection sampling per point before falling back to the map.
    """

    max_rejections: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.max_rejections, bool) or not isinstance(self.max_rejections, int) or self.max_rejections < 1:
            raise ValidationError("max_rejections", self.max_rejections, "an integer >= 1")


@register("random")
class RandomSearch(Optimizer):
    """Uniform random search over the safe set (rejection sampling)."""

    Settings = RandomSettings
    settings: RandomSettings

    def _setup(self) -> None:
        self._rng = np.random.default_rng(self.settings.seed)

    def _uniform(self, n: int) -> torch.Tensor:
        U = torch.from_numpy(self._rng.random((n, self.space.dim)))
        c = self.safe_map.cat_dim
        if c is not None:
            k = self.safe_map.n_choices
            idx = np.minimum(np.floor(U[:, c].numpy() * k), k - 1)
            U[:, c] = torch.from_numpy(idx / max(k - 1, 1))
        return U

    def _propose(self, n: int) -> tuple[torch.Tensor, list[Any]]:
        rows = []
        for _ in range(n):
            for _ in range(self.settings.max_rejections):
                u = self._uniform(1)
                if self.space.is_safe(self.space.snap(self.space.from_unit(u)[0])):
                    break
            else:
                u = self.safe_map(torch.from_numpy(self._rng.random((1, self.space.dim))))
            rows.append(u)
        return torch.cat(rows) if rows else torch.zeros(0, self.space.dim, dtype=torch.float64), [None] * n

    def _impl_state(self) -> dict[str, Any]:
        return {"rng": self._rng.bit_generator.state}

    def _load_impl_state(self, state: Mapping[str, Any]) -> None:
        self._rng.bit_generator.state = dict(state["rng"])


@dataclass(frozen=True)
class SobolSettings(OptimizerSettings):
    """Settings of ``sobol``.

    Args:
        seed: Scrambling seed of the Sobol engine.
        scramble: Owen scrambling (recommended; unscrambled starts at the cube's corner).
    """

    scramble: bool = True


@register("sobol")
class SobolSearch(Optimizer):
    """Scrambled Sobol design through the safe-set map."""

    Settings = SobolSettings
    settings: SobolSettings

    def _setup(self) -> None:
        self._drawn = 0
        self._engine = None

    def _draw(self, n: int) -> torch.Tensor:
        d = max(self.space.dim, 1)
        if self._engine is None:
            self._engine = torch.quasirandom.SobolEngine(d, scramble=self.settings.scramble, seed=self.settings.seed)
            if self._drawn:
                self._engine.fast_forward(self._drawn)
        Z = self._engine.draw(n, dtype=torch.float64)[:, : self.space.dim]
        self._drawn += n
        return Z

    def _propose(self, n: int) -> tuple[torch.Tensor, list[Any]]:
        return self.safe_map(self._draw(n)), [None] * n

    def _impl_state(self) -> dict[str, Any]:
        return {"drawn": self._drawn}

    def _load_impl_state(self, state: Mapping[str, Any]) -> None:
        self._drawn = int(state["drawn"])
        self._engine = None
