from __future__ import annotations

import signal
import time

import numpy as np
import pytest

from bfm_stim.exceptions import StreamError, StreamMismatchError
from bfm_stim.lsl.config import local_clock, pylsl
from bfm_stim.lsl.inlet import RingInlet
from bfm_stim.lsl.meta import SignalSpec, make_signal_info
from lsl_helpers import start_server, stop
from simulators.stream import StreamServer, SyntheticSource

pytestmark = pytest.mark.lsl


def _outlet(source_id: str, n: int, counter: bool = True) -> "pylsl.StreamOutlet":
    spec = SignalSpec(name="t", source_id=source_id, fs=1000.0, ch_names=tuple(f"c{i}" for i in range(n)), counter=counter)
    return pylsl.StreamOutlet(make_signal_info(spec))


def test_state_guards_say_what_to_call(source_id):
    inlet = RingInlet(source_id)
    with pytest.raises(StreamError, match=r"call connect\(\) first"):
        inlet.get_data(10)
    with pytest.raises(StreamError, match="call connect"):
        inlet.disconnect()
    with pytest.raises(StreamError, match="no LSL stream"):
        RingInlet(source_id).connect(timeout=0.3)


def test_ring_inlet_continuity_metadata_and_timestamps(key, source_id):
    with StreamServer(SyntheticSource(4, seed=1), source_id=source_id, key=key, counter=True, speed=4.0):
        with RingInlet(source_id, buffer_s=5.0) as inlet:
            assert inlet.ch_names == ("ch0", "ch1", "ch2", "ch3") and inlet.spec.speed == 4.0
            assert np.isfinite(inlet.time_correction) and abs(inlet.time_correction) < 0.01
            seen = []
            t_end = time.monotonic() + 1.0
            while time.monotonic() < t_end:
                inlet.wait_new(1, timeout=0.5)
                data, ts = inlet.pull_new(counter=True)
                assert data.shape == (5, ts.size)
                seen.append((data[-1].astype(np.int64), ts))
            counters = np.concatenate([c for c, _ in seen])
            ts = np.concatenate([t for _, t in seen])
            assert counters.size > 2000  # 4x real time for 1 s
            np.testing.assert_array_equal(np.diff(counters), 1)
            np.testing.assert_allclose(np.diff(ts), 1 / 4000, atol=1e-6)
            data, ts2 = inlet.get_data(100)
            assert data.shape == (4, 100) and data.dtype == np.float32 and np.all(np.abs(data) < 100)
            assert inlet.n_missing == 0 and not [e for e in inlet.events() if e.kind == "gap"]


def test_gap_detected_from_counter_channel(source_id):
    out = _outlet(source_id, 3)
    with RingInlet(source_id) as inlet:
        out.wait_for_consumers(2.0)
        t = local_clock()
        for lo, hi in ((0, 100), (150, 200)):
            c = np.arange(lo, hi)
            out.push_chunk(np.column_stack([np.zeros((c.size, 3)), c]).astype(np.float32),
                           timestamp=list(t + c / 1000.0))
        time.sleep(0.3)
        assert inlet.n_missing == 50
        gaps = [e for e in inlet.events() if e.kind == "gap"]
        assert len(gaps) == 1 and gaps[0].n_missing == 50


def test_expected_shape_and_mismatch_on_return(source_id):
    out = _outlet(source_id, 4)
    with pytest.raises(StreamMismatchError, match="expected n_channels=5"):
        RingInlet(source_id, n_channels=5).connect(timeout=3)
    with RingInlet(source_id, n_channels=4, fs=1000.0) as inlet:
        del out  # the device goes away ...
        time.sleep(0.3)
        other = _outlet(source_id, 2)  # ... and something else appears under its source_id
        t_end = time.monotonic() + 5
        with pytest.raises(StreamMismatchError, match="came back with 3 channels"):
            while time.monotonic() < t_end:
                inlet.get_data(1)
                time.sleep(0.05)
        del other


def test_server_killed_dropout_reported_fast_and_recovered(key_file, source_id):
    events: list = []
    args = ["--synthetic", "8", "--counter", "--source-id", source_id, "--key-file", str(key_file)]
    proc = start_server(*args)
    try:
        with RingInlet(source_id, dropout_s=0.2, on_event=events.append) as inlet:
            assert inlet.wait_new(100, timeout=5.0)
            proc.send_signal(signal.SIGKILL)
            t_kill = local_clock()
            proc.wait(5)
            t_end = time.monotonic() + 2
            while not [e for e in events if e.kind in ("lost", "dropout")] and time.monotonic() < t_end:
                time.sleep(0.005)
            lost = [e for e in events if e.kind in ("lost", "dropout")]
            assert lost and lost[0].time - t_kill < 0.5, lost
            proc = start_server(*args)
            t_end = time.monotonic() + 20
            while not [e for e in events if e.kind == "recovered"] and time.monotonic() < t_end:
                time.sleep(0.05)
            assert [e for e in events if e.kind == "recovered"], events
            inlet.pull_new()
            assert inlet.wait_new(200, timeout=5.0)
            data, ts = inlet.pull_new(counter=True)
            assert np.all(np.diff(data[-1]) == 1) and ts[0] > t_kill
    finally:
        stop(proc)
