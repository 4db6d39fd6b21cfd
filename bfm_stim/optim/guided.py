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
gradient-search design (and says so: a warning, ``trust`` None). Every proposal still leaves
through the base class's safety gate.

**Trust** (``trust = True``, :mod:`bfm_stim.optim.trust`): the model is measured against every trial.
The design interleaves the model's picks with space-filling (Sobol) points, so that the first
trials can contradict the model (the first trial is the model's best pick; the second a Sobol
point; the third the model's next pick while it still leads). The prior mean enters scaled by the
model's weight ``min(1, trust / prior)``: a model the trials confirm keeps its full weight, one they
contradict fades to zero, and ``guided`` is then plain constraint-aware ``bo`` (its space-filling
design extended to ``bo``'s 8 trials, from the same Sobol sequence).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from bfm_stim.optim.base import propose_threads
from bfm_stim.optim.bo import BayesOpt, BOSettings
from bfm_stim.optim.gradient import _check_float, _check_int, rank_candidates, surrogate_search
from bfm_stim.optim.registry import register
from bfm_stim.optim.safe_set import SafeBoxMap
from bfm_stim.optim.base import stimuli_unit
from bfm_stim.optim.bo import BOSettings as _BOSettings
from bfm_stim.optim.surrogate_cost import CostModel, unit_mean
from bfm_stim.optim.trust import check_trust_settings
from bfm_stim.optim.trusted import TrustedModel
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
        trust, trust_prior, trust_slope_sd: The online trust in the model (see the module docs and
            :class:`~bfm_stim.optim.gradient.GradientSettings`); ``trust = False`` is the pre-trust
            ``guided``: the model's three best picks first, the prior mean at full weight.
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
    trust: bool = True
    trust_prior: float = 0.5
    trust_slope_sd: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_trust_settings(self.trust, self.trust_prior, self.trust_slope_sd)
        _check_int("n_design", self.n_design, 1)
        _check_int("n_starts", self.n_starts, 1)
        _check_int("steps", self.steps, 0)
        _check_float("lr", self.lr, 0.0)
        _check_float("min_distance", self.min_distance, 0.0, strict=False)


@register("guided")
class GuidedBO(TrustedModel, BayesOpt):
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
        self._init_model(cost_model)
        st = self.Settings() if settings is None else settings
        self.design_ranked: list[tuple[Stimulus, float, float]] = []
        self._own_design = initial_design is None
        if initial_design is None and isinstance(st, GuidedSettings) and space.dim > 0:
            initial_design = [s for s, _, _ in self._design_from_surrogate(space, st)]
            if self._interleaved(st):  # the model's picks (best first) interleave with Sobol points in _propose
                initial_design = None
        f = unit_mean(self.cost_model, space)  # the predicted mean only: no predictive draws

        def prior_mean(X: torch.Tensor) -> torch.Tensor:
            if X.requires_grad:
                return f(X)
            with torch.no_grad():  # training targets, baselines, raw samples: no graph
                return f(X)

        super().__init__(space, settings, initial_design=initial_design, prior_mean=prior_mean)

    def _interleaved(self, st: GuidedSettings | None = None) -> bool:
        st = self.settings if st is None else st
        return bool(st.trust and self.has_model and getattr(self, "_own_design", True))

    def _setup(self) -> None:
        super()._setup()
        self._reset_trust()

    def _n_init(self) -> int:
        """``n_init`` while the model leads; ``bo``'s space-filling design (8) once the trials contradict it."""
        if self._interleaved() and not self.model_leads:
            return max(self.settings.n_init, _BOSettings.n_init)
        return self.settings.n_init

    def _prior_weight(self) -> float:
        return self.model_weight if self.has_model else 1.0

    def _propose(self, n: int) -> tuple[torch.Tensor, list[Any]]:
        if not self._interleaved() or self.space.dim == 0:
            U, tags = super()._propose(n)
            return U, [{**t, **self._trust_tag()} for t in tags]
        parts: list[torch.Tensor] = []
        tags: list[Any] = []
        n_init = self._n_init()
        for _ in range(n):
            k = len(self._obs) + len(self._pending) + len(parts)  # this proposal's slot
            if k >= n_init and len(self._obs) >= 2:
                break
            cand = self._next_model_pick(parts) if (k % 2 == 0 and self.model_leads) else None
            if cand is not None:
                parts.append(stimuli_unit(self.space, [cand[0]]))
                tags.append({"design": "model", "pred": cand[1], "pred_std": cand[2], "led_by": "model",
                             **self._trust_tag()})
            else:
                parts.append(self._sobol(1))
                tags.append({"sobol": True, "led_by": "design" if self.model_leads else "bo", **self._trust_tag()})
        m = n - len(parts)
        if m:
            pending = [self.space.to_unit(s).clamp(0, 1) for s, _ in self._pending]
            X_pending = torch.cat(pending + parts) if pending or parts else None
            parts.append(self._acquire(m, X_pending))
            tags += [{"acq": self._n_acq, "led_by": "model" if self.model_weight > 0 else "bo",
                      **self._trust_tag()}] * m
        return torch.cat(parts), tags

    def _next_model_pick(self, batch: list[torch.Tensor]) -> tuple[Stimulus, float, float] | None:
        """The model's best design candidate not yet near a told, pending or batched stimulus."""
        done = [s for s, _, _ in self._obs] + [s for s, _ in self._pending]
        taken = ([stimuli_unit(self.space, done)] if done else []) + batch
        T = torch.cat(taken) if taken else torch.zeros(0, self.space.dim, dtype=torch.float64)
        for c in self.design_ranked:
            u = stimuli_unit(self.space, [c[0]])
            if len(T) == 0 or float((T - u).norm(dim=-1).min()) >= max(self.settings.min_distance, 1e-9):
                return c
        return None

    def _impl_state(self) -> dict[str, Any]:
        return {**super()._impl_state(), **self._trust_impl_state()}

    def _load_impl_state(self, state: Mapping[str, Any]) -> None:
        super()._load_impl_state(state)
        self._load_trust_impl_state(state)

    def _design_from_surrogate(self, space: StimulusSpace, st: GuidedSettings) -> list[tuple[Stimulus, float, float]]:
        with torch.random.fork_rng(), propose_threads():
            torch.manual_seed(st.seed)
            U = surrogate_search(self.cost_model, space, n_starts=st.n_starts, steps=st.steps, lr=st.lr,
                                 seed=st.seed, safe_map=SafeBoxMap(space))
            self.design_ranked = rank_candidates(self.cost_model, space, U, st.n_design, min_distance=st.min_distance)
        return self.design_ranked
