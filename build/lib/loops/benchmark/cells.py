"""Cells: the unit of work, (patient, optimizer, seed, budget), with a reproducible id and derived seeds.

A cell's id is ``uuid5`` of its canonical JSON (patient key, optimizer label and settings, seed index,
budget), so the same config names the same cells on any machine and a resumed run finds them.

Seeds derive from the id, split so that comparisons are fair:

* the **trial noise** of a run depends on (patient, seed index) only: every optimizer meets the same
  noise realization on its k-th trial (common random numbers);
* the **optimizer seed** depends on the whole cell.

``seeding = "legacy"`` reproduces ``bfm-stim bench optimizers`` (optimizer seed = seed index, trial
``100_000 + 1000 * seed + t``), whose committed JSON predates the harness.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from loops.benchmark.config import BenchmarkConfig, OptimizerEntry

__all__ = ["PatientRef", "Cell", "expand", "NAMESPACE"]

NAMESPACE = uuid.UUID("5b0d3c1e-7a52-4b8e-9a43-bf3a57e1c0de")
_NOISE_BASE = 1_000_000  # trial ids below are the simulators' own (oracle 50 000..., surrogate rest 900 000)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class PatientRef:
    """How to build one patient in a worker.

    Args:
        kind: ``"sim"`` (a registered simulator id), ``"class"`` (``module:Class``) or ``"tabular"`` (CSV).
        target: The simulator id, the ``module:Class`` or the CSV path.
        seed: Patient seed.
        settings: Class keyword arguments (``"class"``).
        digest: Content digest of a CSV (``"tabular"``), so an edited table is another patient.
    """

    kind: str
    target: str
    seed: int
    settings: Mapping[str, Any] = field(default_factory=dict)
    digest: str = ""

    @property
    def key(self) -> str:
        """Canonical identity (no path: a table is known by its file name and content)."""
        tgt = Path(self.target).name if self.kind == "tabular" else self.target
        return json.dumps([self.kind, tgt, self.seed, dict(self.settings), self.digest], sort_keys=True)

    @property
    def label(self) -> str:
        tgt = Path(self.target).stem if self.kind == "tabular" else self.target.rsplit(":", 1)[-1]
        return f"{tgt}#{self.seed}"

    @property
    def family(self) -> str:
        return self.target if self.kind == "sim" else (f"tabular:{Path(self.target).stem}" if self.kind == "tabular"
                                                       else self.target)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "seed": self.seed, "settings": dict(self.settings),
                "digest": self.digest}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PatientRef":
        return cls(d["kind"], d["target"], int(d["seed"]), dict(d.get("settings", {})), d.get("digest", ""))


@dataclass(frozen=True)
class Cell:
    """One run: ``budget`` trials of one optimizer, one seed, on one patient."""

    patient: PatientRef
    optimizer: OptimizerEntry
    seed: int
    budget: int
    seeding: str = "cell"

    @property
    def id(self) -> str:
        src = json.dumps([self.patient.key, self.optimizer.label, self.optimizer.name,
                          dict(self.optimizer.settings), self.seed, self.budget, self.seeding], sort_keys=True)
        return str(uuid.uuid5(NAMESPACE, src))

    @property
    def optimizer_seed(self) -> int:
        """Seed handed to the optimizer (>= 0, < 2**31)."""
        if self.seeding == "legacy":
            return self.seed
        return uuid.uuid5(NAMESPACE, "optimizer:" + self.id).int % 2**31

    def trial_id(self, t: int) -> int:
        """Noise realization of trial ``t`` (0-based); shared by every optimizer on this (patient, seed)."""
        if self.seeding == "legacy":
            return 100_000 + 1000 * self.seed + t
        base = uuid.uuid5(NAMESPACE, json.dumps(["noise", self.patient.key, self.seed])).int % 10**9
        return _NOISE_BASE + base * 100_000 + t

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "patient": self.patient.to_dict(), "optimizer": self.optimizer.spec(),
                "seed": self.seed, "budget": self.budget, "seeding": self.seeding,
                "optimizer_seed": self.optimizer_seed}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Cell":
        o = d["optimizer"]
        return cls(PatientRef.from_dict(d["patient"]), OptimizerEntry(o["label"], o["name"], o.get("settings", {})),
                   int(d["seed"]), int(d["budget"]), d.get("seeding", "cell"))


def patients(cfg: BenchmarkConfig, *, base: Path | None = None) -> list[PatientRef]:
    """The cohort: ``n_patients`` evaluation-cohort patients (families alternating), then users' patients.

    Args:
        base: Folder relative CSV paths are read from (default: the current directory).
    """
    import simulators

    c = cfg.cohort
    fams = c.families
    out: list[PatientRef] = []
    if c.n_patients:
        per = {f: simulators.cohort("eval", (c.n_patients + len(fams) - 1) // len(fams), offset=c.offset)
               for f in fams}
        out += [PatientRef("sim", fams[i % len(fams)], per[fams[i % len(fams)]][i // len(fams)])
                for i in range(c.n_patients)]
    for e in c.patients:
        if e.tabular:
            p = Path(e.tabular)
            p = p if p.is_absolute() or base is None else base / p
            if not p.is_file():
                from bfm_stim.exceptions import ConfigError

                raise ConfigError(f"[[cohort.patients]] tabular = {e.tabular!r}: file not found ({p})")
            out += [PatientRef("tabular", str(p), s, {}, _digest(p)) for s in e.seeds]
        else:
            out += [PatientRef("class", e.cls, s, dict(e.settings)) for s in e.seeds]
    return out


def expand(cfg: BenchmarkConfig, *, base: Path | None = None) -> list[Cell]:
    """Every cell of ``cfg``, patient-major (a worker keeps one patient's set-up across its cells)."""
    return [Cell(p, o, s, cfg.budget, cfg.seeding) for p in patients(cfg, base=base)
            for s in range(cfg.seeds) for o in cfg.optimizers]
