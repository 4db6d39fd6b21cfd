"""Reusable checks every registered patient must pass (used by the test-suite, usable by plugins)."""

from __future__ import annotations

import numpy as np

from bfm_stim.exceptions import BfmStimError
from bfm_stim.space import Stimulus
from simulators.patient import Patient

__all__ = ["check_patient"]


def check_patient(p: Patient, *, n_samples: int = 300) -> None:
    """Raise AssertionError unless ``p`` honours the patient contract (shapes, dtypes, metadata, determinism)."""
    assert p.fs == 1000.0
    assert 8 <= p.n_channels <= 64, p.n_channels
    assert len(p.channel_names) == len(set(p.channel_names)) == p.n_channels
    assert len(p.channel_types) == len(p.channel_units) == p.n_channels
    assert all(u == "µV" for u in p.channel_units)
    assert p.channel_positions.shape == (p.n_channels, 3) and np.isfinite(p.channel_positions).all()
    assert np.abs(p.channel_positions).max() < 0.2, "positions must be in metres"
    assert p.regime in ("healthy", "pathological")
    assert 4 <= len(p.contacts) <= 8
    space = p.stimulus_space()
    assert {c.name for c in space.contacts} == {c.name for c in p.contacts}
    p.reset()
    x = p.advance(n_samples)
    assert x.shape == (p.n_channels, n_samples) and x.dtype == np.float32 and np.isfinite(x).all()
    assert 0.1 < float(x.std()) < 5000.0, float(x.std())
    p.reset()
    assert np.array_equal(p.advance(n_samples), x), "reset must restore the seed's t=0 state"
    res = p.simulate(0.3)
    assert res.data.shape == (p.n_channels, 300) and res.hidden.shape == (300, len(p.source_names))
    assert res.stim_mask.dtype.is_floating_point is False and not bool(res.stim_mask.any())
    c = p.contacts[0].name
    stim = Stimulus.electrical(contact=c, amplitude_ma=1.0, frequency_hz=130.0, pulse_width_us=60.0, duration_s=0.2)
    r2 = p.simulate(0.3, stim, onset_s=0.05)
    assert int(r2.stim_mask.sum()) == 200 and bool(r2.stim_mask[50]) and not bool(r2.stim_mask[49])
    try:
        p.start_stimulation(stim.with_(contact="nope"))
    except BfmStimError:
        pass
    else:  # pragma: no cover
        raise AssertionError("an unknown contact must be refused")
    meta = p.metadata()
    assert meta["n_channels"] == p.n_channels and meta["seed"] == p.seed and meta["id"] == p.id
