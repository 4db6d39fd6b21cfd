"""Gaussian-process pieces of ``bo``: model construction, hyperparameter warm start and fitting.

Cost model: ``SingleTaskGP`` with a Matérn-5/2 ARD kernel and BoTorch's dimension-scaled
log-normal lengthscale prior (Hvarfner et al. 2024, ``get_covar_module_with_dim_scaled_prior``).
With a categorical coordinate (contact / modality) the kernel is that Matérn on the continuous
columns times BoTorch's ``CategoricalKernel`` on the categorical one (default, ``"product"``), or
``MixedSingleTaskGP`` with the same continuous kernel (``"mixed"``; about 10x slower to fit). Outcomes are standardized (``Standardize``); the
noise is inferred (``GaussianLikelihood`` with BoTorch's default prior). Fitting maximizes the
marginal likelihood with ``fit_gpytorch_mll``, starting from the previous fit's hyperparameters.

Side-effect model (``zero_mean=True``): the same kernels on the severity in threshold units, not
standardized, with a zero prior mean: away from the observations a stimulus is predicted free of
side effects (with the prior's uncertainty), so a run whose every observation had one still
finds the feasible region instead of a GP that reverts to "infeasible everywhere". Its categorical
lengthscale has a log-normal prior (median 1: contacts correlated ``e^-1``; :data:`SIDE_EFFECT_CONTACT_PRIOR`):
fitted by maximum likelihood alone it ran to the upper bound (severity identical on every contact,
although a side-effect threshold depends on the contact's distance to the structure it recruits) in
about 60 % of fits on 8-16 trials, and predicted held-out severities worse (pretraining bg-beta-v0
patients 0-5, 2 Sobol draws each: mean log predictive density -2.07 vs -1.70 at 8 trials, -1.43 vs -1.06
at 16; Brier score of P(no side effect) 0.167 vs 0.140 and 0.178 vs 0.139).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import MixedSingleTaskGP, SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from botorch.models.kernels.categorical import CategoricalKernel
from gpytorch.constraints import Interval
from gpytorch.means import ZeroMean
from gpytorch.priors import LogNormalPrior
from gpytorch.mlls import ExactMarginalLogLikelihood

from bfm_stim.optim.base import tensor_from_state, tensor_state

__all__ = ["SIDE_EFFECT_CONTACT_PRIOR", "matern_kernel", "build_gp", "hyperparameters", "load_hyperparameters",
           "fit_gp", "hyper_to_state", "hyper_from_state"]

# (loc, scale) of the log-normal prior on the side-effect model's categorical lengthscale (log units)
SIDE_EFFECT_CONTACT_PRIOR = (0.0, 1.0)


def matern_kernel(ard_num_dims: int, batch_shape: torch.Size | None = None,
                  active_dims: Sequence[int] | None = None) -> Any:
    """Matérn-5/2 ARD kernel with the dimension-scaled log-normal lengthscale prior."""
    return get_covar_module_with_dim_scaled_prior(ard_num_dims=ard_num_dims, batch_shape=batch_shape,
                                                  use_rbf_kernel=False, active_dims=active_dims)


def build_gp(train_X: torch.Tensor, train_Y: torch.Tensor, cat_dims: Sequence[int] = (),
             kernel: str = "product", zero_mean: bool = False) -> SingleTaskGP:
    """An unfitted GP on ``train_X`` ``(n, d)`` (unit cube, float64) and ``train_Y`` ``(n, 1)``.

    Args:
        cat_dims: Categorical columns (contact / modality).
        kernel: With categorical columns: ``"product"`` (SingleTaskGP, Matérn-5/2 ARD on the
            continuous columns × a categorical kernel, lengthscale in [0.05, 10]; 5–6
            hyperparameters, fits in a fraction of the time) or ``"mixed"`` (BoTorch's
            MixedSingleTaskGP: sum + product of the two).
        zero_mean: A zero prior mean and no outcome standardization (the side-effect model); with
            ``"product"`` also the log-normal prior :data:`SIDE_EFFECT_CONTACT_PRIOR` on the
            categorical lengthscale.
    """
    gp = _build(train_X, train_Y, cat_dims, kernel, zero_mean)
    if zero_mean:
        gp.mean_module = ZeroMean().to(train_X)
    return gp


def _build(train_X: torch.Tensor, train_Y: torch.Tensor, cat_dims: Sequence[int], kernel: str,
           zero_mean: bool) -> SingleTaskGP:
    tf: Any = None if zero_mean else Standardize(m=1)
    d = train_X.shape[-1]
    if cat_dims and kernel == "product":
        cont = [i for i in range(d) if i not in set(cat_dims)]
        prior = {"lengthscale_prior": LogNormalPrior(*SIDE_EFFECT_CONTACT_PRIOR)} if zero_mean else {}
        cat_k = CategoricalKernel(ard_num_dims=len(cat_dims), active_dims=list(cat_dims),
                                  lengthscale_constraint=Interval(0.05, 10.0), **prior)
        covar = cat_k if not cont else matern_kernel(len(cont), active_dims=cont) * cat_k
        return SingleTaskGP(train_X, train_Y, covar_module=covar, outcome_transform=tf)
    if cat_dims:
        return MixedSingleTaskGP(train_X, train_Y, cat_dims=list(cat_dims), cont_kernel_factory=matern_kernel,
                                 outcome_transform=tf)
    return SingleTaskGP(train_X, train_Y, covar_module=matern_kernel(train_X.shape[-1]), outcome_transform=tf)


def hyperparameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's trainable hyperparameters (raw values), detached copies."""
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def load_hyperparameters(model: torch.nn.Module, hyper: Mapping[str, torch.Tensor]) -> bool:
    """Copy ``hyper`` into ``model`` when names and shapes match; returns whether it did."""
    params = dict(model.named_parameters())
    if set(params) != set(hyper) or any(params[k].shape != hyper[k].shape for k in params):
        return False
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(hyper[k].to(p))
    return True


def fit_gp(model: torch.nn.Module) -> None:
    """Maximize the exact marginal likelihood (L-BFGS-B via ``fit_gpytorch_mll``); leaves eval mode."""
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    fit_gpytorch_mll(mll)
    model.eval()


def hyper_to_state(hyper: Mapping[str, torch.Tensor] | None) -> dict[str, Any] | None:
    return None if hyper is None else {k: tensor_state(v) for k, v in hyper.items()}


def hyper_from_state(d: Mapping[str, Any] | None) -> dict[str, torch.Tensor] | None:
    return None if d is None else {k: tensor_from_state(v) for k, v in d.items()}
