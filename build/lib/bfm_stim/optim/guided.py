"""``guided``: surrogate-guided Bayesian optimization.

``bo`` (:class:`~bfm_stim.optim.bo.BayesOpt`) with the foundation model in two places:

* **Prior mean.** The surrogate's predicted cost is the GP's prior mean (BO's ``prior_mean=`` hook):
  the GP models only the residual ``measured - predicted``, so where the surrogate is right the
  posterior is right from the first trial, and where it is wrong the residual GP corrects it. The
  prior enters scaled by ``b``, the slope of the measured costs on the predictions (shrunk toward 1,
  ``prior_trust``): the surrogate's ranking is what it is trusted for, not its units.
* **Initial design.** The first ``n_design`` trials are the surrogate's best distinct candidates,
  found by gradient search through it (:func:`~bfm_stim.optim.gradient.surrogate_search`,
  :func:`~bfm_stim.optim.gradient.rank_candidates`), instead of a space-filling Sobol design.

If the surrogate is good, the first proposal is already near the optimum: this is the optimizer
meant to need the fewest real trials. Without a cost model it is ``bo`` with a (flat-prior)
gradient-search design. Every proposal still leaves through the base class's safety gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from bfm_stim.optim.base import propose_threads
from bfm_stim.optim.bo import BayesOpt, BOSettings
from bfm_stim.optim.gradient import _check_float, _check_int, rank_candidates, surrogate_search
from bfm_stim.optim.registry import register
from bfm_stim.optim.safe_set import SafeBoxMap
from bfm_stim.optim.surrogate_cost import ConstantCost, CostModel, unit_mean
from bfm_stim.space import Stimulus, StimulusSpace

__all__ = ["GuidedSettings", "GuidedBO"]


@dataclass(frozen=True)
class GuidedSettings(BOSettings):
    """Settings of ``guided``: those of ``bo`` plus the surrogate design.

    Args:
        n_init: Trials before the GP takes over (the surrogate design counts toward it).
        n_design: Surrogate candidates proposed first (>= 1).
        n_starts: Gradient-search starts per contact for the design.
        steps: Adam steps of the design search.
        lr: Adam learning rate (box coordinates).
        min_distance: Minimum unit-cube distance between design candidates.
        num_restarts, raw_samples, mc_samples, maxiter: leaner than ``bo``'s defaults (the prior
            mean already points the acquisition at the right region).
        Other fields: see :class:`~bfm_stim.optim.bo.BOSettings`.
    """

    n_init: int = 3
    num_restarts: int = 2
    raw_samples: int = 64
    mc_samples: int = 64
    maxiter: int = 50
    n_design: int = 3
    n_starts: int = 6
    steps: int = 60
    lr: float = 0.05
    min_distance: float = 0.15

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_int("n_design", self.n_design, 1)
        _check_int("n_starts", self.n_starts, 1)
        _check_int("steps", self.steps, 0)
        _check_float("lr", self.lr, 0.0)
        _check_float("min_distance", self.min_distance, 0.0, strict=False)


@register("guided")
class GuidedBO(BayesOpt):
    """BO with the surrogate as GP prior mean and its best candidates as the initial design.

    Args:
        space: The stimulus space.
        settings: :class:`GuidedSettings`.
        initial_design: Overrides the surrogate design (stimuli proposed first).
        cost_model: Differentiable cost model (e.g. :class:`~bfm_stim.optim.surrogate_cost.SurrogateCost`);
            default a flat prior. Not serialized: pass it again when loading.
    """

    Settings = GuidedSettings
    settings: GuidedSettings

    def __init__(self, space: StimulusSpace, settings: GuidedSettings | None = None, *,
                 initial_design: Sequence[Stimulus] | None = None, cost_model: CostModel | None = None) -> None:
        self.cost_model: CostModel = ConstantCost() if cost_model is None else cost_model
        st = self.Settings() if settings is None else settings
        self.design_ranked: list[tuple[Stimulus, float, float]] = []
        if initial_design is None and isinstance(st, GuidedSettings) and space.dim > 0:
            initial_design = [s for s, _, _ in self._design_from_surrogate(space, st)]
        f = unit_mean(self.cost_model, space)  # the predicted mean only: no predictive draws

        def prior_mean(X: torch.Tensor) -> torch.Tensor:
            if X.requires_grad:
                return f(X)
            with torch.no_grad():  # training targets, baselines, raw samples: no graph
                return f(X)

        super().__init__(space, settings, initial_design=initial_design, prior_mean=prior_mean)

    def _design_from_surrogate(self, space: StimulusSpace, st: GuidedSettings) -> list[tuple[Stimulus, float, float]]:
        with torch.random.fork_rng(), propose_threads():
            torch.manual_seed(st.seed)
            U = surrogate_search(self.cost_model, space, n_starts=st.n_starts, steps=st.steps, lr=st.lr,
                                 seed=st.seed, safe_map=SafeBoxMap(space))
            self.design_ranked = rank_candidates(self.cost_model, space, U, st.n_design, min_distance=st.min_distance)
        return self.design_ranked
