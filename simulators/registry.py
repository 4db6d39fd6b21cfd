"""Registry of synthetic patients with versioned ids, and seed cohorts.

Ids follow Gymnasium's ``name-vN``: a version is bumped whenever the physics or the parameter
draws change, so a seed always means the same patient under one id. Pretraining and evaluation
cohorts come from disjoint seed ranges, so no evaluation patient is ever seen in pretraining.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from bfm_stim.exceptions import ValidationError
from simulators.patient import Patient

__all__ = ["PatientSpec", "register", "make", "list_patients", "cohort", "cohort_of", "COHORTS", "spec",
           "is_held_out", "held_out_ids"]

# Disjoint seed ranges [start, stop): pretraining, evaluation; the rest is free (tests, demos).
COHORTS: dict[str, range] = {
    "pretrain": range(0, 100_000),
    "eval": range(1_000_000, 1_100_000),
}


@dataclass(frozen=True)
class PatientSpec:
    """A registered patient id: the class and fixed keyword arguments.

    ``held_out`` marks an id of a family kept out of every pretraining corpus (the project's
    out-of-distribution test bed): ``pretrain`` refuses it, and it is never tuned on.
    """

    id: str
    entry_point: Callable[..., Patient]
    description: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    held_out: bool = False


_REGISTRY: dict[str, PatientSpec] = {}


def register(id: str, entry_point: Callable[..., Patient], description: str, *, held_out: bool = False,
             **kwargs: Any) -> None:
    """Register ``id`` (``name-vN``) for ``entry_point(seed, **kwargs)``; ``held_out=True`` keeps it out of pretraining."""
    if id in _REGISTRY:
        raise ValidationError("id", id, "an id not registered yet")
    _REGISTRY[id] = PatientSpec(id, entry_point, description, dict(kwargs), bool(held_out))


def spec(id: str) -> PatientSpec:
    """The registered :class:`PatientSpec` of ``id``."""
    if id not in _REGISTRY:
        raise ValidationError("id", id, f"one of {sorted(_REGISTRY)}")
    return _REGISTRY[id]


def is_held_out(id: str) -> bool:
    """Whether ``id`` belongs to a family held out of every pretraining corpus (unregistered ids: False)."""
    s = _REGISTRY.get(id)
    return bool(s is not None and s.held_out)


def held_out_ids() -> list[str]:
    """Every registered id kept out of pretraining."""
    return [s.id for s in _REGISTRY.values() if s.held_out]


def list_patients() -> list[tuple[str, str]]:
    """(id, one-line description) of every registered patient."""
    return [(s.id, s.description) for s in _REGISTRY.values()]


def make(id: str, seed: int = 0, *, cohort: str | None = None, **overrides: Any) -> Patient:
    """Build patient ``id`` for ``seed``; deterministic given both.

    Args:
        id: A registered id (see :func:`list_patients`).
        seed: Patient seed (>= 0).
        cohort: If given (``"pretrain"`` or ``"eval"``), refuse a seed outside that cohort.
        **overrides: Family options (``regime``, ``n_channels``, ``n_nodes``, ``line_noise_hz``, ...).
    """
    if id not in _REGISTRY:
        raise ValidationError("id", id, f"one of {sorted(_REGISTRY)}")
    if cohort is not None:
        got = cohort_of(seed)
        if got != cohort:
            raise ValidationError("seed", seed, f"a seed of the {cohort!r} cohort {COHORTS.get(cohort)}",
                                  hint=f"it belongs to {got!r}")
    spec = _REGISTRY[id]
    kw = {**spec.kwargs, **overrides}
    return spec.entry_point(seed, patient_id=id, **kw)


def cohort(name: str, n: int, *, offset: int = 0) -> list[int]:
    """The first ``n`` seeds of cohort ``name`` (from ``offset``): ``"pretrain"`` or ``"eval"``."""
    if name not in COHORTS:
        raise ValidationError("cohort", name, f"one of {sorted(COHORTS)}")
    r = COHORTS[name]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or offset < 0 or offset + n > len(r):
        raise ValidationError("n", n, f"an integer with 0 <= offset + n <= {len(r)}")
    return list(r[offset:offset + n])


def cohort_of(seed: int) -> str | None:
    """Name of the cohort that owns ``seed`` (None for seeds outside every cohort)."""
    for name, r in COHORTS.items():
        if seed in r:
            return name
    return None


def _register_builtins() -> None:
    from simulators.bg_beta.patient import BGBeta
    from simulators.cortex_jr.patient import CortexJR

    register("cortex-jr-v0", CortexJR, CortexJR.description + " (healthy by default)")
    register("cortex-jr-epileptic-v0", CortexJR, "Jansen–Rit network with an epileptogenic zone (spike-wave)",
             regime="pathological")
    register("bg-beta-v0", BGBeta, BGBeta.description + " (parkinsonian)")
    register("bg-beta-healthy-v0", BGBeta, "STN–GPe–cortex loops, healthy regime (reference)", regime="healthy")
    register("bg-beta-v1", BGBeta, "STN–GPe–cortex loops with slowly fluctuating loop gain: parkinsonian beta in "
             "physiological bursts (100 ms to > 1 s, Tinkhauser 2017), 4/8-contact DBS lead, hidden capsule side effect",
             burst_model="slow-gain")
    register("bg-beta-healthy-v1", BGBeta, "STN–GPe–cortex loops v1 (slow loop-gain fluctuations), healthy regime",
             regime="healthy", burst_model="slow-gain")

    from simulators.hopf_net.patient import HopfNet  # the held-out family: never in a pretraining corpus

    register("hopf-net-v0", HopfNet, HopfNet.description, held_out=True)
    register("hopf-net-healthy-v0", HopfNet, "Stuart–Landau whole-brain network, healthy regime (reference)",
             held_out=True, regime="healthy")

    from simulators.epileptor.patient import Epileptor

    register("epileptor-v0", Epileptor, Epileptor.description + " (epileptogenic and propagation zones)")
    register("epileptor-healthy-v0", Epileptor, "Epileptor network, every region below seizure threshold (reference)",
             regime="healthy")

    from simulators.wilson_cowan.patient import WilsonCowan

    register("wilson-cowan-v0", WilsonCowan, WilsonCowan.description + " (gamma focus)")
    register("wilson-cowan-healthy-v0", WilsonCowan, "Wilson–Cowan cortical sheet, healthy regime (reference)",
             regime="healthy")

    from simulators.wendling.patient import Wendling

    register("wendling-v0", Wendling, Wendling.description + " (irritative zone)")
    register("wendling-healthy-v0", Wendling, "Wendling hippocampal network, every population at normal dendritic "
             "inhibition (reference)", regime="healthy")


_register_builtins()
