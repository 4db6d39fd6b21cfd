"""The digital twin: the surrogate's predicted stimulation response added to a recording."""

from __future__ import annotations

import numpy as np
import pytest

import simulators
from bfm_stim.exceptions import CheckpointError, ModelError
from bfm_stim.recording import Recording
from bfm_stim.space import Stimulus
from simulators.twin import load_twin


@pytest.fixture(scope="module")
def patient():
    return simulators.make("bg-beta-v0", seed=1_000_003)


@pytest.fixture(scope="module")
def recording(patient) -> Recording:
    """12 s of the patient without stimulation (``tiny_checkpoint``: the suite's shared tiny BFM)."""
    data = patient.advance(int(round(12.0 * patient.fs)))
    return Recording(data, float(patient.fs), list(patient.channel_names), ch_types=list(patient.channel_types),
                     units=list(patient.channel_units), positions=np.asarray(patient.channel_positions, dtype=float))


def test_twin_adds_a_stimulus_dependent_response(tiny_checkpoint, recording, patient):
    twin = load_twin(tiny_checkpoint, recording, patient.stimulus_space())
    stim = Stimulus.electrical(contact="c1", amplitude_ma=3.0, frequency_hz=130, pulse_width_us=90)
    resp = twin(stim, 1500)
    assert resp.shape == (recording.n_channels, 1500) and resp.dtype == np.float32
    assert np.isfinite(resp).all() and np.abs(resp).max() > 0
    other = twin(stim.with_(frequency_hz=20.0, amplitude_ma=1.0), 1500)
    assert not np.allclose(resp, other)
    assert np.abs(twin(stim.with_(amplitude_ma=0.0), 1500)).max() == 0.0  # nothing delivered, nothing added


def test_twin_errors(tmp_path, recording, tiny_checkpoint, patient):
    bad = tmp_path / "not_a_model.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        load_twin(bad, recording, patient.stimulus_space())
    no_pos = Recording(recording.data, recording.fs, recording.ch_names, ch_types=recording.ch_types)
    with pytest.raises(ModelError, match="positions"):
        load_twin(tiny_checkpoint, no_pos, patient.stimulus_space())
