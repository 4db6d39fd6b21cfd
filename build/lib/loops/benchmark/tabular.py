"""A patient defined by a table of measured responses: a lab's own response map as a benchmark patient.

The CSV has one row per measurement: the stimulus (``contact``, ``amplitude_ma`` mA, ``frequency_hz`` Hz,
``pulse_width_us`` µs; optional ``duration_s`` s, default 1), ``repeat`` (0, 1, ... per stimulus) and
``outcome`` (the measured response); optionally ``side_effect`` (severity in [0, 1]). Every stimulus of
the grid must have the same number of repeats. Like the rat and monkey maps of neurostimulation BO
papers, a trial of a stimulus is served as one of the measured repeats at the nearest grid point
(nearest in the space's unit cube, same contact), the repeat drawn from the trial's noise
realization, so the repeats are the trial noise; the oracle cost is the mean over repeats and the
oracle optimum the grid point of lowest mean among those without a side effect (mean severity < 0.5)
that pass the safety check. A map has no stimulation-off measurement: the regret's reference
``c_off`` is the worst grid mean (regret 1 = as bad as the worst mapped stimulus).

The space spans the grid: contacts from the table (positions along x, 1 mm apart, ``area_cm2`` each),
each numeric parameter between its smallest and largest grid value (frequency on a log scale).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from bfm_stim.exceptions import ConfigError, ValidationError
from bfm_stim.space import Contact, Stimulus, StimulusSpace

__all__ = ["TabularPatient"]

NUMERIC = ("amplitude_ma", "frequency_hz", "pulse_width_us")


class TabularPatient:
    """A response map as a :class:`~loops.benchmark.patients.BenchPatient`.

    Args:
        grid: (G,) grid stimuli.
        outcomes: (G, R) measured outcomes, R repeats per stimulus.
        side_effects: (G, R) severities in [0, 1] (zeros when not measured).
        seed: Seed of the repeat draws (different seeds: different orders of the same repeats).
        maximize: The outcome is to be maximized (cost = -outcome).
        name: Patient id.
        area_cm2: Contact area, cm² (for the charge-density limit).
    """

    def __init__(self, grid: Sequence[Stimulus], outcomes: np.ndarray, side_effects: np.ndarray | None = None, *,
                 seed: int = 0, maximize: bool = False, name: str = "tabular", area_cm2: float = 0.06) -> None:
        Y = np.asarray(outcomes, dtype=float)
        if Y.ndim != 2 or Y.shape[0] != len(grid) or Y.shape[1] < 1:
            raise ValidationError("outcomes", Y.shape, f"(G={len(grid)}, R >= 1) outcomes")
        if not np.all(np.isfinite(Y)):
            raise ValidationError("outcomes", "non-finite", "finite outcomes")
        S = np.zeros_like(Y) if side_effects is None else np.asarray(side_effects, dtype=float)
        if S.shape != Y.shape or np.any((S < 0) | (S > 1)):
            raise ValidationError("side_effect", S.shape, f"severities in [0, 1], shape {Y.shape}")
        self.id, self.seed = name, int(seed)
        self.grid = list(grid)
        self.cost_table = -Y if maximize else Y
        self.severity = S
        contacts = sorted({s.contact for s in self.grid})
        bounds = {n: (min(getattr(s, n) for s in self.grid), max(getattr(s, n) for s in self.grid)) for n in NUMERIC}
        dur = self.grid[0].duration_s
        self._space = StimulusSpace.electrical(
            [Contact(c, (float(i), 0.0, 0.0), area_cm2) for i, c in enumerate(contacts)],
            steps={n: None for n in NUMERIC}, duration_s=(dur, dur), **bounds)
        self._U = self._space.to_unit(self.grid)
        self._contact = np.array([s.contact for s in self.grid])
        self.description = f"tabular response map {name} ({len(self.grid)} stimuli x {Y.shape[1]} repeats)"

    @classmethod
    def from_csv(cls, path: str | Path, *, seed: int = 0, maximize: bool = False, area_cm2: float = 0.06) -> "TabularPatient":
        """Read the table (see the module docs for the columns)."""
        path = Path(path)
        try:
            rows = list(csv.DictReader(path.open(newline="")))
        except FileNotFoundError:
            raise ConfigError(f"tabular patient: file not found: {path}") from None
        need = {"contact", *NUMERIC, "repeat", "outcome"}
        if not rows or not need <= set(rows[0]):
            raise ConfigError(f"{path}: columns {sorted(need)} needed (optional duration_s, side_effect); "
                              f"got {sorted(rows[0]) if rows else 'no rows'}")
        cells: dict[tuple, dict[int, tuple[float, float]]] = {}
        for i, r in enumerate(rows):
            try:
                key = (r["contact"], *(float(r[n]) for n in NUMERIC), float(r.get("duration_s") or 1.0))
                rep = int(r["repeat"])
                cells.setdefault(key, {})[rep] = (float(r["outcome"]), float(r.get("side_effect") or 0.0))
            except ValueError as e:
                raise ValidationError(f"{path.name} row {i + 2}", r, "numbers in the numeric columns", str(e)) from None
        reps = {len(v) for v in cells.values()}
        if len(reps) != 1:
            raise ValidationError(f"{path.name} repeats", sorted(reps), "the same number of repeats for every stimulus")
        keys = sorted(cells)
        grid = [Stimulus.electrical(contact=k[0], amplitude_ma=k[1], frequency_hz=k[2], pulse_width_us=k[3],
                                    duration_s=k[4]) for k in keys]
        Y = np.array([[cells[k][r][0] for r in sorted(cells[k])] for k in keys])
        S = np.array([[cells[k][r][1] for r in sorted(cells[k])] for k in keys])
        return cls(grid, Y, S, seed=seed, maximize=maximize, name=path.stem, area_cm2=area_cm2)

    # --- the protocol ----------------------------------------------------------------------------
    def stimulus_space(self) -> StimulusSpace:
        return self._space

    def nearest(self, stimulus: Stimulus) -> int:
        """Index of the grid stimulus nearest to ``stimulus`` (same contact, unit-cube distance)."""
        u = self._space.to_unit([self._space.snap(stimulus)])[0]
        d = ((self._U - u) ** 2).sum(dim=1).numpy()
        d = np.where(self._contact == stimulus.contact, d, np.inf)
        return int(np.argmin(d))

    def _repeat(self, trial: int) -> int:
        return int(np.random.default_rng([self.seed, int(trial) % 2**63, 41]).integers(self.cost_table.shape[1]))

    def simulate(self, stimulus: Stimulus, *, trial: int) -> float:
        return float(self.cost_table[self.nearest(stimulus), self._repeat(trial)])

    def side_effect(self, stimulus: Stimulus, *, trial: int) -> tuple[float, bool]:
        sev = float(self.severity[self.nearest(stimulus), self._repeat(trial)])
        return sev, sev >= 0.5

    def oracle_cost(self, stimuli: Sequence[Stimulus | None]) -> np.ndarray:
        """Mean over repeats at the nearest grid point; stimulation off = the largest mean cost of the grid."""
        mean = self.cost_table.mean(axis=1)
        return np.array([mean.max() if s is None else mean[self.nearest(s)] for s in stimuli])

    def oracle_optimum(self) -> Stimulus:
        mean = self.cost_table.mean(axis=1)
        ok = [i for i, s in enumerate(self.grid)
              if self.severity[i].mean() < 0.5 and self._space.is_safe(s)]
        if not ok:
            raise ConfigError(f"{self.id}: no grid stimulus is safe and free of side effects")
        return self.grid[min(ok, key=lambda i: mean[i])]
