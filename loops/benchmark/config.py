"""A benchmark declared in TOML: frozen dataclasses, checked on construction.

Layout of a config file (every table optional except ``[[optimizers]]``)::

    [benchmark]
    name = "default"
    budget = 40                # trials per run
    seeds = 3                  # optimizer seeds per patient
    seeding = "cell"           # "cell": seeds derived from the cell id; "legacy": bench-optimizers preset

    [cohort]
    families = ["bg-beta-v0", "cortex-jr-epileptic-v0"]
    n_patients = 10            # evaluation-cohort patients, families alternating
    [[cohort.patients]]        # users' patients: a class, or a table of measured responses
    class = "examples.user_patient:QuadraticPatient"
    seeds = [0, 1]
    [[cohort.patients]]
    tabular = "examples/response_map.csv"

    [objective]
    kind = "latent"            # latent (BFM encoder vs the healthy twin) | healthy_reference | bandpower
    band_hz = [13.0, 30.0]     # bandpower only
    energy_weight = 0.0        # bandpower only: + weight x TEED (mA²·Hz·ms per s), less charge wins
    checkpoint = ""            # "" = the shipped checkpoint

    [oracle]
    repeats = 8                # noise realizations per oracle cost
    trial_costs = true         # also the oracle cost of every delivered stimulus
    grid = {}                  # keyword arguments of simulators.oracle_optimum

    [[optimizers]]
    label = "bo"
    name = "bo"                # registered name | optuna-tpe | optuna-gp | nevergrad | module:Class | ep:NAME
    settings = { num_restarts = 2 }

    [executor]
    kind = "local"             # local | ray
    workers = 2                # default: all cores
    max_pending = 64           # Ray: tasks in flight at most
    max_retries = 2            # Ray: retries of a task whose worker died
    cell_timeout_s = 1800.0
    ask_timeout_s = 300.0

    [metrics]
    thresholds = [0.2, 0.1, 0.05, 0.02]
    primary_threshold = 0.05
    bootstrap = 1000
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from bfm_stim.exceptions import ConfigError, ValidationError
from bfm_stim.files import read_toml
from loops.config_files import config_path

__all__ = ["CohortConfig", "PatientEntry", "ObjectiveConfig", "OracleConfig", "OptimizerEntry", "ExecutorConfig",
           "MetricsConfig", "BenchmarkConfig", "load_config", "config_from_dict", "FAMILIES", "EXTERNAL"]

FAMILIES = ("bg-beta-v0", "cortex-jr-epileptic-v0", "cortex-jr-v0", "bg-beta-healthy-v0")  # the original four


def registered_ids() -> tuple[str, ...]:
    """Every patient id in the simulators' registry (the families a cohort may name)."""
    from simulators.registry import list_patients

    return tuple(i for i, _ in list_patients())
EXTERNAL = ("optuna-tpe", "optuna-gp", "nevergrad")
OBJECTIVES = ("latent", "healthy_reference", "bandpower")


