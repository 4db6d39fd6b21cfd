"""``egreedy``: ε-greedy search on the surrogate with online correction of its predictions.

A baseline from closed-loop stimulation-pattern search: keep a model of the cost of every candidate
pattern, deliver the pattern the model thinks best with probability ``1 - ε`` and a random one with
probability ``ε``, and correct the model with each measured response. Here the model is the
surrogate's prediction (any cost model, see :mod:`bfm_stim.optim.surrogate_cost`) plus an additive,
kernel-smoothed residual correction (a global bias and per-region residuals in feature space; the
contact position is part of the features, so the correction is effectively per contact).

The candidates are a fixed pool of ``n_pool`` scrambled-Sobol points of the known safe set
(:class:`~bfm_stim.optim.safe_set.SafeBoxMap`); the greedy pick is the best pool point farther than
``min_distance`` from every told or pending stimulus; the random pick is uniform in the safe-set box.
``epsilon`` decays as ``epsilon * decay ** n_told``. Deterministic given the seed (the generator
state is part of the saved state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from bfm_stim.exceptions import ValidationError
from bfm_stim.optim.base import Optimizer, OptimizerSettings, stimuli_unit
from bfm_stim.optim.gradient import _check_float, _check_int, _safe
from bfm_stim.optim.registry import register
from bfm_stim.optim.surrogate_cost import CostModel, ResidualCorrection
from bfm_stim.optim.trust import check_trust_settings
from bfm_stim.optim.trusted import TrustedModel
from bfm_stim.space import Stimulus, StimulusSpace

__all__ = ["EGreedySettings", "EpsilonGreedy"]


@dataclass(frozen=True)
class EGreedySettings(OptimizerSettings):
    """Settings of ``egreedy``.

    Args:
        seed: Seed of the candidate pool and of the exploration draws.
        epsilon: Probability of a random (exploring) proposal, in [0, 1].
        decay: ``epsilon`` is multiplied by ``decay`` per told outcome, in (0, 1].
        n_pool: Candidate stimuli scored by the model.
        min_distance: Unit-cube distance under which a candidate counts as already explored.
        lengthscale: Lengthscale of the correction's kernel, in feature units.
        shrinkage: Pseudo-count of the model in the correction (λ > 0).
        trust, trust_prior, trust_slope_sd: The online trust in the model, as for ``gradient``
            (:class:`~bfm_stim.optim.gradient.GradientSettings`).
    """

    epsilon: float = 0.1
    decay: float = 1.0
    n_pool: int = 512
    min_distance: float = 0.05
    lengthscale: float = 0.1
    shrinkage: float = 0.5
    trust: bool = True
    trust_prior: float = 0.5
    trust_slope_sd: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_trust_settings(self.trust, self.trust_prior, self.trust_slope_sd)
        if not (isinstance(self.epsilon, (int, float)) and not isinstance(self.epsilon, bool)
                and 0.0 <= self.epsilon <= 1.0):
            raise ValidationError("epsilon", self.epsilon, "a probability in [0, 1]")
        if not (isinstance(self.decay, (int, float)) and not isinstance(self.decay, bool) and 0.0 < self.decay <= 1.0):
            raise ValidationError("decay", self.decay, "a factor in (0, 1]")
        _check_int("n_pool", self.n_pool, 1)
        _check_float("min_distance", self.min_distance, 0.0, strict=False)
        _check_float("lengthscale", self.lengthscale, 0.0)
        _check_float("shrinkage", self.shrinkage, 0.0)


@register("egreedy")
class EpsilonGreedy(TrustedModel, Optimizer):
    """ε-greedy over a pool of safe candidates scored by the corrected surrogate.

    Args:
        space: The stimulus space.
        settings: :class:`EGreedySettings`.
        initial_design: Stimuli proposed first.
        cost_model: Cost model scoring the candidates (default a flat prior: the search then follows
            the correction alone; a warning says so and ``trust`` is ``None``). Not serialized: pass
            it again when loading.

    While the trials contradict the model (see :mod:`bfm_stim.optim.trust`) the greedy pick comes from
    a fallback constraint-aware BO on the same trials (the ε exploration stays).
    """

    Settings = EGreedySettings
    settings: EGreedySettings

    def __init__(self, space: StimulusSpace, settings: EGreedySettings | None = None, *,
                 initial_design: Sequence[Stimulus] | None = None, cost_model: CostModel | None = None) -> None:
        self._init_model(cost_model)
        super().__init__(space, settings, initial_design=initial_design)

    def _setup(self) -> None:
        self._reset_trust()
        self._rng = np.random.default_rng(self.settings.seed)
        self._pool: tuple[list[Stimulus], torch.Tensor, torch.Tensor] | None = None
        self._pool_base: tuple[Any, torch.Tensor, torch.Tensor] | None = None

    def pool(self) -> tuple[list[Stimulus], torch.Tensor, torch.Tensor]:
        """The candidate pool: safe stimuli, their unit-cube points ``(n_pool, dim)`` and features."""
        if self._pool is None:
            d = max(self.space.dim, 1)
            Z = torch.quasirandom.SobolEngine(d, scramble=True, seed=self.settings.seed).draw(
                self.settings.n_pool, dtype=torch.float64)[:, : self.space.dim]
            stims = [_safe(self.space, s) for s in self.space.from_unit(self.safe_map(Z))]
            self._pool = (stims, stimuli_unit(self.space, stims), self.space.to_features(stims, dtype=torch.float64))
        return self._pool

    def corrected(self) -> ResidualCorrection:
        """The cost model corrected by every told outcome."""
        corr = ResidualCorrection(self.cost_model, lengthscale=self.settings.lengthscale,
                                  shrinkage=self.settings.shrinkage)
        if self._obs:
            corr.fit(self.space.to_features([s for s, _, _ in self._obs], dtype=torch.float64),
                     torch.tensor([o.cost for _, o, _ in self._obs], dtype=torch.float64))
        return corr

    @property
    def epsilon(self) -> float:
        """Current exploration probability."""
        return self.settings.epsilon * self.settings.decay ** len(self._obs)

    def _propose(self, n: int) -> tuple[torch.Tensor, list[Any]]:
        stims, U, F = self.pool()
        with torch.no_grad():
            if self._pool_base is None or self._pool_base[0] is not self.cost_model:
                # the pool and the model are fixed: score the pool once, correct it every ask
                self._pool_base = (self.cost_model, *self.cost_model.predict(F))
            mean, std = self.corrected().correct(F, self._pool_base[1], self._pool_base[2])
        order = torch.argsort(mean, stable=True).tolist()
        taken = [stimuli_unit(self.space, [s])[0] for s in [s for s, _, _ in self._obs] + [s for s, _ in self._pending]]
        rows, tags = [], []
        bo_led = self.has_model and not self.model_leads
        slots, start = self._contrast_slots(n), len(self._obs) + len(self._pending)
        for k in range(n):
            explore = bool(self._rng.random() < self.epsilon)
            z = self._rng.random(max(self.space.dim, 1))[: self.space.dim]  # drawn every round: fixed RNG use
            if slots[k]:  # a contrast trial (see bfm_stim.optim.trusted)
                u, tag = self._contrast_point(start + k)
                rows.append(u)
                tags.append({**tag, "explore": False})
                taken.append(u)
                continue
            pick = None
            if bo_led and not explore:  # the trials contradict the model: BO picks instead of the model
                U_bo, t_bo = self._bo_propose(1)
                rows.append(U_bo[0])
                tags.append({**t_bo[0], "explore": False})
                taken.append(U_bo[0])
                continue
            if not explore:
                for i in order:
                    if all(float((U[i] - t).norm()) >= max(self.settings.min_distance, 1e-9) for t in taken):
                        pick = i
                        break
            if pick is None:
                u = self.safe_map(torch.from_numpy(z).reshape(1, -1))[0]
                tags.append({"explore": True, **self._trust_tag()})
            else:
                u = U[pick]
                tags.append({"explore": False, "pred": float(mean[pick]), "pred_std": float(std[pick]),
                             "led_by": "model", **self._trust_tag()})
            rows.append(u)
            taken.append(u)
        return torch.stack(rows), tags

    def recommend(self) -> Stimulus | None:
        """The measured stimulus without a side effect of lowest corrected predicted cost (:meth:`corrected`);
        the fallback BO's recommendation while the trials contradict the model."""
        if self.has_model and not self.model_leads:
            return self._bo().recommend()
        corr = self.corrected()
        return self._recommend_lowest(lambda st: corr.predict_mean(self.space.to_features(st, dtype=torch.float64)))

    def _impl_state(self) -> dict[str, Any]:
        return {"rng": self._rng.bit_generator.state, **self._trust_impl_state()}

    def _load_impl_state(self, state: Mapping[str, Any]) -> None:
        self._rng.bit_generator.state = dict(state["rng"])
        self._load_trust_impl_state(state)
