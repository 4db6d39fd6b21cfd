"""simulators.playback: a recording served live, with a twin response on accepted stimulation."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from bfm_stim.lsl.inlet import RingInlet
from bfm_stim.lsl.link import CommandSender
from bfm_stim.lsl.protocol import keygen, load_key
from bfm_stim.recording import Recording
from bfm_stim.space import Stimulus
from lsl_helpers import REPO, child_env
from simulators.playback import DampedOscillationTwin, RecordingSource, default_space, make_server

FS = 500.0
STIM = Stimulus.electrical(contact="c0", amplitude_ma=2.0, frequency_hz=130.0, pulse_width_us=60.0, duration_s=1.0)


def _recording(n: int = 2000) -> Recording:
    rng = np.random.default_rng(0)
    data = rng.normal(0, 5, (3, n)).astype(np.float32)
    pos = np.array([[0.01, 0.0, 0.02], [0.0, 0.01, 0.02], [np.nan] * 3])
    return Recording(data, FS, ["Cz", "Pz", "STN"], ch_types=["eeg", "eeg", "dbs"], positions=pos)


def test_twin_response_added_from_stimulation_onset_and_dropped_on_stop():
    rec = _recording()
    twin = DampedOscillationTwin(np.array([1.0, 0.5, 0.0]), FS, freq_hz=20.0, tau_s=0.1)
    src = RecordingSource(rec, default_space(), twin=twin, response_s=0.5)
    a = src.advance(100)
    np.testing.assert_array_equal(a, rec.data[:, :100])
    src.start_stimulation(STIM)
    b = src.advance(300)
    expected = twin(STIM, 250)
    np.testing.assert_allclose(b[:, :250] - rec.data[:, 100:350], expected, atol=1e-4)
    np.testing.assert_array_equal(b[:, 250:], rec.data[:, 350:400])  # response over after 0.5 s
    assert np.abs(expected[0]).max() > 10.0 and np.all(expected[2] == 0)  # charge 0.12 µC drives ~120 µV peak
    src.start_stimulation(STIM)
    src.advance(10)
    src.stop_stimulation()
    np.testing.assert_array_equal(src.advance(10), rec.data[:, 410:420])
    with pytest.raises(Exception, match="charge_density"):
        src.start_stimulation(STIM.with_(amplitude_ma=5.0, pulse_width_us=450.0))


def test_looping_and_end():
    rec = _recording(100)
    src = RecordingSource(rec, default_space(), loop=True)
    x = src.advance(250)
    np.testing.assert_array_equal(x[:, 200:], rec.data[:, :50])
    once = RecordingSource(rec, default_space())
    once.advance(150)
    assert once.exhausted


@pytest.mark.lsl
def test_served_recording_with_twin_over_lsl(tmp_path):
    rec = _recording(20000)
    key = load_key(keygen(tmp_path / "k"))
    twin = DampedOscillationTwin(np.array([1.0, 0.5, 0.0]), FS, freq_hz=20.0, tau_s=0.1)
    sid = f"test-play-{uuid.uuid4().hex[:8]}"
    server = make_server(RecordingSource(rec, default_space(), twin=twin, response_s=0.5, loop=True), key=key,
                         source_id=sid, counter=True)
    with server, RingInlet(sid, buffer_s=10.0) as inlet, CommandSender(sid, key) as sender:
        assert inlet.ch_names == ("Cz", "Pz", "STN")
        np.testing.assert_allclose(inlet.spec.positions[:2], rec.positions[:2])
        seq = sender.send(STIM, lead_s=0.2)
        ack = sender.wait_ack(seq, 3.0)
        assert ack.status == "applied"
        time.sleep(0.8)
        data, ts = inlet.get_data(int(FS), counter=True)
        k = data[-1].astype(np.int64)
        assert np.all(np.diff(k) == 1)
        diff = data[:3] - rec.data[:, k % rec.n_samples]
        onset = int(np.argmin(np.abs(ts - ack.applied_at)))
        assert abs(ts[onset] - ack.applied_at) < 0.1 / FS  # time_correction on one machine: µs
        np.testing.assert_allclose(diff[:, :onset], 0.0, atol=1e-5)
        n = min(int(0.5 * FS), diff.shape[1] - onset)
        np.testing.assert_allclose(diff[:, onset:onset + n], twin(STIM, n), atol=1e-3)


@pytest.mark.lsl
def test_playback_cli_serves_a_fif_file_to_its_end(tmp_path):
    rec = _recording(6000)
    path = rec.write_fif(tmp_path / "rec_raw.fif")
    kf = keygen(tmp_path / "k")
    sid = f"test-playcli-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-m", "simulators.playback", str(path), "--key-file", str(kf),
                             "--source-id", sid, "--counter", "--speed", "4"], env=child_env(), cwd=REPO,
                            stderr=subprocess.PIPE)
    try:
        with RingInlet(sid, buffer_s=10.0) as inlet:
            assert inlet.ch_names == ("Cz", "Pz", "STN")
            assert proc.wait(20) == 0  # 12 s of signal at 4x: ends by itself
            data, _ = inlet.get_data(counter=True)
        k = data[-1].astype(np.int64)
        assert k.size > 1000 and k[-1] == 5999 and np.all(np.diff(k) == 1)
        np.testing.assert_allclose(data[:3], Recording.read(path).data[:, k], atol=1e-3)
    finally:
        if proc.poll() is None:
            proc.kill()
