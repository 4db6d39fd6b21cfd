"""CMA-ES (the ``cma`` package) as the standard black-box baseline.

Search coordinates: CMA-ES runs in the box coordinates ``z ∈ [0, 1]^d`` of
:class:`~bfm_stim.optim.safe_set.SafeBoxMap` (``cma`` bound handling keeps ``z`` in the box), so
every candidate maps into the known safe set; the amplitude coordinate is the fraction of the
largest safe amplitude at the candidate's pulse width and contact.

Categorical contact (or modality): one continuous coordinate, rounded — ``floor(z * m)`` picks
among the ``m`` contacts that have a safe stimulus. The objective is piecewise constant along that
coordinate, which CMA-ES tolerates (it ranks, it does not differentiate).

Batching: ``ask(n)`` hands out candidates of the current generation; when all are handed out and
not yet told, further asks draw more samples from the same distribution. The distribution is
updated once ``popsize`` of the current generation's candidates have been told (in the order
told); results of an earlier generation, and told stimuli CMA-ES did not propose (e.g. the initial
design), are recorded but do not update it.

State: ``cma`` keeps its state in numpy arrays and draws from the global numpy RNG. Every call into
``cma`` runs with its own numpy RNG state swapped in (the caller's is restored), and the saved state
is the log of calls (seed, asks, tells with their fitness values); loading replays the log, which
reproduces the strategy bit for bit.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from bfm_stim.exceptions import OptimizerError, ValidationError
from bfm_stim.optim.base import Optimizer, OptimizerSettings, Outcome
from bfm_stim.optim.registry import register
from bfm_stim.space import Stimulus

__all__ = ["CMAESSettings", "CMAES"]


@dataclass(frozen=True)
class CMAESSettings(OptimizerSettings):
    """Settings of ``cmaes``.

    Args:
        seed: Seed of CMA-ES's sampling.
        sigma0: Initial step size in box coordinates (the box is [0, 1] per parameter).
        popsize: Population size λ; ``None``: CMA-ES's default ``4 + floor(3 ln d)``.
        x0: Initial mean in box coordinates (``d`` numbers in [0, 1]); ``None``: the centre.
    """

    sigma0: float = 0.3
    popsize: int | None = None
    x0: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.sigma0, bool) or not isinstance(self.sigma0, (int, float)) or not 0 < self.sigma0 <= 1:
            raise ValidationError("sigma0", self.sigma0, "a number in (0, 1] (box coordinates)")
        if self.popsize is not None and (isinstance(self.popsize, bool) or not isinstance(self.popsize, int)
                                         or self.popsize < 2):
            raise ValidationError("popsize", self.popsize, "an integer >= 2 or None")
        if self.x0 is not None:
            x0 = tuple(float(v) for v in self.x0)
            if not all(0.0 <= v <= 1.0 for v in x0):
                raise ValidationError("x0", self.x0, "numbers in [0, 1] (box coordinates)")
            object.__setattr__(self, "x0", x0)


@register("cmaes")
class CMAES(Optimizer):
    """CMA-ES over the safe-set box coordinates (``cma`` package)."""

    Settings = CMAESSettings
    settings: CMAESSettings

    def _setup(self) -> None:
        d = self.space.dim
        if d < 2:
            raise OptimizerError(f"cmaes needs at least 2 free parameters, the space has {d}; use 'bo' or 'sobol'")
        x0 = self.settings.x0
        if x0 is not None and len(x0) != d:
            raise ValidationError("x0", x0, f"{d} numbers (one per free parameter)")
        self._es: Any = None
        self._np_state: Any = None
        self._log: list[list[Any]] = []
        self._gen = 0
        self._pool: list[np.ndarray] = []   # candidates of the current generation
        self._next = 0                      # next pool index to hand out
        self._told: list[tuple[int, float]] = []  # (pool index, fitness) of the current generation

    @contextlib.contextmanager
    def _rng(self) -> Iterator[None]:
        outer = np.random.get_state()
        try:
            if self._np_state is not None:
                np.random.set_state(self._np_state)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            self._np_state = np.random.get_state()
            np.random.set_state(outer)

    def _init_es(self) -> None:
        import cma

        d = self.space.dim
        x0 = list(self.settings.x0) if self.settings.x0 is not None else [0.5] * d
        opts: dict[str, Any] = {"bounds": [0.0, 1.0], "seed": self.settings.seed + 1, "verbose": -9,
                                "verb_log": 0, "verb_disp": 0, "verb_filenameprefix": "", "tolfun": 0.0,
                                "tolx": 0.0, "tolflatfitness": 10**9, "tolstagnation": 10**9}
        if self.settings.popsize is not None:
            opts["popsize"] = self.settings.popsize
        with self._rng():
            self._es = cma.CMAEvolutionStrategy(x0, self.settings.sigma0, opts)

    def _sample_generation(self) -> None:
        if self._es is None:
            self._init_es()
        with self._rng():
            xs = self._es.ask()
        self._pool += [np.asarray(x, dtype=np.float64) for x in xs]

    def _update(self, told: list[tuple[int, float]]) -> None:
        with self._rng():
            self._es.tell([self._pool[k] for k, _ in told], [f for _, f in told])
        self._gen += 1
        self._pool, self._next, self._told = [], 0, []

    def _propose(self, n: int) -> tuple[torch.Tensor, list[Any]]:
        rows, tags = [], []
        for _ in range(n):
            if self._next >= len(self._pool):
                self._sample_generation()
                self._log.append(["ask"])
            rows.append(self._pool[self._next])
            tags.append({"gen": self._gen, "k": self._next})
            self._next += 1
        Z = torch.from_numpy(np.stack(rows))
        return self.safe_map(Z), tags

    def _observe(self, stimuli: list[Stimulus], outcomes: list[Outcome], tags: list[Any]) -> None:
        if self._es is None:
            return
        lam = self._es.popsize
        for o, t in zip(outcomes, tags):
            if not isinstance(t, dict) or t.get("gen") != self._gen or "k" not in t:
                continue
            self._told.append((int(t["k"]), o.cost))
            if len(self._told) >= lam:
                told = self._told[:lam]
                self._log.append(["tell", [k for k, _ in told], [f for _, f in told]])
                self._update(told)

    @property
    def generation(self) -> int:
        """Number of completed CMA-ES generations."""
        return self._gen

    def _impl_state(self) -> dict[str, Any]:
        return {"log": self._log, "next": self._next, "told": [list(kf) for kf in self._told]}

    def _load_impl_state(self, state: Mapping[str, Any]) -> None:
        for op in state["log"]:
            if op[0] == "ask":
                self._sample_generation()
            elif op[0] == "tell":
                self._update([(int(k), float(f)) for k, f in zip(op[1], op[2])])
            else:
                raise OptimizerError(f"cmaes state: unknown log entry {op[0]!r}")
        self._log = [list(op) for op in state["log"]]
        self._next = int(state["next"])
        self._told = [(int(k), float(f)) for k, f in state["told"]]
