"""Outcome, settings, registry and tell() validation."""

from __future__ import annotations

import math

import pytest

from bfm_stim.exceptions import ConfigError, OptimizerError, ValidationError
from bfm_stim.optim import BOSettings, Outcome, make, registry, settings_from_dict
from bfm_stim.space import Stimulus


def test_registry_names():
    assert set(registry) == {"random", "sobol", "cmaes", "bo", "gradient", "guided", "egreedy"}


def test_outcome_validation():
    assert Outcome(1, side_effect=True).severity == 1.0
    assert Outcome(0.2).severity is None and not Outcome(0.2, 0.0).has_side_effect
    with pytest.raises(ValidationError, match="cost"):
        Outcome(math.nan)
    with pytest.raises(ValidationError, match="side_effect"):
        Outcome(1.0, side_effect=-1.0)
    with pytest.raises(ValidationError, match="metadata"):
        Outcome(1.0, metadata={"x": object()})
    o = Outcome(0.5, 2.0, {"trial": 3})
    assert Outcome.from_dict(o.to_dict()) == o


@pytest.mark.parametrize("name", sorted(registry))
def test_tell_rejects_bad_input(name, problem):
    opt = make(name, problem.space, seed=0)
    s = opt.ask(2)
    with pytest.raises(OptimizerError, match="2 stimuli and 1 outcomes"):
        opt.tell(s, [Outcome(0.1)])
    with pytest.raises(ValidationError, match="cost"):
        opt.tell(s, [0.1, float("nan")])
    with pytest.raises(ValidationError, match="kind"):
        opt.tell([Stimulus.off()], [0.1])
    assert opt.observations == ()  # nothing half-recorded
    opt.tell(s, [0.1, Outcome(0.2)])
    assert len(opt.observations) == 2 and opt.pending == ()


def test_ask_rejects_bad_n(problem):
    opt = make("random", problem.space)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValidationError, match="n="):
            opt.ask(bad)


def test_make_errors(problem):
    with pytest.raises(ConfigError, match="registered"):
        make("no-such-optimizer", problem.space)
    with pytest.raises(ConfigError, match="unknown argument"):
        make("random", problem.space, n_init=3)
    with pytest.raises(ValidationError, match="n_init"):
        make("bo", problem.space, n_init=1)


def test_settings_from_toml(tmp_path):
    p = tmp_path / "opt.toml"
    p.write_text('[optimizer.bo]\nseed = 3\nn_init = 5\nconstraint_aware = false\n')
    s = BOSettings.from_toml(p, "optimizer.bo")
    assert s == BOSettings(seed=3, n_init=5, constraint_aware=False)
    assert settings_from_dict("bo", s.to_dict()) == s
    p.write_text('[optimizer.bo]\nn_inits = 5\n')
    with pytest.raises(ConfigError, match="n_inits"):
        BOSettings.from_toml(p, "optimizer.bo")


def test_initial_design_first_and_projected(problem):
    space = problem.space
    unsafe = Stimulus.electrical(contact="c0", amplitude_ma=5.0, frequency_hz=100.0, pulse_width_us=450.0)
    ok = Stimulus.electrical(contact="c1", amplitude_ma=1.0, frequency_hz=100.0, pulse_width_us=60.0)
    opt = make("bo", space, initial_design=[ok, unsafe], n_init=3)
    out = opt.ask(3)
    assert out[0] == ok
    assert out[1].contact == "c0" and out[1].amplitude_ma < 5.0 and space.is_safe(out[1])
    assert opt.n_projected == 1
