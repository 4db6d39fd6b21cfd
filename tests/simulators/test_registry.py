"""Registry, cohorts, determinism, chunking, batching, the reusable patient checks and Gymnasium."""

from __future__ import annotations

import numpy as np
import pytest

import simulators
from bfm_stim.exceptions import SimulatorError, ValidationError
from bfm_stim.space import Stimulus
from simulators.testing import check_patient

IDS = [i for i, _ in simulators.list_patients()]


def test_list_patients():
    assert {"cortex-jr-v0", "bg-beta-v0"} <= set(IDS)
    assert all(isinstance(d, str) and d for _, d in simulators.list_patients())


@pytest.mark.parametrize("pid", IDS)
@pytest.mark.parametrize("seed", [0, 1_000_003])
def test_every_patient_passes_checks(pid, seed):
    check_patient(simulators.make(pid, seed=seed))


def test_cohorts_disjoint_and_checked():
    pre = simulators.cohort("pretrain", 500)
    ev = simulators.cohort("eval", 500)
    assert not set(pre) & set(ev)
    assert {simulators.cohort_of(s) for s in pre} == {"pretrain"}
    assert {simulators.cohort_of(s) for s in ev} == {"eval"}
    r_pre, r_ev = simulators.COHORTS["pretrain"], simulators.COHORTS["eval"]
    assert r_pre.stop <= r_ev.start or r_ev.stop <= r_pre.start
    with pytest.raises(ValidationError):
        simulators.make("bg-beta-v0", seed=ev[0], cohort="pretrain")
    assert simulators.make("bg-beta-v0", seed=ev[0], cohort="eval").seed == ev[0]


def test_seeds_deterministic_and_distinct():
    a = simulators.make("bg-beta-v0", seed=5).advance(500)
    b = simulators.make("bg-beta-v0", seed=5).advance(500)
    c = simulators.make("bg-beta-v0", seed=6)
    assert np.array_equal(a, b)
    assert c.n_channels != a.shape[0] or not np.array_equal(a, c.advance(500))


@pytest.mark.parametrize("pid", ["cortex-jr-v0", "bg-beta-v0"])
def test_chunked_equals_whole_with_stimulation(pid):
    p = simulators.make(pid, seed=4)
    stim = Stimulus.electrical(contact=p.contacts[1].name, amplitude_ma=2.0, frequency_hz=130.0,
                               pulse_width_us=90.0, duration_s=0.7)
    p.reset()
    first = p.advance(300)
    p.start_stimulation(stim)
    whole = np.concatenate([first, p.advance(1900)], axis=1)
    p.reset()
    parts = []
    sizes = [7, 293]  # 300 samples before the stimulus
    for n in sizes:
        parts.append(p.advance(n))
    p.start_stimulation(stim)
    for n in [20, 1, 333, 999, 547]:  # crosses kernel segments at 1000 and 2000
        parts.append(p.advance(n))
    assert np.array_equal(whole, np.concatenate(parts, axis=1))


def test_stop_stimulation_and_counterfactual_share_noise():
    p = simulators.make("bg-beta-v0", seed=4)
    stim = Stimulus.electrical(contact=p.contacts[0].name, amplitude_ma=0.0, frequency_hz=130.0, pulse_width_us=60.0,
                               duration_s=1.0)
    r = p.simulate(1.0, stim, counterfactual=True)
    # zero amplitude: no recruitment, artifact ∝ amplitude → identical to the counterfactual
    assert np.array_equal(r.data.numpy(), r.counterfactual.data.numpy())
    p.reset()
    p.start_stimulation(stim.with_(amplitude_ma=2.0))
    p.advance(10)
    assert p.stimulating
    p.stop_stimulation()
    assert not p.stimulating


def test_batch_equals_single_rows():
    ps = [simulators.make("cortex-jr-v0", seed=s) for s in (1, 2, 3)]  # different node and channel counts
    stims = [None, Stimulus.sensory(modality="visual_flicker", frequency_hz=10.0, level=1.0, duration_s=0.5), None]
    res = simulators.simulate_batch(ps, stims, 0.6, trials=[0, 0, 3])
    for i, (p, s, t) in enumerate(zip(ps, stims, [0, 0, 3])):
        single = p.simulate(0.6, s, trial=t).data
        assert np.array_equal(res.data[i, :p.n_channels].numpy(), single.numpy())


