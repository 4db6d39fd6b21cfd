"""Save/restore: a restored optimizer proposes exactly what the original would have."""

from __future__ import annotations

import json

import pytest

from bfm_stim.exceptions import OptimizerError
from bfm_stim.optim import Outcome, from_state_dict, load, make, registry

FAST_BO = dict(num_restarts=2, raw_samples=32, mc_samples=32, maxiter=30, n_init=4)


def _drive(opt, problem, rounds, batch):
    for _ in range(rounds):
        s = opt.ask(batch)
        opt.tell(s, [Outcome(problem(x).cost, side_effect=x.amplitude_ma > 3.0) for x in s])


@pytest.mark.parametrize("name", sorted(registry))
def test_restore_gives_identical_proposals(name, problem, tmp_path):
    kw = FAST_BO if name in ("bo", "guided") else {}
    opt = make(name, problem.space, seed=7, **kw)
    _drive(opt, problem, rounds=3, batch=2)  # bo: past its 4-point Sobol design
    opt.ask(1)  # leave one pending (cmaes: mid-generation)
    path = opt.save(tmp_path / "opt.json")
    json.loads(path.read_text())  # plain JSON
    restored = load(path)
    assert restored.observations == opt.observations and restored.pending == opt.pending
    for _ in range(2):
        a, b = opt.ask(2), restored.ask(2)
        assert a == b
        outs = [Outcome(problem(x).cost, side_effect=x.amplitude_ma > 3.0) for x in a]
        opt.tell(a, outs)
        restored.tell(b, outs)
    assert opt.ask(1) == restored.ask(1)
    assert json.dumps(opt.state_dict(), sort_keys=True) == json.dumps(restored.state_dict(), sort_keys=True)


def test_restore_in_place_and_mismatch(problem):
    opt = make("sobol", problem.space, seed=1)
    opt.tell(opt.ask(3), [1.0, 2.0, 3.0])
    state = opt.state_dict()
    other = make("sobol", problem.space, seed=1)
    other.load_state_dict(state)
    assert other.ask(2) == opt.ask(2)
    with pytest.raises(OptimizerError, match="settings"):
        make("sobol", problem.space, seed=2).load_state_dict(state)
    with pytest.raises(OptimizerError, match="optimizer 'sobol'"):
        make("random", problem.space, seed=1).load_state_dict(state)
    with pytest.raises(OptimizerError, match="format"):
        from_state_dict({"name": "sobol"})
