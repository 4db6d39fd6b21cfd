"""Stimulation optimizers behind one ask/tell interface.

Registered names (``registry``): ``random``, ``sobol``, ``cmaes``, ``bo``, and the surrogate
optimizers ``gradient``, ``guided``, ``egreedy`` (they take a ``cost_model=`` hook, see
:mod:`bfm_stim.optim.surrogate_cost`). Build with
``make(name, space, **settings)``, resume with ``load(path)``. Every stimulus an optimizer emits has
passed ``space.check`` (enforced once, in :class:`Optimizer`).

Example:
    >>> from bfm_stim.optim import make, Outcome
    >>> opt = make("bo", space, seed=0)                     # doctest: +SKIP
    >>> stims = opt.ask(2)                                  # doctest: +SKIP
    >>> opt.tell(stims, [Outcome(cost=0.3), Outcome(cost=0.7, side_effect=True)])  # doctest: +SKIP
    >>> opt.save("session/optimizer.json")                  # doctest: +SKIP
"""

from __future__ import annotations

from bfm_stim.optim.base import Optimizer, OptimizerSettings, Outcome
from bfm_stim.optim.registry import from_state_dict, load, make, register, registry, settings_from_dict
from bfm_stim.optim.safe_set import SafeBoxMap
from bfm_stim.optim.sampling import RandomSearch, RandomSettings, SobolSearch, SobolSettings
from bfm_stim.optim.cmaes import CMAES, CMAESSettings
from bfm_stim.optim.bo import BayesOpt, BOSettings
from bfm_stim.optim.surrogate_cost import ConstantCost, CostModel, ResidualCorrection, SurrogateCost
from bfm_stim.optim.gradient import GradientSearch, GradientSettings
from bfm_stim.optim.guided import GuidedBO, GuidedSettings
from bfm_stim.optim.egreedy import EGreedySettings, EpsilonGreedy
from bfm_stim.optim.trust import TrustState, assess_trust
from bfm_stim.optim.cost_models import cost_model_from_rest

__all__ = [
    "Optimizer", "OptimizerSettings", "Outcome", "SafeBoxMap",
    "registry", "register", "make", "load", "from_state_dict", "settings_from_dict",
    "RandomSearch", "RandomSettings", "SobolSearch", "SobolSettings",
    "CMAES", "CMAESSettings", "BayesOpt", "BOSettings",
    "CostModel", "SurrogateCost", "ConstantCost", "ResidualCorrection",
    "GradientSearch", "GradientSettings", "GuidedBO", "GuidedSettings", "EpsilonGreedy", "EGreedySettings",
    "TrustState", "assess_trust", "cost_model_from_rest",
]
