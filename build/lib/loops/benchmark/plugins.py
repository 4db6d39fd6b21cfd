"""Optimizers under test: built-in, from other libraries (Optuna, Nevergrad) and users' own.

``name`` in a ``[[optimizers]]`` table resolves as follows (:func:`make_optimizer`):

* a registered built-in (``bfm_stim.optim.registry``: ``random``, ``bo``, ``guided`` ...);
* ``optuna-tpe`` / ``optuna-gp`` — Optuna's TPE and GP samplers (extra ``external``);
* ``nevergrad`` — any Nevergrad optimizer, ``settings.method`` (default ``TwoPointsDE``, see
  :class:`NevergradSettings`; extra ``external``);
* ``module:Class`` or ``ep:NAME`` (entry point group ``bfm_stim.optimizers``) — a user's optimizer:
  either a :class:`bfm_stim.optim.Optimizer` subclass (built as ``Class(space, Class.Settings(...))``,
  so its proposals pass the base class' safety projection) or any plain object built as
  ``Class(space, seed=..., **settings)`` with ``ask() -> Stimulus``, ``tell(stimulus, outcome)`` and
  optionally ``recommend() -> Stimulus | None``.

The external adapters are :class:`~bfm_stim.optim.Optimizer` subclasses: a library's suggestion is
decoded, projected onto the safe set and checked like a built-in proposal; when the delivered stimulus
differs from the suggestion, the library is told the truth (Optuna: the suggested trial fails and the
delivered point is added as a completed trial; Nevergrad: the delivered point is told). Side effects are
given to both as constraints (``severity - side_effect_threshold <= 0``), as the constraint-aware BO gets
them. The runner still re-checks every stimulus with ``space.check`` before it is delivered: that check
is the harness' safety gate for plain user optimizers, whose proposals are otherwise unprojected.

:class:`FlakyOptimizer` misbehaves on purpose (unsafe proposals, a crash, a hang, a dying worker) so the
tests can show the harness records it instead of losing the benchmark.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ConfigError, OptimizerError
from bfm_stim.optim import Optimizer, OptimizerSettings, Outcome, make, registry
from bfm_stim.space import Stimulus, StimulusSpace
from loops.benchmark.config import EXTERNAL, OptimizerEntry
from loops.benchmark.patients import load_object

__all__ = ["make_optimizer", "OptunaOptimizer", "OptunaSettings", "NevergradOptimizer", "NevergradSettings",
           "FlakyOptimizer", "PlainAdapter", "SURROGATE_OPTIMIZERS", "ENTRY_POINT_GROUP"]

log = get_logger("loops.benchmark.plugins")
SURROGATE_OPTIMIZERS = ("gradient", "guided", "egreedy")
ENTRY_POINT_GROUP = "bfm_stim.optimizers"


def _stimulus(space: StimulusSpace, values: Mapping[str, Any]) -> Stimulus:
    """A stimulus of ``space`` from parameter values (fixed parameters at their single value)."""
    kw = {}
    for p in space.parameters:
        kw[p.name] = values[p.name] if p.name in values else (p.choices[0] if p.kind == "categorical" else p.low)
    return Stimulus(space.kind, **kw)


def _same(a: Stimulus, b: Stimulus) -> bool:
    da, db = a.to_dict(), b.to_dict()
    for k, v in da.items():
        w = db.get(k)
        if isinstance(v, float) and isinstance(w, float):
            if not math.isclose(v, w, rel_tol=1e-6, abs_tol=1e-9):
                return False
        elif v != w:
            return False
    return True


# --- Optuna -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OptunaSettings(OptimizerSettings):
    """Optuna sampler settings.

    Args:
        sampler: ``"tpe"`` or ``"gp"``.
        n_startup_trials: Random trials before the model (8, like ``bo``'s ``n_init``).
        constraints: Tell side effects as constraints (``severity - side_effect_threshold``).
    """

    sampler: str = "tpe"
    n_startup_trials: int = 8
    constraints: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        from bfm_stim.exceptions import ValidationError

        if self.sampler not in ("tpe", "gp"):
            raise ValidationError("sampler", self.sampler, "'tpe' or 'gp'")
        if isinstance(self.n_startup_trials, bool) or not isinstance(self.n_startup_trials, int) \
                or self.n_startup_trials < 1:
            raise ValidationError("n_startup_trials", self.n_startup_trials, "an integer >= 1")


class OptunaOptimizer(Optimizer):
    """Optuna's TPE or GP sampler behind the ask/tell interface (in-memory study, minimize)."""

    Settings = OptunaSettings
    name = "optuna"

    def _setup(self) -> None:
        try:
            import optuna
        except ImportError:
            raise ConfigError("optuna-tpe / optuna-gp need Optuna: pip install 'bfm-stim[external]'") from None
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # not its greenlet notice per study
        st: OptunaSettings = self.settings  # type: ignore[assignment]
        # Optuna >= 5: constraints set on the trial (set_constraint); 4.x: a constraints_func reading user attrs
        self._native = hasattr(optuna.trial.Trial, "set_constraint")
        cons = (lambda ft: ft.user_attrs.get("constraint", (0.0,))) if st.constraints and not self._native else None
        if st.sampler == "tpe":
            sampler = optuna.samplers.TPESampler(seed=st.seed, n_startup_trials=st.n_startup_trials,
                                                 constraints_func=cons)
        else:
            sampler = optuna.samplers.GPSampler(seed=st.seed, n_startup_trials=st.n_startup_trials,
                                                constraints_func=cons)
        self._study = optuna.create_study(direction="minimize", sampler=sampler)
        self._dists = {}
        for p in self.space.parameters:
            if p.fixed:
                continue
            if p.kind == "categorical":
                self._dists[p.name] = optuna.distributions.CategoricalDistribution(list(p.choices))
            elif p.kind == "integer":
                self._dists[p.name] = optuna.distributions.IntDistribution(int(p.low), int(p.high), log=p.scale == "log")
            else:
                self._dists[p.name] = optuna.distributions.FloatDistribution(p.low, p.high, log=p.scale == "log")
        self._asked: dict[int, tuple[Any, Stimulus]] = {}

    def _propose(self, n: int) -> tuple[torch.Tensor, list[Any]]:
        U, tags = [], []
        for _ in range(n):
            trial = self._study.ask(self._dists)
            s = _stimulus(self.space, trial.params)
            self._asked[trial.number] = (trial, s)
            U.append(self.space.to_unit([s])[0])
            tags.append({"optuna_trial": trial.number})
        return torch.stack(U).clamp(0.0, 1.0), tags

    def _delivered_params(self, s: Stimulus) -> dict[str, Any]:
        out = {}
        for name, d in self._dists.items():
            v = getattr(s, name)
            if hasattr(d, "choices"):
                out[name] = v
            else:
                out[name] = type(d.low)(min(max(v, d.low), d.high))
        return out

    def _observe(self, stimuli: list[Stimulus], outcomes: list[Outcome], tags: list[Any]) -> None:
        import optuna

        thr = self.settings.side_effect_threshold
        for s, o, tag in zip(stimuli, outcomes, tags):
            cons = ((o.severity or 0.0) - thr,)
            use = self.settings.constraints  # type: ignore[attr-defined]
            asked = self._asked.pop(tag["optuna_trial"], None) if isinstance(tag, dict) else None
            if asked is not None and _same(asked[1], s):
                if use and self._native:
                    asked[0].set_constraint("side_effect", cons[0])
                elif use:
                    asked[0].set_user_attr("constraint", cons)
                self._study.tell(asked[0], o.cost)
                continue
            if asked is not None:  # projected onto the safe set: what was suggested was never measured
                self._study.tell(asked[0], state=optuna.trial.TrialState.FAIL)
            kw: dict[str, Any] = {}
            if use and self._native:
                kw["constraints"] = {"side_effect": cons[0]}
            elif use:
                kw["user_attrs"] = {"constraint": cons}
            self._study.add_trial(optuna.trial.create_trial(
                params=self._delivered_params(s), distributions=self._dists, value=o.cost, **kw))


# --- Nevergrad ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NevergradSettings(OptimizerSettings):
    """Nevergrad settings: ``method`` (a name of ``ng.optimizers.registry``), ``budget`` (its planned trials).

    ``NGOpt`` (Nevergrad's own default) selected a COBYLA-based method whose ask hung for > 300 s in 5-D
    at budget 40 on this machine (scipy 1.17), so the default is ``TwoPointsDE``.
    """

    method: str = "TwoPointsDE"
    budget: int = 40
    constraints: bool = True


class NevergradOptimizer(Optimizer):
    """A Nevergrad optimizer on the space's unit cube (categoricals decoded by the space)."""

    Settings = NevergradSettings
    name = "nevergrad"

    def _setup(self) -> None:
        try:
            import nevergrad as ng
        except ImportError:
            raise ConfigError("nevergrad needs Nevergrad: pip install 'bfm-stim[external]'") from None
        st: NevergradSettings = self.settings  # type: ignore[assignment]
        if st.method not in ng.optimizers.registry:
            raise ConfigError(f"nevergrad method={st.method!r}; expected a name of nevergrad.optimizers.registry")
        param = ng.p.Array(shape=(self.space.dim,), lower=0.0, upper=1.0)
        param.random_state = np.random.RandomState(st.seed)
        self._opt = ng.optimizers.registry[st.method](parametrization=param, budget=st.budget, num_workers=1)
        self._asked: dict[int, Any] = {}
        self._n = 0

    def _propose(self, n: int) -> tuple[torch.Tensor, list[Any]]:
        U, tags = [], []
        for _ in range(n):
            cand = self._opt.ask()
            self._asked[self._n] = cand
            U.append(torch.as_tensor(np.asarray(cand.value, dtype=np.float64)))
            tags.append({"nevergrad_ask": self._n})
            self._n += 1
        return torch.stack(U).clamp(0.0, 1.0), tags

    def _observe(self, stimuli: list[Stimulus], outcomes: list[Outcome], tags: list[Any]) -> None:
        thr = self.settings.side_effect_threshold
        for s, o, tag in zip(stimuli, outcomes, tags):
            cand = self._asked.pop(tag["nevergrad_ask"], None) if isinstance(tag, dict) else None
            u = self.space.to_unit([s])[0].clamp(0, 1).numpy()
            if cand is None or not np.allclose(np.asarray(cand.value), u, atol=1e-6):
                cand = self._opt.parametrization.spawn_child(new_value=u)
            cv = [(o.severity or 0.0) - thr] if self.settings.constraints else None  # type: ignore[attr-defined]
            self._opt.tell(cand, o.cost, constraint_violation=cv)


# --- plain user objects and the flaky test optimizer ---------------------------------------------------
class PlainAdapter:
    """A plain ``ask() / tell(stimulus, outcome) / recommend()`` object seen through ``ask(n)``/``tell(list, list)``."""

    def __init__(self, obj: Any) -> None:
        for m in ("ask", "tell"):
            if not callable(getattr(obj, m, None)):
                raise ConfigError(f"{type(obj).__name__}: an optimizer needs ask() and tell(stimulus, outcome)")
        self.obj = obj
        self._best: tuple[float, Stimulus] | None = None
        self.settings = None

    def ask(self, n: int = 1) -> list[Stimulus]:
        return [self.obj.ask() for _ in range(n)]

    def tell(self, stimuli: list[Stimulus], outcomes: list[Outcome]) -> None:
        for s, o in zip(stimuli, outcomes):
            self.obj.tell(s, o)
            if not o.has_side_effect or (o.severity or 0.0) < 0.5:
                if self._best is None or o.cost < self._best[0]:
                    self._best = (o.cost, s)

    def recommend(self) -> Stimulus | None:
        if callable(getattr(self.obj, "recommend", None)):
            return self.obj.recommend()
        return None if self._best is None else self._best[1]


class FlakyOptimizer:
    """A deliberately unreliable plain optimizer for the harness' tests (random search otherwise).

    Args:
        space: The space.
        seed: RNG seed.
        unsafe_every: Every k-th ask proposes an out-of-bounds, over-limit stimulus (0: never).
        crash_at: Raise ``RuntimeError`` on this ask (1-based; 0: never).
        hang_at: Sleep ``hang_s`` s on this ask (0: never), for the timeout.
        hang_s: Seconds to sleep.
        kill_worker_once: A file path: on the first ask, if the file does not exist, create it and kill
            the worker process (``os._exit``), as a crashed worker would (""): never).
    """

    def __init__(self, space: StimulusSpace, *, seed: int = 0, unsafe_every: int = 3, crash_at: int = 0,
                 hang_at: int = 0, hang_s: float = 3600.0, kill_worker_once: str = "") -> None:
        self.space, self.rng = space, np.random.default_rng(seed)
        self.unsafe_every, self.crash_at, self.hang_at, self.hang_s = unsafe_every, crash_at, hang_at, hang_s
        self.kill_worker_once = kill_worker_once
        self.k = 0

    def ask(self) -> Stimulus:
        self.k += 1
        if self.kill_worker_once and not Path(self.kill_worker_once).exists():
            Path(self.kill_worker_once).write_text(f"killed pid {os.getpid()}\n")
            os._exit(13)
        if self.crash_at and self.k == self.crash_at:
            raise RuntimeError(f"FlakyOptimizer: deliberate crash on ask {self.k}")
        if self.hang_at and self.k == self.hang_at:
            time.sleep(self.hang_s)
        s = self.space.from_unit(torch.as_tensor(self.rng.random((1, self.space.dim))))[0]
        if self.unsafe_every and self.k % self.unsafe_every == 0 and self.space.kind == "electrical":
            p = self.space.param("amplitude_ma")
            return s.with_(amplitude_ma=2.0 * p.high + 1.0, pulse_width_us=self.space.param("pulse_width_us").high)
        return self.space.project_safe(s)

    def tell(self, stimulus: Stimulus, outcome: Outcome) -> None:
        pass


# --- resolution -------------------------------------------------------------------------------------
def _entry_point(name: str) -> Any:
    from importlib.metadata import entry_points

    eps = {e.name: e for e in entry_points(group=ENTRY_POINT_GROUP)}
    if name not in eps:
        raise ConfigError(f"optimizer 'ep:{name}': no entry point {name!r} in group {ENTRY_POINT_GROUP!r}; "
                          f"installed: {sorted(eps)}")
    return eps[name].load()


def _from_class(cls: Any, space: StimulusSpace, settings: dict[str, Any], seed: int, cost_model: Any) -> Any:
    if isinstance(cls, type) and issubclass(cls, Optimizer):
        import inspect

        hooks = {"cost_model": cost_model} if "cost_model" in inspect.signature(cls.__init__).parameters else {}
        return cls(space, cls.Settings.from_dict({**settings, "seed": seed}), **hooks)
    try:
        return PlainAdapter(cls(space, seed=seed, **settings))
    except TypeError as e:
        raise ConfigError(f"{getattr(cls, '__name__', cls)}: cannot build with (space, seed={seed}, "
                          f"**{settings}) ({e})") from None


def make_optimizer(entry: OptimizerEntry, space: StimulusSpace, *, seed: int, budget: int,
                   cost_model: Any = None) -> Any:
    """Build the optimizer an ``[[optimizers]]`` entry names, seeded with ``seed``.

    Raises:
        ConfigError: Unknown name, missing optional library, bad settings.
    """
    name, settings = entry.name, dict(entry.settings)
    if name in registry:
        # a surrogate optimizer on a patient without a cost model gets None, and decides (it may fail: recorded)
        hooks = {"cost_model": cost_model} if name in SURROGATE_OPTIMIZERS else {}
        return make(name, space, settings=settings, seed=seed, **hooks)
    if name in EXTERNAL:
        if name == "nevergrad":
            settings.setdefault("budget", budget)
            return NevergradOptimizer(space, NevergradSettings.from_dict({**settings, "seed": seed}))
        settings["sampler"] = name.split("-")[1]
        return OptunaOptimizer(space, OptunaSettings.from_dict({**settings, "seed": seed}))
    if name.startswith("ep:"):
        return _from_class(_entry_point(name[3:]), space, settings, seed, cost_model)
    if ":" in name:
        return _from_class(load_object(name), space, settings, seed, cost_model)
    raise ConfigError(f"optimizer {entry.label!r}: name={name!r}; expected a registered optimizer "
                      f"{sorted(registry)}, one of {list(EXTERNAL)}, 'module:Class' or 'ep:NAME'")


def settings_of(opt: Any) -> dict[str, Any] | None:
    """The optimizer's resolved settings (for the manifest), when it exposes them."""
    st = getattr(opt, "settings", None)
    if isinstance(st, OptimizerSettings):
        return st.to_dict()
    if isinstance(opt, PlainAdapter):
        return None
    if st is None:
        return None
    raise OptimizerError(f"{type(opt).__name__}.settings is not an OptimizerSettings")
