"""simulators.stream served in a real subprocess, read with plain pylsl and driven over LSL."""

from __future__ import annotations

import random
import subprocess
import time

import numpy as np
import pytest

from bfm_stim.lsl.config import local_clock, pylsl
from bfm_stim.lsl.link import CommandSender
from bfm_stim.lsl.protocol import REASONS, keygen, load_key
from bfm_stim.space import Stimulus
from lsl_helpers import EXPECTED, bad_command, start_server, stop

pytestmark = pytest.mark.lsl


@pytest.fixture(scope="module")
def patient_server(tmp_path_factory):
    """bg-beta-v0 seed 3 served with a counter channel, shared by the tests of this module."""
    kf = keygen(tmp_path_factory.mktemp("key") / "session.key")
    sid = f"test-stream-{random.randrange(16**8):08x}"
    proc = start_server("--patient", "bg-beta-v0", "--seed", "3", "--counter", "--source-id", sid, "--key-file", str(kf))
    found = pylsl.resolve_byprop("source_id", sid, 1, 60.0)
    if not found:
        stop(proc)
        pytest.fail(f"server did not start: {proc.stderr.read().decode()[-3000:]}")
    yield sid, load_key(kf), proc
    stop(proc)


def _channels(info: "pylsl.StreamInfo") -> list[dict]:
    out, ch = [], info.desc().child("channels").child("channel")
    while not ch.empty():
        loc = ch.child("location")
        out.append({"label": ch.child_value("label"), "type": ch.child_value("type"), "unit": ch.child_value("unit"),
                    "xyz": [loc.child_value(a) for a in "XYZ"] if not loc.empty() else None})
        ch = ch.next_sibling("channel")
    return out


def test_metadata_intact_and_samples_continuous(patient_server):
    import simulators

    sid, _, _ = patient_server
    p = simulators.make("bg-beta-v0", seed=3)
    info = pylsl.resolve_byprop("source_id", sid, 1, 10.0)[0]
    inlet = pylsl.StreamInlet(info, recover=False)
    full = inlet.info(5.0)
    assert full.channel_count() == p.n_channels + 1 and full.nominal_srate() == p.fs
    chans = _channels(full)
    assert [c["label"] for c in chans] == [*p.channel_names, "counter"]
    assert [c["unit"] for c in chans[:-1]] == list(p.channel_units)
    assert [c["type"] for c in chans[:-1]] == list(p.channel_types)
    np.testing.assert_allclose([[float(v) for v in c["xyz"]] for c in chans[:-1]], p.channel_positions * 1000.0, rtol=1e-6)
    acq = full.desc().child("acquisition")
    assert acq.child_value("patient_id") == "bg-beta-v0" and acq.child_value("seed") == "3"
    inlet.open_stream(5.0)
    counters, stamps = [], []
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:
        d, ts = inlet.pull_chunk(timeout=0.1, max_samples=1024, as_numpy=True)
        counters.append(d[:, -1].astype(np.int64))
        stamps.append(ts)
        assert np.all(np.isfinite(d))
    c, ts = np.concatenate(counters), np.concatenate(stamps)
    assert c.size > 1000
    np.testing.assert_array_equal(np.diff(c), 1)
    np.testing.assert_allclose(np.diff(ts), 1e-3, atol=1e-6)
    inlet.close_stream()


