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


@pytest.mark.parametrize("mode", ["zero_shot", "embedding", "full"])
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


def test_adapt_command_passes_the_anchor_and_rejects_bad_settings(tmp_path, capsys):
    from loops.cli import main as cli

    rec = _recording(tmp_path)
    summary = main(rec, tmp_path / "a.pt", mode="embedding", steps=2, lr=1e-3, anchor=100.0, progress=False)
    assert (summary["anchor"], summary["lr"], summary["steps"], summary["seed"]) == (100.0, 1e-3, 2, 0)
    for args, field in ((["--anchor", "-1"], "anchor"), (["--anchor", "2000"], "anchor"), (["--lr", "nan"], "lr"),
                        (["--steps", "-3"], "steps"), (["--seed", "-1"], "seed")):
        assert cli(["adapt", "--recording", str(rec), "--out", str(tmp_path / "b.pt"), "--mode", "embedding",
                    *args]) == 2
        assert field in capsys.readouterr().err
    assert not (tmp_path / "b.pt").exists()


def test_patient_file_rejects_a_checkpoint(tmp_path):
    from bfm_stim.surrogate import default_checkpoint
    with pytest.raises(CheckpointError, match="patient file"):
        Surrogate.from_patient_file(default_checkpoint())


def test_calibration_windows_look_like_the_surrogates_use():
    """Half the windows end their context exactly at a stimulus onset, the rest have no stimulus in the horizon."""
    from types import SimpleNamespace

    from bfm_stim.model.data import PatientSeries
    from loops.adapt import calibration_windows

    L, ctx, hor = 25, 12, 10
    cfg = SimpleNamespace(patch_len=L, horizon_patches=hor, max_patches=ctx + hor)
    t = 60_000
    ids = np.zeros(t, np.int32)
    onsets = np.arange(5_000, t - 2_000, 1_000)
    for o in onsets:
        ids[o:o + 250] = 1
    # the signal encodes the sample index, so each window's start can be read back
    data = np.tile(np.arange(t, dtype=np.float32), (2, 1))
    table = np.vstack([np.zeros(16), np.ones(16)]).astype(np.float32)
    s = PatientSeries(data, np.zeros((2, 3), np.float32), ids, table, 4_000)
    c, st, fut = calibration_windows(s, cfg, 20, start=4_000, rng=np.random.default_rng(3))
    starts = c[:, 0, 0].numpy().astype(int)
    horizon_on = st[..., 0].numpy() > 0
    aligned = np.isin(starts + ctx * L, onsets)
    assert aligned.sum() == 10 and horizon_on[aligned, 0].all()
    assert not horizon_on[~aligned].any()
    assert torch.equal(fut[:, 0, 0], c[:, 0, 0] + ctx * L)


def test_adapt_is_reproducible_from_its_seed(tmp_path):
    """The same recording and seed give the same patient file whatever ran before in the process
    (dropout draws included); another seed gives another one."""
    rec = _recording(tmp_path)

    def weights(name: str, seed: int) -> dict:
        main(rec, tmp_path / name, mode="full", steps=3, lr=1e-3, seed=seed, progress=False)
        f = torch.load(tmp_path / name, weights_only=True)
        return {**f["state_dict"], "embedding": f["embedding"]}

    torch.manual_seed(123)
    a = weights("a.pt", 0)
    torch.rand(1000)  # the caller's generator moved on: must not matter
    b = weights("b.pt", 0)
    c = weights("c.pt", 1)
    from loops.cli import main as cli  # the command passes --seed on
    assert cli(["adapt", "--recording", str(rec), "--out", str(tmp_path / "d.pt"), "--mode", "full", "--steps", "3",
                "--lr", "1e-3", "--seed", "1"]) == 0
    f = torch.load(tmp_path / "d.pt", weights_only=True)
    d = {**f["state_dict"], "embedding": f["embedding"]}
    assert all(torch.equal(c[k], d[k]) for k in c)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
