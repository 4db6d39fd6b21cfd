"""The patient protocol the harness benchmarks on, and the adapter for the simulators' patients.

A benchmark patient (:class:`BenchPatient`) is anything with:

* ``id: str`` and ``seed: int`` — who it is;
* ``stimulus_space() -> StimulusSpace`` — what may be searched (contacts, bounds, safety limits);
* ``simulate(stimulus, *, trial: int) -> float`` — the **measured** cost of one trial (lower is better)
  under noise realization ``trial`` (same ``trial``, same noise: the harness gives every optimizer the
  same realizations);
* ``side_effect(stimulus, *, trial: int) -> (severity in [0, 1], reported: bool)`` for that trial;
* what the oracle needs, never shown to an optimizer: ``oracle_cost(stimuli) -> (n,) array`` — the
  expected (noise-free) cost of each stimulus, ``None`` meaning stimulation off — and
  ``oracle_optimum() -> Stimulus`` — the best feasible stimulus (safe, no side effect);
* optionally ``cost_model(seed) -> CostModel | None`` — a differentiable prediction of the cost for
  the surrogate optimizers (``gradient``, ``guided``, ``egreedy``), or ``None``.

:class:`SimulatedPatient` adapts a registered simulator (``simulators.make(id, seed)``) with the
configured objective; :mod:`loops.benchmark.tabular` serves a table of measured responses; users' own
classes are named ``module:Class`` in the TOML (see ``examples/user_patient.py``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ConfigError
from bfm_stim.space import Stimulus, StimulusSpace
from loops.benchmark.cells import PatientRef
from loops.benchmark.config import ObjectiveConfig, OracleConfig

__all__ = ["BenchPatient", "SimulatedPatient", "build_patient", "load_object", "signature", "PROBES"]

log = get_logger("loops.benchmark.patients")
# Unit-cube points (first coordinate is the contact) measured with fixed noise to fingerprint a patient's objective.
PROBES = ((0.0, 0.5, 0.5, 0.5, 0.5), (1.0, 0.25, 0.75, 0.25, 0.5), (0.5, 0.75, 0.25, 0.75, 0.5))
PROBE_TRIAL = 777_000


@runtime_checkable
class BenchPatient(Protocol):
    """What the harness needs from a patient (see the module docs for each member's contract)."""

    id: str
    seed: int

    def stimulus_space(self) -> StimulusSpace: ...

    def simulate(self, stimulus: Stimulus, *, trial: int) -> float: ...

    def side_effect(self, stimulus: Stimulus, *, trial: int) -> tuple[float, bool]: ...

    def oracle_cost(self, stimuli: Sequence[Stimulus | None]) -> np.ndarray: ...

    def oracle_optimum(self) -> Stimulus: ...


def load_object(spec: str) -> Any:
    """``module:Attr`` -> the attribute (a class or a factory).

    Raises:
        ConfigError: The module cannot be imported or has no such attribute.
    """
    mod, _, attr = spec.partition(":")
    if not mod or not attr:
        raise ConfigError(f"{spec!r}: expected 'module:Class'")
    try:
        obj: Any = importlib.import_module(mod)
    except ImportError as e:
        raise ConfigError(f"{spec!r}: cannot import module {mod!r} ({e})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{spec!r}: module {mod!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


class SimulatedPatient:
    """A registered simulator patient scored by the configured objective (the :class:`BenchPatient` protocol).

    Objectives: ``latent`` — whitened squared distance between the BFM encoder latents of the
    response and the latent of the patient's healthy twin (:func:`loops.offline.make_target`), the
    surrogate optimizers getting the BFM's predicted cost; ``healthy_reference`` — the simulators'
    band-power distance to the healthy twin; ``bandpower`` — log power in ``band_hz`` (Hz). Costs are
    measured over the stimulation window (``simulators.oracle.SETTLE_S``).
    """

    def __init__(self, family: str, seed: int, objective: ObjectiveConfig, oracle: OracleConfig) -> None:
        import simulators
        from loops.offline import checkpoint_path, file_digest, make_target, patient_surrogate

        self.patient = simulators.make(family, seed=seed)
        self.id, self.seed = family, int(seed)
        self._oracle_cfg = oracle
        self._surrogate = self._context = self._forecast = None
        self.checkpoint_digest: str | None = None  # the checkpoint behind the surrogate, when there is one
        if objective.kind == "latent":
            ckpt = checkpoint_path(objective.checkpoint or None)
            if ckpt is None or not ckpt.is_file():
                raise ConfigError(f"objective.kind = 'latent' needs the foundation-model checkpoint; not found: {ckpt}")
            sur, rest = patient_surrogate(self.patient, ckpt)
            tgt = make_target("healthy", self.patient, sur, ckpt_tag=file_digest(ckpt))
            self._surrogate, self._forecast = sur, tgt.forecast
            self._context = rest[:, -sur.cfg.max_patches * sur.cfg.patch_len:]
            self.checkpoint_digest = file_digest(ckpt)
            self.objective = tgt.measured
            self.description = f"latent target (BFM encoder, checkpoint {file_digest(ckpt)})"
        elif objective.kind == "healthy_reference":
            self.objective = simulators.HealthyReferenceObjective()
            self.description = "band-power distance to the healthy twin (simulators.HealthyReferenceObjective)"
        else:
            lo, hi = objective.band_hz
            spec = f"bandpower:{lo:g}-{hi:g}" + (f",energy={objective.energy_weight:g}" if objective.energy_weight else "")
            ckpt = checkpoint_path(objective.checkpoint or None)
            sur = rest = None
            if ckpt is not None and ckpt.is_file():  # the surrogate optimizers get the BFM's biomarker heads
                sur, rest = patient_surrogate(self.patient, ckpt)
            tgt = make_target(spec, self.patient, sur)
            self.objective = tgt.measured
            if sur is not None:
                self._surrogate, self._forecast = sur, tgt.forecast
                self._context = rest[:, -sur.cfg.max_patches * sur.cfg.patch_len:]
                self.checkpoint_digest = file_digest(ckpt)
            self.description = tgt.description
        self._optimum: Stimulus | None = None

    def stimulus_space(self) -> StimulusSpace:
        return self.patient.stimulus_space()

    def trial(self, stimulus: Stimulus, *, trial: int) -> tuple[float, float, bool]:
        """(measured cost, side-effect severity, reported) of one trial: :func:`loops.offline.run_trial`."""
        from loops.offline import run_trial

        out = run_trial(self.patient, stimulus, self.objective, trial=trial)
        return out.cost, float(out.side_effect), bool(out.metadata["side_effect_reported"])

    def simulate(self, stimulus: Stimulus, *, trial: int) -> float:
        return self.trial(stimulus, trial=trial)[0]

    def side_effect(self, stimulus: Stimulus, *, trial: int) -> tuple[float, bool]:
        sev, rep = self.patient.side_effect(stimulus, trial=trial)
        return float(sev), bool(rep)

    def oracle_cost(self, stimuli: Sequence[Stimulus | None]) -> np.ndarray:
        """(n,) mean cost over ``oracle.repeats`` fixed noise realizations (trials 50 000 ...; paired)."""
        from simulators.oracle import SETTLE_S, _evaluate

        out = np.empty(len(stimuli))
        on = [i for i, s in enumerate(stimuli) if s is not None]
        off = [i for i, s in enumerate(stimuli) if s is None]
        r = self._oracle_cfg.repeats
        if on:  # one batch; each row equals simulators.oracle_cost of that stimulus alone (checked in the tests)
            out[on] = _evaluate(self.patient, [stimuli[i] for i in on], self.objective, r, SETTLE_S, 50_000)
        if off:
            out[off] = _evaluate(self.patient, [None], self.objective, r, SETTLE_S, 50_000)[0]
        return out

    def oracle_optimum(self) -> Stimulus:
        """Best feasible stimulus of ``simulators.oracle_optimum`` (grid from ``oracle.grid``; cached on disk)."""
        import simulators

        if self._optimum is None:
            o = simulators.oracle_optimum(self.patient, self.objective, **dict(self._oracle_cfg.grid))
            self._optimum = Stimulus.from_dict(o["stimulus"])
            self.oracle_grid_cost = float(o["cost"])  # the grid search's own (biased low) estimate
        return self._optimum

    def cost_model(self, seed: int) -> Any:
        """A fresh :class:`~bfm_stim.optim.SurrogateCost` (latent objective), else ``None``."""
        if self._surrogate is None:
            return None
        from bfm_stim.optim import SurrogateCost

        return SurrogateCost(self._surrogate, self._context, self._forecast, seed=seed)


def build_patient(ref: PatientRef, objective: ObjectiveConfig, oracle: OracleConfig) -> Any:
    """The patient a :class:`PatientRef` names, checked against the protocol."""
    if ref.kind == "sim":
        return SimulatedPatient(ref.target, ref.seed, objective, oracle)
    if ref.kind == "tabular":
        from loops.benchmark.tabular import TabularPatient

        return TabularPatient.from_csv(ref.target, seed=ref.seed)
    cls = load_object(ref.target)
    try:
        p = cls(seed=ref.seed, **dict(ref.settings))
    except TypeError as e:
        raise ConfigError(f"{ref.target}: cannot build the patient with seed={ref.seed} and settings "
                          f"{dict(ref.settings)} ({e})") from None
    missing = [m for m in ("stimulus_space", "simulate", "side_effect", "oracle_cost", "oracle_optimum")
               if not callable(getattr(p, m, None))]
    if missing:
        raise ConfigError(f"{ref.target} does not implement the patient protocol: missing {missing} "
                          "(see loops.benchmark.patients.BenchPatient)")
    return p


def measure(p: Any, stimulus: Stimulus, trial: int) -> tuple[float, float, bool]:
    """(cost, severity, reported) of one trial of any protocol patient."""
    if hasattr(p, "trial"):
        return p.trial(stimulus, trial=trial)
    cost = float(p.simulate(stimulus, trial=trial))
    sev, rep = p.side_effect(stimulus, trial=trial)
    return cost, float(sev), bool(rep)


def signature(p: Any) -> dict[str, Any]:
    """Measured costs at fixed probe stimuli and fixed noise, and their digest.

    Two runs whose signatures match optimized the same objective on the same patient.
    """
    space = p.stimulus_space()
    import torch

    pts = torch.tensor([list(u) + [0.5] * max(0, space.dim - len(u)) for u in PROBES], dtype=torch.float64)
    stims = [space.project_safe(s) for s in space.from_unit(pts[:, :space.dim])]
    costs = [float(measure(p, s, PROBE_TRIAL + i)[0]) for i, s in enumerate(stims)]
    if not all(math.isfinite(c) for c in costs):
        raise ConfigError(f"patient {getattr(p, 'id', p)}: non-finite cost at a probe stimulus: {costs}")
    digest = hashlib.sha256(json.dumps([f"{c:.10e}" for c in costs]).encode()).hexdigest()[:16]
    return {"probes": [s.to_dict() for s in stims], "costs": costs, "digest": digest}