def _int(name: str, v: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        raise ValidationError(name, v, f"an integer in [{lo}, {hi if hi is not None else 'inf'}]")
    return v


def _pos(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
        raise ValidationError(name, v, "a finite number > 0")
    return float(v)


def _only(table: str, d: Mapping[str, Any], allowed: set[str]) -> None:
    bad = sorted(set(d) - allowed)
    if bad:
        raise ConfigError(f"[{table}]: unknown key(s) {bad}; allowed: {sorted(allowed)}")


@dataclass(frozen=True)
class PatientEntry:
    """A user's patient: ``cls`` (``module:Class``) built once per seed, or ``tabular`` (a CSV path).

    Args:
        cls: ``module:Class`` implementing :class:`loops.benchmark.patients.BenchPatient`.
        tabular: CSV of measured responses (:class:`loops.benchmark.tabular.TabularPatient`).
        seeds: Patient seeds (one patient each).
        settings: Keyword arguments of the class (JSON values).
    """

    cls: str = ""
    tabular: str = ""
    seeds: tuple[int, ...] = (0,)
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if bool(self.cls) == bool(self.tabular):
            raise ConfigError("[[cohort.patients]]: give exactly one of class = \"module:Class\" or "
                              f"tabular = \"path.csv\"; got class={self.cls!r}, tabular={self.tabular!r}")
        if self.cls and ":" not in self.cls:
            raise ValidationError("cohort.patients.class", self.cls, "'module:Class'")
        object.__setattr__(self, "seeds", tuple(_int("cohort.patients.seeds[]", s, 0) for s in self.seeds))
        if not self.seeds:
            raise ValidationError("cohort.patients.seeds", [], "at least one seed >= 0")


@dataclass(frozen=True)
class CohortConfig:
    """Simulated evaluation patients (``n_patients``, families alternating) plus users' patients."""

    families: tuple[str, ...] = ("bg-beta-v0", "cortex-jr-epileptic-v0")
    n_patients: int = 10
    offset: int = 0
    patients: tuple[PatientEntry, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "families", tuple(self.families))
        known = registered_ids()
        bad = [f for f in self.families if f not in known]
        if bad:
            raise ValidationError("cohort.families", bad, f"ids among {list(known)} (bfm-stim patients)")
        _int("cohort.n_patients", self.n_patients, 0, 100_000)
        _int("cohort.offset", self.offset, 0, 99_000)
        if self.n_patients and not self.families:
            raise ValidationError("cohort.families", [], "at least one family when n_patients > 0")
        if not self.n_patients and not self.patients:
            raise ConfigError("[cohort]: no patients (n_patients = 0 and no [[cohort.patients]])")


@dataclass(frozen=True)
class ObjectiveConfig:
    """What a trial's cost measures (see :mod:`loops.benchmark.patients`)."""

    kind: str = "latent"
    band_hz: tuple[float, float] = (13.0, 30.0)
    checkpoint: str = ""
    energy_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in OBJECTIVES:
            raise ValidationError("objective.kind", self.kind, f"one of {list(OBJECTIVES)}")
        w = self.energy_weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w < float("inf"):
            raise ValidationError("objective.energy_weight", w, "a finite number >= 0 (cost per mA²·Hz·ms of TEED)")
        if w and self.kind != "bandpower":
            raise ValidationError("objective.energy_weight", w, "0 unless objective.kind = 'bandpower'")
        band = tuple(float(v) for v in self.band_hz)
        if len(band) != 2 or not (0 < band[0] < band[1]):
            raise ValidationError("objective.band_hz", self.band_hz, "[low, high] Hz with 0 < low < high")
        object.__setattr__(self, "band_hz", band)


@dataclass(frozen=True)
class OracleConfig:
    """Ground truth: noise repeats of every oracle cost and the optimum's grid (``oracle_optimum`` kwargs)."""

    repeats: int = 8
    trial_costs: bool = True
    grid: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _int("oracle.repeats", self.repeats, 1, 1000)
        allowed = {"n_amplitude", "frequencies", "pulse_widths", "repeats", "refine_steps", "duration_s"}
        _only("oracle.grid", self.grid, allowed)
        object.__setattr__(self, "grid", {k: (tuple(v) if isinstance(v, list) else v) for k, v in self.grid.items()})


@dataclass(frozen=True)
class OptimizerEntry:
    """One optimizer under test.

    Args:
        label: Name in results and plots (unique).
        name: A registered optimizer (``bfm_stim.optim.registry``), ``optuna-tpe``, ``optuna-gp``,
            ``nevergrad``, ``module:Class`` or ``ep:NAME`` (entry point group ``bfm_stim.optimizers``).
        settings: Settings passed to the optimizer (a table of its Settings fields).
    """

    label: str
    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label or any(c in self.label for c in "/\\ ,"):
            raise ValidationError("optimizers.label", self.label, "a non-empty name without '/', '\\', ',' or spaces")
        if not isinstance(self.name, str) or not self.name:
            raise ValidationError(f"optimizers[{self.label}].name", self.name,
                                  "a registered optimizer, optuna-tpe, optuna-gp, nevergrad, module:Class or ep:NAME")
        if not isinstance(self.settings, Mapping):
            raise ValidationError(f"optimizers[{self.label}].settings", self.settings, "a table")
        object.__setattr__(self, "settings", dict(self.settings))

    def spec(self) -> dict[str, Any]:
        return {"label": self.label, "name": self.name, "settings": dict(self.settings)}


@dataclass(frozen=True)
class ExecutorConfig:
    """Where runs execute (the CLI's ``--executor``/``--workers``/``--address`` override it)."""

    kind: str = "local"
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    address: str = ""
    max_pending: int = 64
    max_retries: int = 2
    cell_timeout_s: float = 1800.0
    ask_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if self.kind not in ("local", "ray"):
            raise ValidationError("executor.kind", self.kind, "'local' or 'ray'")
        _int("executor.workers", self.workers, 1, 4096)
        _int("executor.max_pending", self.max_pending, 1, 1_000_000)
        _int("executor.max_retries", self.max_retries, 0, 100)
        _pos("executor.cell_timeout_s", self.cell_timeout_s)
        _pos("executor.ask_timeout_s", self.ask_timeout_s)


@dataclass(frozen=True)
class MetricsConfig:
    """Regret thresholds (gap-normalized), the headline one, bootstrap resamples."""

    thresholds: tuple[float, ...] = (0.2, 0.1, 0.05, 0.02)
    primary_threshold: float = 0.05
    bootstrap: int = 1000

    def __post_init__(self) -> None:
        th = tuple(_pos("metrics.thresholds[]", t) for t in self.thresholds)
        if not th:
            raise ValidationError("metrics.thresholds", [], "at least one threshold > 0")
        object.__setattr__(self, "thresholds", th)
        if self.primary_threshold not in th:
            raise ValidationError("metrics.primary_threshold", self.primary_threshold, f"one of {list(th)}")
        _int("metrics.bootstrap", self.bootstrap, 10, 1_000_000)


@dataclass(frozen=True)
class BenchmarkConfig:
    """A whole benchmark: cohort × optimizers × seeds at one budget."""

    optimizers: tuple[OptimizerEntry, ...]
    name: str = "benchmark"
    budget: int = 40
    seeds: int = 3
    seeding: str = "cell"
    cohort: CohortConfig = field(default_factory=CohortConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    oracle: OracleConfig = field(default_factory=OracleConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "optimizers", tuple(self.optimizers))
        if not self.optimizers:
            raise ConfigError("no [[optimizers]]: declare at least one (label, name, settings)")
        labels = [o.label for o in self.optimizers]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValidationError("optimizers.label", dup, "unique labels")
        _int("benchmark.budget", self.budget, 1, 100_000)
        _int("benchmark.seeds", self.seeds, 1, 10_000)
        if self.seeding not in ("cell", "legacy"):
            raise ValidationError("benchmark.seeding", self.seeding, "'cell' or 'legacy'")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=list))

    def hash(self) -> str:
        """SHA-256 (16 hex) of what determines the results: everything but the executor."""
        d = self.to_dict()
        d.pop("executor")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def with_executor(self, **changes: Any) -> "BenchmarkConfig":
        return replace(self, executor=replace(self.executor, **{k: v for k, v in changes.items() if v is not None}))


def _table(d: Mapping[str, Any], key: str) -> dict[str, Any]:
    v = d.get(key, {})
    if not isinstance(v, Mapping):
        raise ConfigError(f"[{key}] must be a table, got {type(v).__name__}")
    return dict(v)


def config_from_dict(d: Mapping[str, Any]) -> BenchmarkConfig:
    """Build a :class:`BenchmarkConfig` from parsed TOML; unknown keys raise ``ConfigError`` naming them."""
    _only("top level", d, {"benchmark", "cohort", "objective", "oracle", "optimizers", "executor", "metrics"})
    b = _table(d, "benchmark")
    _only("benchmark", b, {"name", "budget", "seeds", "seeding"})
    c = _table(d, "cohort")
    _only("cohort", c, {"families", "n_patients", "offset", "patients"})
    pats = []
    for i, p in enumerate(c.pop("patients", [])):
        _only(f"cohort.patients[{i}]", p, {"class", "tabular", "seeds", "settings"})
        pats.append(PatientEntry(cls=p.get("class", ""), tabular=p.get("tabular", ""),
                                 seeds=tuple(p.get("seeds", (0,))), settings=dict(p.get("settings", {}))))
    o = _table(d, "objective")
    _only("objective", o, {"kind", "band_hz", "checkpoint", "energy_weight"})
    orc = _table(d, "oracle")
    _only("oracle", orc, {"repeats", "trial_costs", "grid"})
    ex = _table(d, "executor")
    _only("executor", ex, {"kind", "workers", "address", "max_pending", "max_retries", "cell_timeout_s",
                           "ask_timeout_s"})
    m = _table(d, "metrics")
    _only("metrics", m, {"thresholds", "primary_threshold", "bootstrap"})
    opts = []
    for i, e in enumerate(d.get("optimizers", [])):
        if not isinstance(e, Mapping):
            raise ConfigError(f"[[optimizers]] entry {i} must be a table")
        _only(f"optimizers[{i}]", e, {"label", "name", "settings"})
        if "name" not in e:
            raise ConfigError(f"[[optimizers]] entry {i}: missing name (a registered optimizer, optuna-tpe, ...)")
        opts.append(OptimizerEntry(label=e.get("label", e["name"]), name=e["name"], settings=e.get("settings", {})))
    if "families" in c:
        c["families"] = tuple(c["families"])
    if "thresholds" in m:
        m["thresholds"] = tuple(m["thresholds"])
    if "band_hz" in o:
        o["band_hz"] = tuple(o["band_hz"])
    return BenchmarkConfig(optimizers=tuple(opts), **b, cohort=CohortConfig(**c, patients=tuple(pats)),
                           objective=ObjectiveConfig(**o), oracle=OracleConfig(**orc),
                           executor=ExecutorConfig(**ex), metrics=MetricsConfig(**m))


def load_config(path: str | Path) -> BenchmarkConfig:
    """Read and check a benchmark TOML file, or a bundled config by name (``"benchmark-quick"``).

    Raises:
        ConfigError: Missing file, invalid TOML or an unknown key (the message names file and key).
        ValidationError: A value out of range (names the field, the value and the range).
    """
    path = config_path(path, what="benchmark config")
    data = read_toml(path, what="benchmark config")
    try:
        return config_from_dict(data)
    except TypeError as e:  # a wrong type reaching a dataclass
        raise ConfigError(f"{path}: {e}") from None
