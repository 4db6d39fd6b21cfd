"""``gradient``: multi-start Adam through a differentiable cost model (the surrogate).

The search runs in the box coordinates ``Z ∈ [0, 1]^d`` of :class:`~bfm_stim.optim.safe_set.SafeBoxMap`,
so every iterate decodes to a stimulus inside the known safe set (charge density, Shannon and caps):
Adam steps on the continuous coordinates are followed by a projection onto the box (clamping), and
the categorical coordinate (contact / modality) is enumerated over the feasible choices, ``n_starts``
scrambled-Sobol starts each. The cost is ``mean - kappa * std`` of the cost model (a lower confidence
bound; ``kappa = 0`` optimizes the predicted mean).

:func:`surrogate_search` is the search alone. :class:`GradientSearch` (registered ``gradient``) wraps
it as an ask/tell optimizer: :meth:`GradientSearch.rank` returns ranked safe candidates with predicted
cost and uncertainty; ``ask`` proposes the best candidates not yet explored (farther than
``min_distance`` in the unit cube from every told or pending stimulus); ``tell`` corrects the cost
model with the measured outcomes (:class:`~bfm_stim.optim.surrogate_cost.ResidualCorrection`) and
the next ``ask`` searches the corrected model. Deterministic given the seed and the observations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from bfm_stim.exceptions import SafetyLimitError, ValidationError
from bfm_stim.optim.base import Optimizer, OptimizerSettings, propose_threads, stimuli_unit
from bfm_stim.optim.registry import register
from bfm_stim.optim.safe_set import SafeBoxMap
from bfm_stim.optim.surrogate_cost import CostModel, ResidualCorrection, predict_mean
from bfm_stim.optim.trust import check_trust_settings
from bfm_stim.optim.trusted import TrustedModel
from bfm_stim.space import Stimulus, StimulusSpace

__all__ = ["GradientSettings", "GradientSearch", "surrogate_search", "rank_candidates"]


def _check_int(name: str, v: Any, lo: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValidationError(name, v, f"an integer >= {lo}")


def _check_float(name: str, v: Any, lo: float, *, strict: bool = True) -> None:
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and (v > lo if strict else v >= lo)
    if not ok:
        raise ValidationError(name, v, f"a finite number {'>' if strict else '>='} {lo}")


@dataclass(frozen=True)
class GradientSettings(OptimizerSettings):
    """Settings of ``gradient``.

    Args:
        seed: Seed of the Sobol starts and of the fill-in points.
        n_starts: Adam starts per feasible contact / modality.
        steps: Adam steps per search.
        lr: Adam learning rate, in box coordinates.
        kappa: Lower-confidence-bound weight on the predicted std (0: predicted mean).
        min_distance: Unit-cube distance under which a candidate counts as already explored.
        lengthscale: Lengthscale of the outcome correction's kernel, in feature units.
        shrinkage: Pseudo-count of the model in the outcome correction (λ > 0).
        trust: Measure the model against the trials (:mod:`bfm_stim.optim.trust`) and hand the
            proposals to plain constraint-aware BO while the trials contradict it; ``False`` follows
            the model whatever the trials say (the trust is still computed and reported).
        trust_prior: Prior probability that the model ranks this patient's stimuli.
        trust_slope_sd: Spread (log units) of the prior on the slope of measured on predicted cost.
    """

    n_starts: int = 6
    steps: int = 60
    lr: float = 0.05
    kappa: float = 0.0
    min_distance: float = 0.05
    lengthscale: float = 0.1
    shrinkage: float = 0.5
    trust: bool = True
    trust_prior: float = 0.5
    trust_slope_sd: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_trust_settings(self.trust, self.trust_prior, self.trust_slope_sd)
        _check_int("n_starts", self.n_starts, 1)
        _check_int("steps", self.steps, 0)
        _check_float("lr", self.lr, 0.0)
        _check_float("kappa", self.kappa, 0.0, strict=False)
        _check_float("min_distance", self.min_distance, 0.0, strict=False)
        _check_float("lengthscale", self.lengthscale, 0.0)
        _check_float("shrinkage", self.shrinkage, 0.0)


def surrogate_search(cost: CostModel, space: StimulusSpace, *, n_starts: int = 6, steps: int = 60, lr: float = 0.05,
                     kappa: float = 0.0, seed: int = 0, safe_map: SafeBoxMap | None = None) -> torch.Tensor:
    """Multi-start projected Adam on ``cost`` over the safe set.

    Args:
        cost: Differentiable cost model (``predict(features) -> (mean, std)``).
        space: The stimulus space.
        n_starts: Starts per feasible contact / modality.
        steps: Adam steps.
        lr: Learning rate in box coordinates.
        kappa: Weight of ``-std`` in the minimized cost.
        seed: Seed of the scrambled Sobol starts.
        safe_map: The space's safe-set map (built when ``None``).

    Returns:
        Final iterates as unit-cube points of the safe set, ``(n_starts * n_feasible, dim)`` float64.
    """
    smap = SafeBoxMap(space) if safe_map is None else safe_map
    d = space.dim
    if d == 0:
        return torch.zeros(1, 0, dtype=torch.float64)
    c = smap.cat_dim
    Z0 = torch.quasirandom.SobolEngine(d, scramble=True, seed=seed).draw(n_starts, dtype=torch.float64)
    zs = smap.choice_z() if c is not None else [None]
    blocks = []
    for z in zs:
        B = Z0.clone()
        if c is not None:
            B[:, c] = z
        blocks.append(B)
    Z = torch.cat(blocks).requires_grad_(True)
    fixed = Z.detach()[:, c].clone() if c is not None else None
    opt = torch.optim.Adam([Z], lr=lr)
    for _ in range(steps):
        F = space.features_from_unit(smap(Z))
        if kappa:
            mean, std = cost.predict(F)
            loss = (mean - kappa * std).sum()
        else:  # the mean alone: no predictive draws
            loss = predict_mean(cost, F).sum()
        (g,) = torch.autograd.grad(loss, Z, allow_unused=True)
        if g is None:  # the cost does not depend on the stimulus
            break
        Z.grad = torch.nan_to_num(g)
        opt.step()
        with torch.no_grad():
            Z.clamp_(0.0, 1.0)
            if c is not None:
                Z[:, c] = fixed
    with torch.no_grad():
        return smap(Z.detach())


def _safe(space: StimulusSpace, s: Stimulus) -> Stimulus:
    """Snap and project onto the safe set (zero amplitude / level when nothing else is safe)."""
    try:
        return space.project_safe(space.snap(s))
    except (SafetyLimitError, ValidationError):  # nothing safe at these settings: deliver nothing
        return space.check(s.with_(amplitude_ma=0.0) if s.kind == "electrical" else s.with_(level=0.0))


def rank_candidates(cost: CostModel, space: StimulusSpace, U: torch.Tensor, n: int, *,
                    min_distance: float = 0.05, exclude: torch.Tensor | None = None,
                    ) -> list[tuple[Stimulus, float, float]]:
    """Decode unit-cube points to safe stimuli, score them with ``cost`` and rank them.

    Args:
        cost: The cost model.
        space: The stimulus space.
        U: (m, dim) unit-cube points.
        n: Number of candidates to return (at most).
        min_distance: Candidates closer than this (unit cube, Euclidean) to a better one, or to a
            row of ``exclude``, are dropped.
        exclude: (k, dim) unit-cube points already explored.

    Returns:
        Up to ``n`` ``(stimulus, predicted cost, predicted std)``, best first; every stimulus safe.
    """
    stims = [_safe(space, s) for s in space.from_unit(U)] if len(U) else []
    if not stims:
        return []
    with torch.no_grad():
        mean, std = cost.predict(space.to_features(stims, dtype=torch.float64))
    Uc = stimuli_unit(space, stims)
    taken = [] if exclude is None else [e for e in exclude]
    out: list[tuple[Stimulus, float, float]] = []
    for i in torch.argsort(mean, stable=True).tolist():
        if any(float((Uc[i] - t).norm()) < max(min_distance, 1e-9) for t in taken):
            continue
        out.append((stims[i], float(mean[i]), float(std[i])))
        taken.append(Uc[i])
        if len(out) == n:
            break
    return out


@register("gradient")
class GradientSearch(TrustedModel, Optimizer):
    """Gradient search through the surrogate, corrected online by the measured outcomes.

    Args:
        space: The stimulus space.
        settings: :class:`GradientSettings`.
        initial_design: Stimuli proposed first.
        cost_model: Differentiable cost model (e.g. :class:`~bfm_stim.optim.surrogate_cost.SurrogateCost`);
            default a flat prior (the search then follows the outcome correction alone; a warning
            says so and ``trust`` is ``None``). Not serialized: pass it again when loading.

    While the trials contradict the model (:attr:`model_leads` false, see :mod:`bfm_stim.optim.trust`)
    the proposals and the recommendation come from a fallback constraint-aware BO on the same trials.
    """

    Settings = GradientSettings
    settings: GradientSettings

    def __init__(self, space: StimulusSpace, settings: GradientSettings | None = None, *,
                 initial_design: Sequence[Stimulus] | None = None, cost_model: CostModel | None = None) -> None:
        self._init_model(cost_model)
        super().__init__(space, settings, initial_design=initial_design)

    def _setup(self) -> None:
        self._n_fill = 0
        self._cache: tuple[int, list[tuple[Stimulus, float, float]]] | None = None
        self._reset_trust()

    def corrected(self) -> ResidualCorrection:
        """The cost model corrected by every told outcome."""
        corr = ResidualCorrection(self.cost_model, lengthscale=self.settings.lengthscale,
                                  shrinkage=self.settings.shrinkage)
        if self._obs:
            stims = [s for s, _, _ in self._obs]
            corr.fit(self.space.to_features(stims, dtype=torch.float64),
                     torch.tensor([o.cost for _, o, _ in self._obs], dtype=torch.float64))
        return corr

    def _search(self, corrected: ResidualCorrection | None = None) -> torch.Tensor:
        st = self.settings
        seed = (st.seed * 1_000_003 + len(self._obs)) % (2**31 - 1)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return surrogate_search(self.corrected() if corrected is None else corrected, self.space,
                                    n_starts=st.n_starts, steps=st.steps, lr=st.lr, kappa=st.kappa, seed=seed,
                                    safe_map=self.safe_map)

    def rank(self, n: int = 10, *, exclude_explored: bool = False) -> list[tuple[Stimulus, float, float]]:
        """The ``n`` best distinct safe stimuli under the (corrected) cost model.

        Args:
            n: Number of candidates.
            exclude_explored: Leave out stimuli near told or pending ones.

        Returns:
            ``[(stimulus, predicted cost, predicted std), ...]``, lowest predicted cost first.
        """
        _check_int("n", n, 1)
        with propose_threads():
            corr = self.corrected()
            U = self._search(corr)
            exclude = None
            if exclude_explored and (self._obs or self._pending):
                exclude = stimuli_unit(self.space, [s for s, _, _ in self._obs] + [s for s, _ in self._pending])
            return rank_candidates(corr, self.space, U, n, min_distance=self.settings.min_distance, exclude=exclude)

    def _propose(self, n: int) -> tuple[torch.Tensor, list[Any]]:
        slots = self._contrast_slots(n)
        if any(slots):  # contrast trials (see bfm_stim.optim.trusted): Sobol points among the model's picks
            start = len(self._obs) + len(self._pending)
            rows, tags = [], []
            for k, contrast in enumerate(slots):
                if contrast:
                    u, tag = self._contrast_point(start + k)
                    self._pending.append((self.space.from_unit(u.reshape(1, -1))[0], tag))
                    rows.append(u.reshape(1, -1))
                    tags.append(tag)
                else:
                    U, t = self._propose_one_kind(1)
                    self._pending.append((self.space.from_unit(U)[0], t[0]))
                    rows.append(U)
                    tags.append(t[0])
            del self._pending[len(self._pending) - n:]  # held only so later picks avoid earlier ones
            return torch.cat(rows), tags
        return self._propose_one_kind(n)

    def _propose_one_kind(self, n: int) -> tuple[torch.Tensor, list[Any]]:
        if self.has_model and not self.model_leads:
            return self._bo_propose(n)
        picks = self.rank(n, exclude_explored=True)
        rows = [stimuli_unit(self.space, [s]) for s, _, _ in picks]
        tags: list[Any] = [{"pred": m, "pred_std": sd, "led_by": "model", **self._trust_tag()} for _, m, sd in picks]
        if len(rows) < n:  # everything predicted good is explored: fill the safe set quasi-randomly
            m = n - len(rows)
            eng = torch.quasirandom.SobolEngine(max(self.space.dim, 1), scramble=True, seed=self.settings.seed + 1)
            eng.fast_forward(self._n_fill)
            self._n_fill += m
            rows.append(self.safe_map(eng.draw(m, dtype=torch.float64)[:, : self.space.dim]))
            tags += [{"fill": True, "led_by": "model", **self._trust_tag()}] * m
        return torch.cat(rows), tags

    def recommend(self) -> Stimulus | None:
        """The measured stimulus without a side effect of lowest corrected predicted cost (:meth:`corrected`);
        the fallback BO's recommendation while the trials contradict the model."""
        if self.has_model and not self.model_leads:
            return self._bo().recommend()
        corr = self.corrected()
        return self._recommend_lowest(lambda st: corr.predict_mean(self.space.to_features(st, dtype=torch.float64)))

    def _impl_state(self) -> dict[str, Any]:
        return {"n_fill": self._n_fill, **self._trust_impl_state()}

    def _load_impl_state(self, state: Mapping[str, Any]) -> None:
        self._n_fill = int(state["n_fill"])
        self._load_trust_impl_state(state)
