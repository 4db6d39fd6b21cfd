"""Seconds per ``ask`` of ``bo`` against a bare BoTorch loop doing the same fit and acquisition.

Both run in the same process on the same 40 observations of
:class:`~bfm_stim.optim.test_problems.ContactBump` (4 contacts, 3 continuous parameters):

* ``bo``: one ``tell`` of a new observation then one ``ask`` (refit warm-started from the previous
  hyperparameters, qLogNEI over the safe set, ``optimize_acqf_mixed`` over the contacts, safety
  projection and checks);
* bare: the same GP class built from scratch on the same data, ``fit_gpytorch_mll``, qLogNEI and
  ``optimize_acqf_mixed`` over the unit box with the same restarts/raw samples, no safety handling
  (``bo`` optimizes the contacts' restarts in one batched run instead).

Both run with the torch threads ``bo``'s ask uses (:func:`~bfm_stim.optim.base.propose_threads`).

``bfm-stim bench optimizers`` reports :func:`bench_ask` as ``bench_ask_40_obs``.
"""

from __future__ import annotations

import statistics
import time
import warnings
from typing import Any

import torch
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.optim import optimize_acqf_mixed
from botorch.sampling import SobolQMCNormalSampler

from bfm_stim.optim import gp as _gp
from bfm_stim.optim.base import Outcome, propose_threads, stimuli_unit
from bfm_stim.optim.registry import make
from bfm_stim.optim.test_problems import ContactBump

__all__ = ["bench_ask"]


def bench_ask(n_obs: int = 40, repeats: int = 5, *, num_restarts: int = 4, raw_samples: int = 128,
              mc_samples: int = 128, seed: int = 0) -> dict[str, Any]:
    """Median seconds per ask of ``bo`` at ``n_obs`` observations and of a bare BoTorch loop.

    Args:
        n_obs: Observations in the model when asking.
        repeats: Timed asks per variant (each adds one observation, so every ask refits).
        num_restarts: Acquisition restarts per contact (both variants).
        raw_samples: Raw samples per contact (both variants).
        mc_samples: QMC samples of qLogNEI (both variants).
        seed: Seed of the data and of both loops.

    Returns:
        ``{"n_obs", "repeats", "bo_s", "bare_s" (medians, s), "ratio" (bo_s / bare_s),
        "bo_all_s", "bare_all_s", "device", "torch_threads"}``.
    """
    prob = ContactBump()
    space = prob.space
    design = make("sobol", space, seed=seed)
    stims = design.ask(n_obs + repeats)
    outs = [prob(s) for s in stims]
    settings = dict(num_restarts=num_restarts, raw_samples=raw_samples, mc_samples=mc_samples, seed=seed)
    opt = make("bo", space, n_init=2, **settings)
    opt.tell(stims[: n_obs - 1], outs[: n_obs - 1])
    opt.tell(opt.ask(1), [Outcome(0.5)])  # first fit outside the timing (cold start)
    bo_t: list[float] = []
    for i in range(repeats):
        j = n_obs - 1 + i
        opt.tell([stims[j]], [outs[j]])
        t0 = time.perf_counter()
        opt.ask(1)
        bo_t.append(time.perf_counter() - t0)

    cat = sorted(space.categorical_dims)
    c = cat[0]
    n_choices = space.categorical_dims[c]
    bare_t: list[float] = []
    d = space.dim
    bounds = torch.stack([torch.zeros(d), torch.ones(d)]).to(torch.float64)
    for i in range(repeats):
        t0 = time.perf_counter()
        X = stimuli_unit(space, stims[: n_obs + i])
        Y = -torch.tensor([[o.cost] for o in outs[: n_obs + i]], dtype=torch.float64)
        with warnings.catch_warnings(), propose_threads():  # the threads bo's ask runs with
            warnings.simplefilter("ignore")
            model = _gp.build_gp(X, Y, cat)
            _gp.fit_gp(model)
            acqf = qLogNoisyExpectedImprovement(
                model, X_baseline=X, prune_baseline=True,
                sampler=SobolQMCNormalSampler(sample_shape=torch.Size([mc_samples]), seed=seed))
            optimize_acqf_mixed(acqf, bounds=bounds, q=1, num_restarts=num_restarts, raw_samples=raw_samples,
                                fixed_features_list=[{c: k / max(n_choices - 1, 1)} for k in range(n_choices)],
                                options={"batch_limit": num_restarts, "init_batch_limit": raw_samples,
                                         "maxiter": 100}, retry_on_optimization_warning=False)
        bare_t.append(time.perf_counter() - t0)
    bo_s, bare_s = statistics.median(bo_t), statistics.median(bare_t)
    return {"n_obs": n_obs, "repeats": repeats, "bo_s": bo_s, "bare_s": bare_s, "ratio": bo_s / bare_s,
            "bo_all_s": bo_t, "bare_all_s": bare_t, "device": "cpu", "torch_threads": _threads()}


def _threads() -> int:
    with propose_threads():
        return torch.get_num_threads()
