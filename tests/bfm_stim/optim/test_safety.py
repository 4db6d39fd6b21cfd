"""No optimizer ever emits an unsafe stimulus (hypothesis over spaces, limits and tells)."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from bfm_stim.exceptions import OptimizerError
from bfm_stim.optim import make, registry
from bfm_stim.safety import SafetyLimits
from bfm_stim.space import Contact, StimulusSpace

FAST_BO = dict(num_restarts=2, raw_samples=32, mc_samples=32, maxiter=30)
TINY_BO = dict(FAST_BO, n_init=2, raw_samples=16, mc_samples=16, num_restarts=1, maxiter=10)


@st.composite
def spaces(draw):
    n = draw(st.integers(1, 4))
    contacts = [Contact(f"c{i}", (0.0, 0.0, 2.0 * i), draw(st.floats(0.005, 0.2))) for i in range(n)]
    a_lo = draw(st.sampled_from([0.0, 0.0, 0.5]))
    a_hi = draw(st.floats(a_lo + 0.5, 12.0))
    f_hi = draw(st.floats(20.0, 600.0))
    pw_lo = draw(st.floats(10.0, 100.0))
    pw_hi = draw(st.floats(pw_lo + 20.0, 1200.0))
    limits = SafetyLimits(shannon_k=draw(st.floats(1.0, 2.2)),
                          max_charge_density_uc_cm2=draw(st.floats(5.0, 40.0)),
                          max_charge_uc=draw(st.floats(0.1, 3.0)),
                          max_amplitude_ma=draw(st.floats(1.0, 10.0)),
                          max_frequency_hz=draw(st.floats(100.0, 500.0)),
                          max_pulse_width_us=draw(st.floats(200.0, 1000.0)))
    return StimulusSpace.electrical(contacts, limits=limits, amplitude_ma=(a_lo, a_hi), frequency_hz=(2.0, f_hi),
                                    pulse_width_us=(pw_lo, pw_hi))


@pytest.mark.parametrize("name", sorted(registry))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=spaces(), seed=st.integers(0, 1000), costs=st.lists(st.floats(-10, 10), min_size=0, max_size=10),
       side=st.lists(st.booleans(), min_size=10, max_size=10), batch=st.integers(1, 3))
def test_never_unsafe(name, space, seed, costs, side, batch):
    kw = dict(TINY_BO) if name in ("bo", "guided") else {}
    try:
        opt = make(name, space, seed=seed, **kw)
    except OptimizerError:
        return  # no safe stimulus in this space (or too few dimensions): refusing is safe
    for i, c in enumerate(costs + [0.0, 0.0]):
        stims = opt.ask(batch)
        assert len(stims) == batch
        for s in stims:
            assert space.is_safe(s), s
        if i < len(costs):
            opt.tell(stims, [c + j for j in range(batch)])
            if name in ("bo", "guided") and i >= 3:
                break  # a few acquisition steps are enough; BO is the slow one


def test_sensory_space_safe():
    space = StimulusSpace.sensory(frequency_hz=(1.0, 120.0), limits=SafetyLimits(block_photosensitive=True))
    for name in sorted(registry):
        opt = make(name, space, seed=1, **(TINY_BO if name in ("bo", "guided") else {}))
        for k in range(4):
            stims = opt.ask(2)
            assert all(space.is_safe(s) for s in stims)
            opt.tell(stims, [float(k), float(k) + 0.5])


def test_bo_proposals_inside_safe_set_before_projection(problem):
    """BO optimizes over the safe set itself: nothing it proposes needs projection."""
    opt = make("bo", problem.space, seed=0, n_init=4, **{k: v for k, v in FAST_BO.items()})
    # Reward high charge so the acquisition presses against the charge-density limit.
    for _ in range(8):
        stims = opt.ask(1)
        opt.tell(stims, [-s.charge_uc for s in stims])
    assert opt.n_projected == 0
    best = opt.best[0]
    assert best.charge_uc > 0.4  # close to the 0.6 µC limit of the 0.02 cm² contacts