def test_commands_applied_at_their_time_and_acknowledged(patient_server):
    import simulators

    sid, key, _ = patient_server
    space = simulators.make("bg-beta-v0", seed=3).stimulus_space()
    stim = space.check(Stimulus.electrical(contact="c1", amplitude_ma=2.0, frequency_hz=130.0, pulse_width_us=60.0))
    with CommandSender(sid, key) as sender:
        apply_at = local_clock() + 0.3
        seq = sender.send(stim, apply_at)
        ack = sender.wait_ack(seq, timeout=3.0)
        assert ack.status == "applied" and ack.seq == seq and ack.session == sender.session
        assert 0.0 <= ack.applied_at - apply_at < 1e-3 + 1e-6  # the first sample at or after apply_at
        unsafe = Stimulus.electrical(contact="c1", amplitude_ma=5.0, frequency_hz=130.0, pulse_width_us=450.0)
        ack = sender.wait_ack(sender.send(unsafe, lead_s=0.05), timeout=3.0)
        assert ack.status == "rejected" and ack.reason == "unsafe" and "charge_density" in ack.detail
        later = sender.send(stim, lead_s=2.0)
        stop_seq = sender.stop()
        a_later, a_stop = sender.wait_ack(later, 3.0), sender.wait_ack(stop_seq, 3.0)
        assert a_stop.status == "applied" and a_stop.action == "stop"
        assert a_later.status == "rejected" and a_later.reason == "superseded"


def test_fuzz_over_lsl_every_command_refused_and_acknowledged(patient_server):
    sid, key, _ = patient_server
    rng = random.Random(7)
    with CommandSender(sid, key, session="fuzz") as sender:
        first = sender.send(Stimulus.off(), lead_s=0.05)  # session 'fuzz' exists: replays are detectable
        assert sender.wait_ack(first, 3.0).status == "applied"
        sent = []
        for i in range(300):
            msg, cat = bad_command(rng, key, local_clock(), first)
            sender.send_raw(msg)
            sent.append(cat)
        acks = []
        t_end = time.monotonic() + 10
        while len(acks) < len(sent) and time.monotonic() < t_end:
            acks += sender.poll_acks(timeout=0.1)
        assert len(acks) == len(sent)
        assert all(a.status == "rejected" and a.reason in REASONS for a in acks)
        assert all(a.reason in EXPECTED[c] for a, c in zip(acks, sent)), [(a.reason, c) for a, c in zip(acks, sent)][:20]
        # the device is still alive and obeys a good command
        ok = sender.send(Stimulus.off(), lead_s=0.05)
        assert sender.wait_ack(ok, 3.0).status == "applied"


def test_sigterm_stops_cleanly(tmp_path):
    key_file, source_id = keygen(tmp_path / "k"), f"test-term-{random.randrange(16**8):08x}"
    proc = start_server("--synthetic", "4", "--source-id", source_id, "--key-file", str(key_file))
    assert pylsl.resolve_byprop("source_id", source_id, 1, 30.0)
    t = time.monotonic()
    assert stop(proc) == 0 and time.monotonic() - t < 3.0


@pytest.mark.parametrize("speed", ["1", "200"])
def test_repeated_signals_never_hang_the_server(tmp_path, speed):
    """SIGTERM, SIGINT, SIGTERM in quick succession, on a server that waits between chunks (1x) and on one
    that is behind schedule (a 32-channel patient at 200x): it exits 0 within seconds every time. (A
    handler that set the stop event while the loop was inside its wait deadlocked on the event's lock.)"""
    import signal as _signal

    for attempt in range(3):
        key_file, source_id = keygen(tmp_path / f"k{attempt}"), f"test-sig-{random.randrange(16**8):08x}"
        proc = start_server("--patient", "bg-beta-v0", "--seed", "1", "--speed", speed, "--source-id", source_id,
                            "--key-file", str(key_file))
        try:
            assert pylsl.resolve_byprop("source_id", source_id, 1, 60.0)
            time.sleep(0.2 + 0.3 * attempt)
            t = time.monotonic()
            for sig in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGTERM):
                if proc.poll() is None:
                    proc.send_signal(sig)
                time.sleep(0.003)
            code = proc.wait(20.0)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server (speed {speed}) hung after three signals")
        finally:
            if proc.poll() is None:  # hung, or a failed check above: never leave it running
                proc.kill()
                proc.wait()
        assert code == 0 and time.monotonic() - t < 10.0
