"""``bo``: Bayesian optimization with BoTorch, safe by construction and aware of side effects.

One iteration (an ``ask`` once ``n_init`` observations exist):

1. Cost GP (:mod:`bfm_stim.optim.gp`) on the told stimuli in unit-cube coordinates, outcome
   ``-cost`` (BoTorch maximizes), refitted only when observations changed, warm-started from the
   last hyperparameters. With a ``prior_mean`` hook the GP models the residual
   ``prior_mean(x) - cost`` and the acquisition adds ``-prior_mean(x)`` back (surrogate-guided BO).
2. With ``constraint_aware=True`` and at least one nonzero severity observed (a side effect or a
   sub-threshold reading: the side effect's onset is informative before it crosses
   ``side_effect_threshold``, as for Optuna's GP sampler, which models the constraint value from its
   first model-based trial), a second GP on the side-effect severity (trials where it was assessed;
   in threshold units, zero prior mean: unexplored stimuli are presumed free of side effects, with
   the prior's uncertainty) makes the acquisition feasibility-weighted: qLogNEI with
   ``constraints=[severity / threshold - 1]``. While every assessed severity is 0 there is nothing
   to model (a family without side effects runs as plain BO).
   With a prior mean the cost GP's residual uses ``b · prior_mean`` (``prior_trust``).
3. qLogNoisyExpectedImprovement, optimized over the *known safe set*: the acquisition is composed
   with :class:`~bfm_stim.optim.safe_set.SafeBoxMap` and optimized over its box, so candidates are
   inside the charge-density / Shannon / cap limits before any projection. The categorical contact
   is handled as categorical: the restarts of ``optimize_acqf_mixed`` over the feasible contacts
   (same initial conditions), optimized in one batched L-BFGS-B run rather than one run per
   contact (:func:`_optimize_over_choices`). Batches (``q > 1``) are built greedily with earlier
   picks and pending proposals as ``X_pending``.

Determinism: each acquisition runs under ``torch.random.fork_rng`` seeded from
``(seed, number of acquisitions so far)``, with a seeded QMC sampler, so a restored optimizer
(same observations, same stored hyperparameters) proposes exactly what the original would have.
The initial design is a scrambled Sobol sequence in the safe-set box.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from botorch.acquisition import AcquisitionFunction
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.acquisition.objective import GenericMCObjective
from botorch.exceptions.warnings import OptimizationWarning
from botorch.models import ModelListGP
from botorch.optim import optimize_acqf
from botorch.sampling import SobolQMCNormalSampler

from bfm_stim.exceptions import ValidationError
from bfm_stim.optim import gp as _gp
from bfm_stim.optim.base import Optimizer, OptimizerSettings, stimuli_unit
from bfm_stim.optim.registry import register
from bfm_stim.space import Stimulus, StimulusSpace

__all__ = ["BOSettings", "BayesOpt"]

PriorMean = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class BOSettings(OptimizerSettings):
    """Settings of ``bo``.

    Args:
        seed: Seed of the Sobol design, the QMC sampler and the acquisition restarts.
        n_init: Observations from the Sobol design before the GP takes over (>= 2).
        num_restarts: Multistart L-BFGS-B restarts per contact in the acquisition optimization.
        raw_samples: Raw (Sobol) samples per contact to pick the restarts from.
        mc_samples: QMC samples of qLogNEI.
        maxiter: L-BFGS-B iterations per restart.
        constraint_aware: Model the side-effect severity (from the first nonzero reading, below the
            threshold included) and weight the acquisition by feasibility.
        side_effect_threshold: A trial is infeasible when its severity >= this (``True`` = 1.0); the
            side-effect GP models severity in these units.
        warm_start: Start each GP fit from the previous hyperparameters.
        kernel: ``"product"`` (Matérn × categorical kernel, SingleTaskGP) or ``"mixed"``
            (MixedSingleTaskGP) for spaces with a categorical contact/modality.
        prior_trust: With a prior mean (surrogate-guided BO): the prior enters as ``b · prior``
            with ``b`` the slope of the measured costs on the prior's predictions, shrunk toward 1
            as by this many pseudo-observations spread like the prior over the space
            (``b = (S_py + λ) / (S_pp + λ)``, ``λ = prior_trust · var(prior over 256 Sobol points)``),
            clipped to [0, 10]. A surrogate that ranks well on the wrong scale is rescaled; one that
            ranks against the data fades out (b → 0, plain BO); trials the prior cannot tell apart
            leave b at 1. ``inf`` keeps b = 1.
        safe_probability: Safe-set rule on top of the feasibility-weighted acquisition: once the
            side-effect GP is on (a nonzero severity has been seen), candidates whose posterior
            probability of staying below the threshold is under this value are penalised by a steep
            log barrier (50 per unit of log probability below it; a penalty, not a hard exclusion;
            0 disables the rule). With
            the default product kernel the side-effect GP's prior sd is 1 threshold unit, so far
            from any observation P = Φ(1) ≈ 0.84: values at or above that penalise all
            unexplored space and are refused.
    """

    n_init: int = 8
    num_restarts: int = 4
    raw_samples: int = 128
    mc_samples: int = 128
    maxiter: int = 100
    constraint_aware: bool = True
    warm_start: bool = True
    kernel: str = "product"
    prior_trust: float = 3.0
    safe_probability: float = 0.8

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, lo in (("n_init", 2), ("num_restarts", 1), ("raw_samples", 1), ("mc_samples", 1), ("maxiter", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValidationError(name, v, f"an integer >= {lo}")
        for name in ("constraint_aware", "warm_start"):
            if not isinstance(getattr(self, name), bool):
                raise ValidationError(name, getattr(self, name), "true or false")
        pt = self.prior_trust
        if isinstance(pt, bool) or not isinstance(pt, (int, float)) or not pt >= 0:
            raise ValidationError("prior_trust", pt, "a number of pseudo-observations >= 0 (inf: fixed scale 1)")
        sp = self.safe_probability
        if isinstance(sp, bool) or not isinstance(sp, (int, float)) or not 0 <= sp < 0.84:
            raise ValidationError("safe_probability", sp, "a probability in [0, 0.84) (0: no safe-set rule; "
                                  "0.84 = the side-effect GP's prior P(no side effect) away from data)")
        if self.kernel not in ("product", "mixed"):
            raise ValidationError("kernel", self.kernel, "'product' or 'mixed'")


class _ThroughMap(AcquisitionFunction):
    """``acqf(fmap(Z))``: an acquisition function over the safe-set box coordinates ``Z``."""

    def __init__(self, inner: AcquisitionFunction, fmap: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__(model=inner.model)
        self.inner = inner
        self.fmap = fmap

    def forward(self, Z: torch.Tensor) -> torch.Tensor:
        return self.inner(self.fmap(Z))


class _SafeSetBarrier(AcquisitionFunction):
    """``acqf(X) - k · relu(log p_min - log P(severity < threshold | X))``: the safe-set rule.

    ``se_model`` is the side-effect GP in threshold units (feasible below 1); the barrier is zero
    where the posterior probability of no side effect (latent posterior) is at least ``p_min`` and
    falls by ``k`` per unit of log probability below it: a steep penalty, which an expected
    improvement ``e^k`` times larger per unit could still outweigh.
    """

    def __init__(self, inner: AcquisitionFunction, se_model: Any, p_min: float, k: float = 50.0) -> None:
        super().__init__(model=inner.model)
        self.inner, self.se_model, self.log_p_min, self.k = inner, se_model, math.log(p_min), k

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        post = self.se_model.posterior(X)
        z = (1.0 - post.mean[..., 0]) / post.variance[..., 0].clamp_min(1e-12).sqrt()  # (b, q)
        log_p = torch.special.log_ndtr(z)
        return self.inner(X) - self.k * torch.relu(self.log_p_min - log_p).sum(-1)


def _optimize_over_choices(cat_dim: int, choices: Sequence[float], *, acq_function: AcquisitionFunction,
                           bounds: torch.Tensor, q: int, num_restarts: int, raw_samples: int,
                           options: dict[str, Any], retry_on_optimization_warning: bool) -> torch.Tensor:
    """``optimize_acqf_mixed`` over the categorical values ``choices`` of column ``cat_dim``, with the
    restarts of every choice optimized in one batched L-BFGS-B run instead of one run per choice.

    The initial conditions are those ``optimize_acqf_mixed`` draws (per choice, same raw samples,
    same seed, same order); the batched L-BFGS-B treats every restart as its own problem, so the
    iterates are those of the per-choice runs (up to the rounding of a batched evaluation); the
    best restart over all choices is returned (ties: the first, as in ``optimize_acqf_mixed``).
    One acquisition evaluation per L-BFGS-B iteration for all choices together instead of one per
    choice: the per-call overhead of the GP posterior (and of a surrogate prior mean) is paid
    once, not once per contact (2-3x faster asks with 4-6 contacts).
    """
    from botorch.optim.initializers import gen_batch_initial_conditions

    ics = [gen_batch_initial_conditions(acq_function=acq_function, bounds=bounds, q=q, num_restarts=num_restarts,
                                        raw_samples=raw_samples, fixed_features={cat_dim: z}, options=options)
           for z in choices]
    X0 = torch.cat(ics)
    fixed = torch.tensor([z for z, ic in zip(choices, ics) for _ in range(len(ic))], dtype=X0.dtype)
    Z, _ = optimize_acqf(acq_function=acq_function, bounds=bounds, q=q, num_restarts=len(X0), raw_samples=None,
                         batch_initial_conditions=X0, fixed_features={cat_dim: fixed},
                         options={**options, "batch_limit": len(X0)},
                         retry_on_optimization_warning=retry_on_optimization_warning)
    return Z


@register("bo")
class BayesOpt(Optimizer):
    """BoTorch BO: (Mixed)SingleTaskGP + qLogNEI over the known safe set (see module docs).

    Args:
        space: The stimulus space.
        settings: :class:`BOSettings`.
        initial_design: Stimuli proposed first (they count toward ``n_init``).
        prior_mean: Optional prior cost ``(n, dim)`` unit-cube points -> ``(n,)`` cost (e.g. a
            surrogate's prediction); the GP then models the residual. Not serialized: pass it again
            when loading.
    """

    Settings = BOSettings
    settings: BOSettings

    def __init__(self, space: StimulusSpace, settings: BOSettings | None = None, *,
                 initial_design: Sequence[Stimulus] | None = None, prior_mean: PriorMean | None = None) -> None:
        self.prior_mean = prior_mean
        self.prior_scale = 1.0  # the fitted scale b of the prior mean (see BOSettings.prior_trust)
        self._prior_var: float | None = None
        self._se_model: Any = None
        super().__init__(space, settings, initial_design=initial_design)

    def _setup(self) -> None:
        self._drawn = 0
        self._engine: Any = None
        self._n_acq = 0
        self._hyper: dict[str, dict[str, torch.Tensor] | None] = {"cost": None, "side_effect": None}
        self._hyper_n: dict[str, int] = {"cost": -1, "side_effect": -1}
        self._cache: tuple[int, Any, Any, Any] | None = None
        self.last_acq_seconds = float("nan")

    # --- design ---------------------------------------------------------------------------------
    def _sobol(self, n: int) -> torch.Tensor:
        d = max(self.space.dim, 1)
        if self._engine is None:
            self._engine = torch.quasirandom.SobolEngine(d, scramble=True, seed=self.settings.seed)
            if self._drawn:
                self._engine.fast_forward(self._drawn)
        Z = self._engine.draw(n, dtype=torch.float64)[:, : self.space.dim]
        self._drawn += n
        return self.safe_map(Z)

    def _propose(self, n: int) -> tuple[torch.Tensor, list[Any]]:
        n_obs = len(self._obs)
        if n_obs < 2 or self.space.dim == 0:
            n_sobol = n
        else:
            n_sobol = min(n, max(0, self._n_init() - n_obs - len(self._pending)))
        parts, tags = [], []
        if n_sobol:
            parts.append(self._sobol(n_sobol))
            tags += [{"sobol": True}] * n_sobol
        if n - n_sobol:
            pending = [self.space.to_unit(s).clamp(0, 1) for s, _ in self._pending]
            X_pending = torch.cat(pending + parts) if pending or parts else None
            parts.append(self._acquire(n - n_sobol, X_pending))
            tags += [{"acq": self._n_acq}] * (n - n_sobol)
        return torch.cat(parts), tags

    def _n_init(self) -> int:
        """Observations from the space-filling design before the GP takes over (``settings.n_init``)."""
        return self.settings.n_init

    def _prior_weight(self) -> float:
        """Weight of the prior mean in [0, 1] (1 here; ``guided`` fades it with its trust in the model)."""
        return 1.0

    # --- model ------------------------------------------------------------------------------------
    def _fit(self, key: str, model: Any, n_obs: int) -> None:
        hyper = self._hyper[key]
        if hyper is not None and self._hyper_n[key] == n_obs and _gp.load_hyperparameters(model, hyper):
            model.eval()  # same data as the stored fit: reuse it
            return
        if hyper is not None and self.settings.warm_start:
            _gp.load_hyperparameters(model, hyper)
        _gp.fit_gp(model)
        self._hyper[key] = _gp.hyperparameters(model)
        self._hyper_n[key] = n_obs

    def _model(self) -> tuple[Any, Any, Any]:
        n_obs = len(self._obs)
        if self._cache is not None and self._cache[0] == n_obs:
            return self._cache[1:]
        X = stimuli_unit(self.space, [s for s, _, _ in self._obs])
        cost = torch.tensor([[o.cost] for _, o, _ in self._obs], dtype=torch.float64)
        prior = self._prior_f
        weight = self._prior_weight() if prior is not None else 0.0
        if prior is not None and weight <= 1e-6:
            prior = None  # a model the trials contradict: plain BO
            self.prior_scale = 0.0
        if prior is not None:
            raw = prior
            b = self.prior_scale = weight * self._prior_scale(raw(X).detach(), -cost[:, 0])
            prior = lambda Z: b * raw(Z)  # noqa: E731
        y = -cost if prior is None else -cost - prior(X).unsqueeze(-1)
        cat = sorted(self.space.categorical_dims)
        cost_model = _gp.build_gp(X, y, cat, self.settings.kernel)
        self._fit("cost", cost_model, n_obs)
        model, constraints = cost_model, None
        thr = self.settings.side_effect_threshold
        sev = [(i, o.severity) for i, (_, o, _) in enumerate(self._obs) if o.severity is not None]
        if self.settings.constraint_aware and any(v > 0 for _, v in sev):  # sub-threshold readings count
            idx = torch.tensor([i for i, _ in sev])
            se_y = torch.tensor([[v / thr] for _, v in sev], dtype=torch.float64)  # threshold units
            se_model = _gp.build_gp(X[idx], se_y, cat, self.settings.kernel, zero_mean=True)
            self._fit("side_effect", se_model, n_obs)
            model = ModelListGP(cost_model, se_model)
            constraints = [lambda Y: Y[..., 1] - 1.0]  # feasible where severity < threshold
            self._se_model = se_model
        objective = None
        if prior is not None or constraints is not None:
            def obj(Y: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
                f = Y[..., 0]
                return f if prior is None else f + prior(X)
            objective = GenericMCObjective(obj)
        if constraints is None:
            self._se_model = None
        self._cache = (n_obs, model, objective, constraints)
        return model, objective, constraints

    def _prior_scale(self, p: torch.Tensor, y: torch.Tensor) -> float:
        """Slope ``b`` of ``y ≈ a + b p`` over the observations, shrunk toward 1 (``prior_trust``), in [0, 10]."""
        n0 = float(self.settings.prior_trust)
        if not math.isfinite(n0) or len(p) < 2:
            return 1.0
        lam = n0 * self._prior_spread()
        pc, yc = p - p.mean(), y - y.mean()
        sxx, sxy = float((pc ** 2).sum()), float((pc * yc).sum())
        if sxx + lam <= 0:
            return 1.0
        return min(max((sxy + lam) / (sxx + lam), 0.0), 10.0)

    def _prior_spread(self) -> float:
        """Variance of the prior over 256 scrambled-Sobol points of the safe box (computed once per
        optimizer: a prior whose model changes in place afterwards keeps the first value)."""
        if self._prior_var is None:
            prior = self._prior_f
            assert prior is not None
            eng = torch.quasirandom.SobolEngine(self.space.dim, scramble=True, seed=self.settings.seed + 7)
            with torch.no_grad():
                self._prior_var = float(prior(self.safe_map(eng.draw(256, dtype=torch.float64))).var())
        return self._prior_var

    @property
    def _prior_f(self) -> PriorMean | None:
        """``-prior_mean`` on ``(..., dim)`` points -> ``(...)``: the prior of the maximized objective."""
        if self.prior_mean is None:
            return None
        pm = self.prior_mean
        return lambda X: -pm(X.reshape(-1, X.shape[-1])).reshape(X.shape[:-1]).to(X)

    def recommend(self) -> Stimulus | None:
        """The measured stimulus without a side effect of lowest posterior-mean cost (the cost GP plus the
        scaled surrogate prior): trial noise is averaged by the GP's noise model instead of trusting the
        single lowest measurement. The fit is the one the next :meth:`ask` uses (cached per observation count)."""
        if len(self._obs) < 2 or self.space.dim == 0:
            return super().recommend()

        if all(self.is_side_effect(o) for _, o, _ in self._obs):
            return None
        with self._seeded(self._acq_seed()):  # the fit (outside no_grad), seeded as the next ask's
            model, objective, _ = self._model()

        def predicted(stims: list[Stimulus]) -> torch.Tensor:
            X = stimuli_unit(self.space, stims)
            Y = model.posterior(X).mean  # (n, outputs): -(cost - prior) [, severity]
            return -(Y[..., 0] if objective is None else objective(Y, X))

        return self._recommend_lowest(predicted)

    # --- acquisition ----------------------------------------------------------------------------
    def _acq_seed(self) -> int:
        """Seed of the next acquisition (and of the GP fit it uses): ``(seed, acquisitions so far)``."""
        return (self.settings.seed * 1_000_003 + self._n_acq) % (2**31 - 1)

    @staticmethod
    @contextlib.contextmanager
    def _seeded(seed: int) -> Iterator[None]:
        """Torch RNG forked and seeded; L-BFGS-B warnings silenced (it may stop early at the safe-set
        map's kinks; the best restart is still used)."""
        with torch.random.fork_rng(), warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizationWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            torch.manual_seed(seed)
            yield

    def _acquire(self, q: int, X_pending: torch.Tensor | None) -> torch.Tensor:
        import time

        t0 = time.perf_counter()
        seed = self._acq_seed()
        self._n_acq += 1
        with self._seeded(seed):
            model, objective, constraints = self._model()
            X_base = stimuli_unit(self.space, [s for s, _, _ in self._obs])
            acqf = qLogNoisyExpectedImprovement(
                model, X_baseline=X_base, objective=objective, constraints=constraints,
                sampler=SobolQMCNormalSampler(sample_shape=torch.Size([self.settings.mc_samples]), seed=seed),
                prune_baseline=True, X_pending=X_pending)
            inner: AcquisitionFunction = acqf
            if constraints is not None and self.settings.safe_probability > 0 and self._se_model is not None:
                inner = _SafeSetBarrier(acqf, self._se_model, self.settings.safe_probability)
            wrapped = _ThroughMap(inner, self.safe_map)
            d = self.space.dim
            bounds = torch.stack([torch.zeros(d), torch.ones(d)]).to(torch.float64)
            kw = dict(acq_function=wrapped, bounds=bounds, q=1, num_restarts=self.settings.num_restarts,
                      raw_samples=self.settings.raw_samples,
                      options={"maxiter": self.settings.maxiter, "batch_limit": self.settings.num_restarts,
                               "init_batch_limit": self.settings.raw_samples,
                               "seed": seed},
                      retry_on_optimization_warning=False)
            c = self.safe_map.cat_dim
            picks: list[torch.Tensor] = []
            for _ in range(q):
                done = [X_pending] if X_pending is not None else []
                if picks:
                    acqf.set_X_pending(torch.cat(done + picks))
                if c is None:
                    Z, _ = optimize_acqf(**kw)
                elif len(self.safe_map.feasible) == 1:
                    Z, _ = optimize_acqf(fixed_features={c: self.safe_map.choice_z()[0]}, **kw)
                else:  # optimize_acqf_mixed over the contacts, their restarts in one batch
                    Z = _optimize_over_choices(c, self.safe_map.choice_z(), **kw)
                picks.append(self.safe_map(Z.detach().reshape(1, d)))
        self.last_acq_seconds = time.perf_counter() - t0
        return torch.cat(picks)

    # --- state ----------------------------------------------------------------------------------
    def _impl_state(self) -> dict[str, Any]:
        return {"drawn": self._drawn, "n_acq": self._n_acq, "hyper_n": dict(self._hyper_n),
                "hyper": {k: _gp.hyper_to_state(v) for k, v in self._hyper.items()}}

    def _load_impl_state(self, state: Mapping[str, Any]) -> None:
        self._drawn = int(state["drawn"])
        self._n_acq = int(state["n_acq"])
        self._hyper_n = {k: int(v) for k, v in state["hyper_n"].items()}
        self._hyper = {k: _gp.hyper_from_state(v) for k, v in state["hyper"].items()}
        self._engine = None
        self._cache = None
