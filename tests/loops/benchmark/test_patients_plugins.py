"""Patients (tabular, users' classes) and optimizers (Optuna, Nevergrad, users', entry points, the flaky one)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from bfm_stim.exceptions import ConfigError, SafetyLimitError, ValidationError
from bfm_stim.optim import Outcome
from bfm_stim.space import Contact, Stimulus, StimulusSpace
from loops.benchmark.cells import PatientRef
from loops.benchmark.config import ObjectiveConfig, OptimizerEntry, OracleConfig
from loops.benchmark.patients import build_patient, signature
from loops.benchmark.plugins import FlakyOptimizer, OptunaOptimizer, PlainAdapter, make_optimizer
from loops.benchmark.tabular import TabularPatient

from .conftest import REPO

CSV = REPO / "examples" / "response_map.csv"


def test_tabular_patient_serves_measured_repeats_as_noise():
    p = TabularPatient.from_csv(CSV, seed=0)
    assert len(p.grid) == 48 and p.cost_table.shape == (48, 3)
    g = p.grid[7]
    # a stimulus near a grid point is served one of that point's measured repeats, chosen by the trial
    near = g.with_(amplitude_ma=g.amplitude_ma + 0.01)
    vals = {p.simulate(near, trial=t) for t in range(40)}
    assert vals == set(p.cost_table[7].tolist())
    assert p.simulate(near, trial=3) == p.simulate(near, trial=3)
    assert p.oracle_cost([near])[0] == pytest.approx(p.cost_table[7].mean())
    opt = p.oracle_optimum()
    i = p.grid.index(opt)
    assert p.severity[i].mean() < 0.5 and p.stimulus_space().is_safe(opt)
    feasible = [j for j, s in enumerate(p.grid) if p.severity[j].mean() < 0.5 and p.stimulus_space().is_safe(s)]
    assert p.cost_table[i].mean() == min(p.cost_table[j].mean() for j in feasible)
    assert p.oracle_cost([None])[0] == pytest.approx(p.cost_table.mean(axis=1).max())
    assert signature(p)["digest"] == signature(TabularPatient.from_csv(CSV, seed=0))["digest"]


def test_tabular_patient_rejects_bad_tables(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("contact,amplitude_ma,frequency_hz\ne1,1,20\n")
    with pytest.raises(ConfigError, match="columns"):
        TabularPatient.from_csv(bad)
    bad.write_text("contact,amplitude_ma,frequency_hz,pulse_width_us,repeat,outcome\n"
                   "e1,1,20,60,0,0.5\ne1,1,20,60,1,0.6\ne1,2,20,60,0,0.4\n")
    with pytest.raises(ValidationError, match="same number of repeats"):
        TabularPatient.from_csv(bad)
    bad.write_text("contact,amplitude_ma,frequency_hz,pulse_width_us,repeat,outcome\ne1,one,20,60,0,0.5\n")
    with pytest.raises(ValidationError, match="row 2"):
        TabularPatient.from_csv(bad)


def test_user_patient_class_is_checked_against_the_protocol():
    p = build_patient(PatientRef("class", "examples.user_patient:QuadraticPatient", 1, {"noise_sd": 0.0}),
                      ObjectiveConfig(), OracleConfig())
    o = p.oracle_optimum()
    assert p.oracle_cost([o])[0] < p.oracle_cost([None])[0]
    with pytest.raises(ConfigError, match="missing"):
        build_patient(PatientRef("class", "examples.user_optimizer:LocalSearchSettings", 0),
                      ObjectiveConfig(), OracleConfig())
    with pytest.raises(ConfigError, match="cannot import"):
        build_patient(PatientRef("class", "no_such_module:X", 0), ObjectiveConfig(), OracleConfig())


def _tight_space() -> StimulusSpace:
    """Bounds whose corners break the charge-density limit, so unprojected suggestions would be unsafe."""
    return StimulusSpace.electrical([Contact("c0", (0, 0, 0), 0.01), Contact("c1", (0, 0, 2), 0.01)])


@pytest.mark.parametrize("name", ["optuna-tpe", "optuna-gp", "nevergrad"])
def test_external_optimizers_pass_the_safety_gate_and_learn(name):
    space = _tight_space()
    opt = make_optimizer(OptimizerEntry("x", name, {"n_startup_trials": 4} if "optuna" in name else {}), space,
                         seed=3, budget=12)
    target = space.to_unit([Stimulus.electrical(contact="c1", amplitude_ma=1.0, frequency_hz=130.0,
                                                pulse_width_us=60.0)])[0]
    for _ in range(12):
        s = opt.ask(1)[0]
        space.check(s)  # every proposal is safe (projected by the Optimizer base class)
        cost = float(((space.to_unit([s])[0] - target) ** 2).sum())
        opt.tell([s], [Outcome(cost, side_effect=1.0 if s.amplitude_ma > 3.0 else 0.0)])
    assert len(opt.observations) == 12 and opt.recommend() is not None
    if name.startswith("optuna"):
        assert opt.n_projected > 0  # some suggestions were unsafe; the study learned the delivered points
        trials = opt._study.trials
        assert sum(t.state.name == "COMPLETE" for t in trials) == 12


def test_optuna_is_reproducible_from_its_seed():
    space = _tight_space()

    def run(seed):
        opt = OptunaOptimizer(space, OptunaOptimizer.Settings(seed=seed, sampler="tpe", n_startup_trials=3))
        out = []
        for k in range(8):
            s = opt.ask(1)[0]
            opt.tell([s], [Outcome(float(s.amplitude_ma - 2.0) ** 2)])
            out.append(s)
        return out

    assert run(1) == run(1) and run(1) != run(2)


def test_user_optimizers_by_class_entry_point_and_plain_object(tmp_path, monkeypatch):
    space = _tight_space()
    o = make_optimizer(OptimizerEntry("l", "examples.user_optimizer:LocalSearch", {"n_init": 2}), space, seed=0,
                       budget=5)
    assert o.settings.n_init == 2 and o.settings.seed == 0
    # a real entry point: a distribution's metadata on sys.path declaring the group
    dist = tmp_path / "my_opt-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-opt\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [bfm_stim.optimizers]
        local = examples.user_optimizer:LocalSearch
        flaky = loops.benchmark.plugins:FlakyOptimizer
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    e = make_optimizer(OptimizerEntry("e", "ep:local"), space, seed=1, budget=5)
    assert type(e).__name__ == "LocalSearch"
    f = make_optimizer(OptimizerEntry("f", "ep:flaky", {"unsafe_every": 2}), space, seed=1, budget=5)
    assert isinstance(f, PlainAdapter) and isinstance(f.obj, FlakyOptimizer)
    with pytest.raises(ConfigError, match="no entry point 'nope'"):
        make_optimizer(OptimizerEntry("n", "ep:nope"), space, seed=1, budget=5)
    with pytest.raises(ConfigError, match="expected a registered optimizer"):
        make_optimizer(OptimizerEntry("n", "simulated-annealing"), space, seed=1, budget=5)
    with pytest.raises(ConfigError, match="cannot build"):
        make_optimizer(OptimizerEntry("n", "loops.benchmark.plugins:FlakyOptimizer", {"wobble": 1}), space, seed=1,
                       budget=5)


def test_flaky_optimizer_misbehaves_as_declared():
    space = _tight_space()
    f = FlakyOptimizer(space, seed=0, unsafe_every=2, crash_at=5)
    s1, s2 = f.ask(), f.ask()
    space.check(s1)
    with pytest.raises((ValidationError, SafetyLimitError)):
        space.check(s2)
    f.ask(), f.ask()
    with pytest.raises(RuntimeError, match="deliberate crash on ask 5"):
        f.ask()
    assert np.isfinite(s1.amplitude_ma)


def test_simulated_patient_oracle_batch_equals_simulators_oracle_cost():
    import simulators
    from loops.benchmark.patients import SimulatedPatient

    p = SimulatedPatient("bg-beta-v0", 1_000_003, ObjectiveConfig(kind="healthy_reference"), OracleConfig(repeats=2))
    space = p.stimulus_space()
    stims = [space.project_safe(s) for s in space.from_unit(np.random.default_rng(0).random((3, space.dim)))]
    batch = p.oracle_cost(stims + [None])
    single = [simulators.oracle_cost(p.patient, s, p.objective, repeats=2) for s in stims + [None]]
    assert batch.tolist() == single  # bit for bit: the runner scores many stimuli in one batch
    a, b = signature(p), signature(p)
    assert a == b and len(a["costs"]) == 3
