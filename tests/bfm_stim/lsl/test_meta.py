from __future__ import annotations

import numpy as np
import pytest

from bfm_stim.exceptions import ValidationError
from bfm_stim.lsl.meta import SignalSpec, ack_source_id, command_source_id, make_signal_info, read_signal_spec


def test_signal_metadata_round_trip():
    pos = np.array([[0.01, -0.02, 0.03], [np.nan, np.nan, np.nan]])
    spec = SignalSpec(name="dev", source_id="dev-1", fs=1000.0, ch_names=("C3", "STN-L"), ch_types=("EEG", "DBS"),
                      units=("microvolts", "microvolts"), positions=pos, counter=True,
                      acquisition={"patient_id": "bg-beta-v0", "seed": "3"}, speed=4.0)
    info = make_signal_info(spec)
    assert info.channel_count() == 3 and info.source_id() == "dev-1" and info.type() == "EEG"
    assert info.get_channel_labels() == ["C3", "STN-L", "counter"]
    back = read_signal_spec(info)
    assert back.ch_names == spec.ch_names and back.ch_types == spec.ch_types and back.counter
    np.testing.assert_allclose(back.positions, pos)
    assert back.speed == 4.0 and back.acquisition["patient_id"] == "bg-beta-v0"
    assert command_source_id("dev-1") == "dev-1.commands" and ack_source_id("dev-1") == "dev-1.acks"


def test_spec_validation():
    with pytest.raises(ValidationError, match="positions"):
        SignalSpec(name="d", source_id="d", fs=100, ch_names=("a",), positions=np.zeros((2, 3)))
    with pytest.raises(ValidationError, match="fs"):
        SignalSpec(name="d", source_id="d", fs=float("nan"), ch_names=("a",))
