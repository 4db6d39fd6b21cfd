"""``loops.adapt.main``: a recording in, a patient file out that ``Surrogate`` loads (weights_only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bfm_stim.exceptions import CheckpointError
from bfm_stim.recording import Event, Recording
from bfm_stim.space import Stimulus
from bfm_stim.surrogate import Surrogate
from loops.adapt import main


def _recording(tmp_path, seconds: float = 24.0):
    rng = np.random.default_rng(1)
    fs, c = 500.0, 5
    t = np.arange(int(seconds * fs)) / fs
    data = (20 * np.sin(2 * np.pi * 12 * t + rng.uniform(0, 6, (c, 1))) + rng.normal(0, 5, (c, len(t)))).astype(np.float32)
    stim = Stimulus.electrical(contact="c0", amplitude_ma=2.0, frequency_hz=130.0, pulse_width_us=90.0, duration_s=1.0)
    events = tuple(Event(onset, 1.0, "stimulus", stim.to_dict()) for onset in (12.0, 16.0, 20.0))
    rec = Recording(data, fs, [f"E{i}" for i in range(c)], ch_types=["seeg"] * c,
                    positions=rng.normal(0, 0.02, (c, 3)), events=events)
    path = tmp_path / "rec.fif"
    rec.write_fif(path)
    return path


@pytest.mark.parametrize("mode", ["zero_shot", "embedding"])
def test_adapt_writes_a_loadable_patient_file(tmp_path, mode):
    out = tmp_path / f"{mode}.pt"
    summary = main(_recording(tmp_path), out, mode=mode, steps=2, progress=False)
    assert summary["mode"] == mode and summary["n_channels"] == 5 and out.exists()
    torch.load(out, weights_only=True)
    sur = Surrogate.from_patient_file(out)
    assert sur.ch_names == [f"E{i}" for i in range(5)]
    assert sur.signal_scale > 0
    fc = sur.predict(torch.randn(5, 400) * 20, torch.zeros(3, sur.cfg.n_stim_features))
    assert fc.signal.shape[:2] == (3, 5) and torch.isfinite(fc.signal).all()


def test_patient_file_rejects_a_checkpoint(tmp_path):
    from bfm_stim.surrogate import default_checkpoint
    with pytest.raises(CheckpointError, match="patient file"):
        Surrogate.from_patient_file(default_checkpoint())
