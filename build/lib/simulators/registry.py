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

__all__ = ["PatientSpec", "register", "make", "list_patients", "cohort", "cohort_of", "COHORTS"]

# Disjoint seed ranges [start, stop): pretraining, evaluation; the rest is free (tests, demos).
COHORTS: dict[str, range] = {
    "pretrain": range(0, 100_000),
    "eval": range(1_000_000, 1_100_000),
}


@dataclass(frozen=True)
class PatientSpec:
    """A registered patient id: the class and fixed keyword arguments."""

    id: str
    entry_point: Callable[..., Patient]
    description: str
    kwargs: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, PatientSpec] = {}


def register(id: str, entry_point: Callable[..., Patient], description: str, **kwargs: Any) -> None:
    """Register ``id`` (``name-vN``) for ``entry_point(seed, **kwargs)``."""
    if id in _REGISTRY:
        raise ValidationError("id", id, "an id not registered yet")
    _REGISTRY[id] = PatientSpec(id, entry_point, description, dict(kwargs))


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


_register_builtins()
