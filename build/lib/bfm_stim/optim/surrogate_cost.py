"""The surrogate as a cost model: the one interface the surrogate optimizers depend on.

A *cost model* is anything with ``predict(features) -> (mean, std)``: ``features`` is a tensor
``(n, N_FEATURES)`` of stimulus features (:data:`bfm_stim.stim_features.FEATURE_NAMES`), ``mean`` and
``std`` are ``(n,)`` tensors of predicted cost (lower is better) and its uncertainty, both
differentiable in ``features``. :class:`SurrogateCost` builds one from the foundation model
(:class:`~bfm_stim.surrogate.Surrogate`), a context recording and an objective; tests and
benchmarks can pass any other differentiable model (a closed-form test cost, a GP).

:class:`ResidualCorrection` wraps a cost model with an online correction learned from measured
outcomes: a global bias plus a kernel-smoothed (Nadaraya–Watson) residual in feature space, shrunk
toward the model where there is no data. ``gradient`` and ``egreedy`` optimize the corrected cost.

Example:
    >>> cost = SurrogateCost(surrogate, rest, LatentTarget.from_recording(surrogate, healthy))  # doctest: +SKIP
    >>> mean, std = cost.predict(space.to_features(stims))                                       # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from bfm_stim.exceptions import ValidationError
from bfm_stim.space import StimulusSpace
from bfm_stim.stim_features import FEATURE_NAMES, N_FEATURES

__all__ = ["CostModel", "SurrogateCost", "ConstantCost", "ResidualCorrection", "unit_cost", "unit_mean", "predict_mean",
           "KERNEL_FEATURES"]

# Features that enter the correction's kernel distance (the phase features wrap quickly with the
# rate and "on"/"electrical" are constant within a space).
KERNEL_FEATURES = ("contact_x", "contact_y", "contact_z", "amplitude", "log_frequency", "pulse_width", "charge",
                   "visual", "auditory", "level")
_KIDX = [FEATURE_NAMES.index(n) for n in KERNEL_FEATURES]


@runtime_checkable
class CostModel(Protocol):
    """Predicted cost of stimulus features: ``predict((n, N_FEATURES)) -> ((n,), (n,))``, differentiable.

    A model may also have ``predict_mean(features) -> (n,)``, equal to ``predict(features)[0]`` but
    cheaper; the optimizers use it (:func:`predict_mean`) where the uncertainty is not needed.
    """

    def predict(self, features: Tensor) -> tuple[Tensor, Tensor]: ...


def _check_features(features: Tensor) -> Tensor:
    if not isinstance(features, Tensor) or features.dim() != 2 or features.shape[1] != N_FEATURES:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ValidationError("features", shape, f"a tensor (n, {N_FEATURES})")
    return features


class SurrogateCost:
    """Cost of stimuli predicted by the foundation model for one patient state.

    The surrogate forecasts the response to each candidate (held for the forecast horizon) from
    ``context``; the objective turns the forecast into a cost. The uncertainty is the spread of the
    objective over ``n_samples`` fixed draws from the forecast's calibrated predictive distribution
    (reparameterized, so it is differentiable and deterministic). The surrogate's weights are
    frozen (``requires_grad=False``): gradients flow to the stimulus features only. The context is
    encoded once and reused (only the candidates are rolled out per call; the numbers are exactly
    ``surrogate.predict``'s); :meth:`predict_mean` skips the uncertainty where it is not needed.

    Args:
        surrogate: A :class:`~bfm_stim.surrogate.Surrogate` bound to the patient.
        context: (C, T) recent stimulation-off signal, µV at ``surrogate.fs``.
        objective: Callable ``Forecast -> (n,)`` cost, e.g. a
            :class:`~bfm_stim.objectives.LatentTarget` or :class:`~bfm_stim.objectives.BandPowerObjective`.
        signal: Whether the objective needs the forecast signal (default: not for ``LatentTarget``).
        n_samples: Predictive draws for the uncertainty (>= 2).
        seed: Seed of the draws.
    """

    def __init__(self, surrogate: Any, context: Tensor | np.ndarray, objective: Callable[[Any], Tensor], *,
                 signal: bool | None = None, n_samples: int = 8, seed: int = 0) -> None:
        from bfm_stim.objectives import LatentTarget

        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
            raise ValidationError("n_samples", n_samples, "an integer >= 2")
        self.surrogate = surrogate
        for p in surrogate.model.parameters():
            p.requires_grad_(False)
        self.context = torch.as_tensor(np.asarray(context), dtype=torch.float32)
        surrogate._context(self.context)  # validates shape and length now, not at the first predict
        self.objective = objective
        if signal is None:
            needs = getattr(objective, "needs_signal", None)
            signal = needs(surrogate) if callable(needs) else not isinstance(objective, LatentTarget)
        self.signal = bool(signal)
        self.biomarkers = not isinstance(objective, LatentTarget)  # latent targets never read the heads
        self.n_samples = n_samples
        self._gen = torch.Generator().manual_seed(seed)
        self._eps: dict[str, Tensor] = {}
        self._enc: tuple[Any, tuple[Tensor, Tensor, Tensor, Tensor | None]] | None = None
        self._params: tuple[Any, list[Tensor]] | None = None

    def _noise(self, key: str, shape: tuple[int, ...]) -> Tensor:
        """Fixed standard-normal draws ``(n_samples, 1, *shape)`` (the same for every candidate)."""
        if key not in self._eps or self._eps[key].shape[2:] != shape:
            self._eps[key] = torch.randn((self.n_samples, 1, *shape), generator=self._gen)
        return self._eps[key]

    # --- the context, encoded once ---------------------------------------------------------------
    def _encoding_key(self) -> Any:
        """What the cached encoding depends on besides the (fixed) context: the weights, the patient."""
        sur = self.surrogate
        if self._params is None or self._params[0] is not sur.model:
            self._params = (sur.model, list(sur.model.parameters()))
        return (id(sur.model), [p._version for p in self._params[1]], id(sur.patient), sur.patient._version,
                id(sur.forecaster), sur.horizon)

    def _encoding(self) -> Any:
        """``(z0, mean, std, base)`` of the context: what ``Surrogate.predict`` recomputes on every call.

        The context, the weights (frozen) and the patient are fixed, so the transformer encoding of
        the context (and the linear forecast of the ongoing activity, for signal objectives) is
        computed once, without a graph, and reused; it is recomputed if the weights or the
        patient embedding change in place.
        """
        key = self._encoding_key()
        if self._enc is None or self._enc[0] != key:
            with torch.no_grad():
                prep = self.surrogate.prepare(self.context, signal=self.signal, biomarkers=self.biomarkers)
            self._enc = (key, prep._replace(z0=prep.z0.detach()))
        return self._enc[1]

    def forecast(self, features: Tensor) -> Any:
        """The surrogate's :class:`~bfm_stim.surrogate.Forecast` of held stimuli ``features (n, F)`` (float32).

        Equal to ``surrogate.predict(context, features, signal=self.signal)`` (and computed that way
        for a surrogate that is not a :class:`~bfm_stim.surrogate.Surrogate`), with the context
        encoding cached (:meth:`_encoding`): only the candidates are rolled out.
        """
        from bfm_stim.surrogate import Surrogate

        sur = self.surrogate
        if not isinstance(sur, Surrogate):
            return sur.predict(self.context, features, signal=self.signal)  # a duck-typed surrogate
        return sur.predict(self.context, features, signal=self.signal, prepared=self._encoding())

    def predict(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Predicted cost and its standard deviation, ``(n,)`` each, in ``features``' dtype.

        Args:
            features: (n, N_FEATURES) stimulus features (gradients flow through them).
        """
        from bfm_stim.surrogate import Forecast

        F = _check_features(features)
        fc = self.forecast(F.to(torch.float32))
        mean = self.objective(fc)
        n, k = F.shape[0], self.n_samples
        z = (fc.z[None] + self._noise("z", tuple(fc.z.shape[1:])) * fc.z_std[None]).reshape(k * n, *fc.z.shape[1:])
        r = r_std = None
        if fc.response is not None:  # latent targets read the response latents: draw those too
            r = fc.response[None] + self._noise("r", tuple(fc.response.shape[1:])) * fc.response_std[None]
            r = r.reshape(k * n, *fc.response.shape[1:])
            r_std = fc.response_std.repeat(k, 1, 1)
        sig = sig_std = None
        if self.signal:
            sig = fc.signal[None] + self._noise("s", tuple(fc.signal.shape[1:])) * fc.signal_std[None]
            sig = sig.reshape(k * n, *fc.signal.shape[1:])
        b = b_std = None
        if fc.biomarker is not None:  # band-power objectives read the biomarker heads: draw those too
            b = fc.biomarker[None] + self._noise("b", tuple(fc.biomarker.shape[1:])) * fc.biomarker_std[None]
            b = b.reshape(k * n, *fc.biomarker.shape[1:])
            b_std = fc.biomarker_std.repeat(k, 1, 1)
        feats = fc.features.repeat(k, 1, 1) if fc.features is not None else None
        draws = self.objective(Forecast(z, fc.z_std.repeat(k, 1, 1), sig, sig_std, fc.fs, r, r_std, b, b_std,
                                        fc.bands, feats)).reshape(k, n)
        return mean.to(F.dtype), draws.std(0).to(F.dtype)

    def predict_mean(self, features: Tensor) -> Tensor:
        """The ``mean`` of :meth:`predict` alone (no predictive draws), ``(n,)``, differentiable:
        one forecast (context encoding cached) and the objective, without the ``n_samples`` draws."""
        F = _check_features(features)
        return self.objective(self.forecast(F.to(torch.float32))).to(F.dtype)


class ConstantCost:
    """A flat prior: every stimulus has cost ``value`` with uncertainty ``std`` (no surrogate).

    The surrogate optimizers fall back to it when no cost model is given; they then learn the cost
    from the measured outcomes alone (through the correction or the GP).
    """

    def __init__(self, value: float = 0.0, std: float = 1.0) -> None:
        if not (math.isfinite(value) and math.isfinite(std) and std > 0):
            raise ValidationError("ConstantCost", (value, std), "a finite value and a finite std > 0")
        self.value, self.std = float(value), float(std)

    def predict(self, features: Tensor) -> tuple[Tensor, Tensor]:
        F = _check_features(features)
        zero = F[:, 0] * 0.0  # keeps the graph (and dtype) of the input
        return zero + self.value, zero + self.std

    def predict_mean(self, features: Tensor) -> Tensor:
        return _check_features(features)[:, 0] * 0.0 + self.value


class ResidualCorrection:
    """A cost model corrected by measured outcomes (additive, kernel-smoothed residual).

    ``mean(x) = m(x) + b + Σ k(x, x_i) (r_i - b) / (λ + Σ k(x, x_i))`` with residuals
    ``r_i = y_i - m(x_i)``, bias ``b = Σ r_i / (n + λ)``, a Gaussian kernel of ``lengthscale`` over
    :data:`KERNEL_FEATURES` and shrinkage ``λ``; ``std(x) = s(x) sqrt(λ / (λ + Σ k(x, x_i)))``.
    Far from the observations the prediction falls back to the (bias-corrected) model.

    Args:
        base: The cost model to correct.
        lengthscale: Kernel lengthscale in feature units (features are scaled to about [0, 1]).
        shrinkage: λ > 0, the pseudo-count of the model's own prediction.
    """

    def __init__(self, base: CostModel, *, lengthscale: float = 0.1, shrinkage: float = 0.5) -> None:
        if not (lengthscale > 0 and shrinkage > 0):
            raise ValidationError("ResidualCorrection", (lengthscale, shrinkage), "lengthscale > 0 and shrinkage > 0")
        self.base = base
        self.lengthscale, self.shrinkage = float(lengthscale), float(shrinkage)
        self._F: Tensor | None = None
        self._r: Tensor | None = None
        self._b = 0.0

    @property
    def n(self) -> int:
        return 0 if self._F is None else len(self._F)

    def fit(self, features: Tensor, costs: Tensor) -> "ResidualCorrection":
        """Set the observations: features (n, N_FEATURES) and measured costs (n,); returns self."""
        F = _check_features(features).detach().to(torch.float64)
        y = torch.as_tensor(costs, dtype=torch.float64).reshape(-1)
        if len(y) != len(F):
            raise ValidationError("costs", len(y), f"{len(F)} costs (one per feature row)")
        if len(y) == 0:
            self._F, self._r, self._b = None, None, 0.0
            return self
        with torch.no_grad():
            m = predict_mean(self.base, F)
        r = y - m.detach().to(torch.float64)
        self._F, self._b = F, float(r.sum() / (len(r) + self.shrinkage))
        self._r = r - self._b
        return self

    def predict(self, features: Tensor) -> tuple[Tensor, Tensor]:
        F = _check_features(features)
        m, s = self.base.predict(F)
        return self.correct(F, m, s)

    def predict_mean(self, features: Tensor) -> Tensor:
        """The ``mean`` of :meth:`predict` alone (the base model's mean, corrected)."""
        F = _check_features(features)
        return self.correct(F, predict_mean(self.base, F), None)[0]

    def correct(self, features: Tensor, mean: Tensor, std: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Apply the correction to the base model's ``mean`` and ``std`` at ``features`` (e.g. cached ones)."""
        F = features
        if self._F is None or self._r is None:
            return mean, std
        d = (F[:, None, _KIDX] - self._F[None, :, _KIDX].to(F)) / self.lengthscale
        k = torch.exp(-0.5 * (d ** 2).sum(-1))  # (n, n_obs)
        w = k.sum(-1)
        corr = self._b + (k * self._r.to(F)).sum(-1) / (self.shrinkage + w)
        return mean + corr, None if std is None else std * torch.sqrt(self.shrinkage / (self.shrinkage + w))


def predict_mean(cost: CostModel, features: Tensor) -> Tensor:
    """``cost.predict(features)[0]``, without the uncertainty where the model can skip it (``predict_mean``)."""
    f = getattr(cost, "predict_mean", None)
    return f(features) if callable(f) else cost.predict(features)[0]


def unit_cost(cost: CostModel, space: StimulusSpace) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """Cost of unit-cube points: ``X (n, space.dim) -> (mean (n,), std (n,))``, differentiable in ``X``."""
    def f(X: Tensor) -> tuple[Tensor, Tensor]:
        return cost.predict(space.features_from_unit(X))
    return f


def unit_mean(cost: CostModel, space: StimulusSpace) -> Callable[[Tensor], Tensor]:
    """Mean cost of unit-cube points: ``X (n, space.dim) -> (n,)`` (:func:`predict_mean`), differentiable in ``X``."""
    def f(X: Tensor) -> Tensor:
        return predict_mean(cost, space.features_from_unit(X))
    return f