@pytest.mark.parametrize("pid", ["cortex-jr-v0", "bg-beta-v0"])
def test_branches_share_the_past_and_continue_independently(pid):
    """simulate_batch(branch_s=...): rows reseeded at branch_s equal the unbranched run before it; a row
    reseeded to its own trial is the unbranched run; rows reseeded to other trials differ after branch_s,
    in the hidden sources too (the process noise is reseeded, not only the measurement noise)."""
    p = simulators.make(pid, seed=4)
    stim = p.stimulus_space().from_unit(np.full((1, p.stimulus_space().dim), 0.5))[0]
    plain = simulators.simulate_batch([p] * 2, [stim, None], 0.6, onset_s=0.3, trials=[7, 7]).data.numpy()
    br = simulators.simulate_batch([p] * 4, [stim, stim, None, None], 0.6, onset_s=0.3, trials=[7] * 4,
                                   branch_s=0.3, branch_trials=[7, 8, 7, 8]).data.numpy()
    k = int(round(0.3 * p.fs))
    assert np.array_equal(br[0], plain[0]) and np.array_equal(br[2], plain[1])
    assert np.array_equal(br[1, :, :k], plain[0, :, :k]) and np.array_equal(br[3, :, :k], plain[1, :, :k])
    assert not np.allclose(br[1, :, k:], plain[0, :, k:]) and not np.allclose(br[3, :, k:], plain[1, :, k:])
    hid = simulators.simulate_batch([p] * 2, [None, None], 0.6, trials=[7, 7], branch_s=0.3, branch_trials=[7, 8],
                                    hidden=True).hidden.numpy()
    assert np.array_equal(hid[0, :k], hid[1, :k]) and not np.allclose(hid[0, k:], hid[1, k:])
    from simulators.engine import Engine
    eng, fresh = Engine([p], [7]).reseed([8]), Engine([p], [8])  # both noise streams move to trial 8
    assert eng.proc_key[0] == fresh.proc_key[0] and eng.obs_key[0] == fresh.obs_key[0] and eng.trials == [8]
    with pytest.raises(SimulatorError, match="branch"):
        simulators.simulate_batch([p], [None], 0.6, branch_s=0.3)
    with pytest.raises(ValidationError, match="branch_s"):
        simulators.simulate_batch([p], [None], 0.6, branch_s=0.9, branch_trials=[1])


def test_trials_differ_but_are_reproducible():
    p = simulators.make("bg-beta-v0", seed=2)
    a, b = p.simulate(0.5, trial=1).data, p.simulate(0.5, trial=2).data
    assert not np.array_equal(a.numpy(), b.numpy())
    assert np.array_equal(a.numpy(), p.simulate(0.5, trial=1).data.numpy())


def test_unsafe_stimulus_refused():
    from bfm_stim.exceptions import SafetyLimitError

    p = simulators.make("bg-beta-v0", seed=2)
    with pytest.raises((SafetyLimitError, ValidationError)):
        p.start_stimulation(Stimulus.electrical(contact=p.contacts[0].name, amplitude_ma=5.0, frequency_hz=130.0,
                                                pulse_width_us=450.0))


def test_bad_arguments():
    with pytest.raises(ValidationError):
        simulators.make("no-such-v0")
    with pytest.raises(ValidationError):
        simulators.make("bg-beta-v0", seed=-1)
    with pytest.raises(ValidationError):
        simulators.make("bg-beta-v0", seed=1, n_channels=3)
    with pytest.raises(ValidationError):
        simulators.cohort("test", 3)


def test_gym_envs_pass_check_env():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    from simulators.gym_env import ENV_IDS

    for env_id in ENV_IDS:
        env = gym.make(env_id, max_trials=3, trial_s=0.5)
        check_env(env.unwrapped, skip_render_check=True)
        obs, info = env.reset(seed=0)
        obs2, r, term, trunc, info = env.step(env.action_space.sample())
        assert np.isfinite(obs2).all() and np.isfinite(r) and "side_effect" in info


@pytest.mark.slow
def test_oracle_cost_and_optimum(tmp_path, monkeypatch):
    monkeypatch.setenv("BFM_STIM_CACHE", str(tmp_path))
    p = simulators.make("bg-beta-v0", seed=6)
    obj = simulators.BandPowerObjective()
    base = simulators.oracle_cost(p, None, obj, repeats=2)
    good = Stimulus.electrical(contact=min(p.contacts, key=lambda c: np.linalg.norm(np.asarray(c.position_mm) - p.target_positions_mm[0])).name,
                               amplitude_ma=3.0, frequency_hz=130.0, pulse_width_us=60.0)
    assert simulators.oracle_cost(p, good, obj, repeats=2) < base - 0.5
    opt = simulators.oracle_optimum(p, obj, n_amplitude=3, frequencies=(20.0, 130.0), pulse_widths=(60.0,),
                                    repeats=1, refine_steps=1)
    assert opt["cost"] < opt["baseline_cost"]
    s = Stimulus.from_dict(opt["stimulus"])
    assert s.amplitude_ma < p.side_effect_threshold_ma(s.contact, s.pulse_width_us)
    assert list(tmp_path.rglob("*.json"))
    assert simulators.oracle_optimum(p, obj, n_amplitude=3, frequencies=(20.0, 130.0), pulse_widths=(60.0,),
                                     repeats=1, refine_steps=1) == opt


@pytest.mark.parametrize("seed", [153, 275])
def test_depth_only_montage_builds(seed):
    """Seeds whose montage is all depth contacts (no surface channels) must build and run."""
    p = simulators.make("cortex-jr-epileptic-v0", seed=seed)
    assert p.n_channels == len(p.channel_names) == p.channel_positions.shape[0]
    assert np.isfinite(p.advance(50)).all()


def test_oracle_cost_is_paired_across_stimuli():
    """Every oracle_cost call uses the same noise realizations (common random numbers): the same stimulus
    gives the same cost twice, so the oracle optimum re-measured this way has regret exactly 0."""
    p = simulators.make("bg-beta-v0", seed=3)
    obj = simulators.HealthyReferenceObjective()
    s = Stimulus.electrical(contact=p.contacts[0].name, amplitude_ma=2.0, frequency_hz=130.0, pulse_width_us=90.0)
    assert simulators.oracle_cost(p, s, obj, repeats=2) == simulators.oracle_cost(p, s, obj, repeats=2)
    assert simulators.oracle_cost(p, None, obj, repeats=2) != simulators.oracle_cost(p, s, obj, repeats=2)
