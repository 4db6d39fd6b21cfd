from __future__ import annotations

import json
import os
import random
import stat

import pytest

from bfm_stim.exceptions import CommandRejected, ConfigError
from bfm_stim.lsl.protocol import (
    REASONS, Ack, CommandSigner, DeviceCommandGate, canonical_json, compute_mac, keygen, load_key,
)
from bfm_stim.space import Contact, Stimulus, StimulusSpace

from lsl_helpers import EXPECTED, GOOD_STIM, bad_command, signed


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def space():
    return StimulusSpace.electrical([Contact("c0", (0.0, 0.0, 0.0))])


@pytest.fixture
def gate(key, space):
    return DeviceCommandGate(key, space, clock=Clock())


def test_keygen_writes_0600_and_load_key_checks(tmp_path):
    p = keygen(tmp_path / "k")
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert len(load_key(p)) == 32
    with pytest.raises(ConfigError, match="exists"):
        keygen(p)
    os.chmod(p, 0o644)
    with pytest.raises(ConfigError, match="0o644"):
        load_key(p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_key(tmp_path / "missing")


def test_canonical_json_and_mac_exclude_mac_field(key):
    d = {"b": 1, "a": [1.5, "µ"], "mac": "x"}
    assert canonical_json({"b": 1, "a": 2}) == b'{"a":2,"b":1}'
    assert compute_mac(d, key) == compute_mac({"a": [1.5, "µ"], "b": 1}, key)
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_signed_command_accepted_once(gate, key):
    signer = CommandSigner(key, session="s1")
    stim = Stimulus.electrical(contact="c0", amplitude_ma=1.0, frequency_hz=130.0, pulse_width_us=60.0)
    seq, text = signer.stimulate(stim, apply_at=1000.1)
    cmd = gate.verify(text)
    assert (cmd.session, cmd.seq, cmd.action, cmd.stimulus, cmd.apply_at) == ("s1", seq, "stimulate", stim, 1000.1)
    with pytest.raises(CommandRejected) as e:
        gate.verify(text)
    assert e.value.reason == "replay" and "last accepted seq 1" in e.value.detail
    # the key fields are all covered: any change breaks the mac
    d = json.loads(text)
    d["apply_at"] = 1000.2
    with pytest.raises(CommandRejected, match="bad_mac"):
        gate.verify(json.dumps(d))


def test_stop_always_wins_but_must_authenticate(gate, key):
    gate.clock.t = 5000.0
    s = CommandSigner(key, session="s2", first_seq=100)
    gate.verify(s.stimulate(Stimulus.off(), apply_at=5000.0)[1])
    old_stop = signed(key, session="s2", seq=3, action="stop", stimulus=None, apply_at=10.0)  # stale and replayed
    assert gate.verify(old_stop).action == "stop"
    assert gate.verify(old_stop).action == "stop"  # replaying a stop only stops
    forged = json.loads(old_stop)
    forged["mac"] = "0" * 64
    cmd, ack = gate.process(json.dumps(forged))
    assert cmd is None and ack.reason == "bad_mac"


def test_each_reason(gate, key):
    now = gate.clock()
    cases = {
        "malformed": "{not json",
        "bad_mac": json.dumps({"v": 1}),
        "bad_field": signed(key, seq=1, apply_at=now, action="fire"),
        "bad_version": signed(key, seq=1, apply_at=now, v=2),
        "stale": signed(key, seq=1, apply_at=now - 0.6),
        "future": signed(key, seq=1, apply_at=now + 11),
        "invalid_stimulus": signed(key, seq=1, apply_at=now, stimulus={**GOOD_STIM, "kind": "laser"}),
        "unsafe": signed(key, seq=1, apply_at=now, stimulus={**GOOD_STIM, "amplitude_ma": 5.0, "pulse_width_us": 450.0}),
    }
    for reason, msg in cases.items():
        cmd, ack = gate.process(msg)
        assert cmd is None and ack.status == "rejected" and ack.reason == reason, (reason, ack)
        assert Ack.from_json(ack.to_json()) == ack
    assert "charge_density" in gate.process(cases["unsafe"])[1].detail
    # within tolerance: accepted
    assert gate.process(signed(key, seq=1, apply_at=now - 0.4))[0] is not None


def test_fuzz_10000_commands_none_applied(gate, key):
    """Malformed, wrong types, NaN, out of range, unsafe, bad/missing mac, replayed, stale: all refused."""
    rng = random.Random(1234)
    now = gate.clock()
    last = 500
    assert gate.verify(signed(key, seq=last, apply_at=now)).seq == last  # the session exists
    seen: dict[str, int] = {}
    for _ in range(10_000):
        msg, cat = bad_command(rng, key, now, last)
        cmd, ack = gate.process(msg)
        assert cmd is None, (cat, msg[:300])
        assert ack is not None and ack.status == "rejected" and ack.reason in REASONS
        assert ack.reason in EXPECTED[cat], (cat, ack.reason, ack.detail, msg[:300])
        assert ack.detail
        seen[cat] = seen.get(cat, 0) + 1
    assert len(seen) == len(EXPECTED) and min(seen.values()) > 500
    assert gate.counts.get("internal", 0) == 0 and "accepted" not in gate.counts
