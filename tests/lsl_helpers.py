"""Helpers for every LSL test: subprocess environment, device servers, and a generator of bad commands.

Importable as ``lsl_helpers`` from any test module (``tests/`` is on ``sys.path`` as the folder of the
suite's root ``conftest.py``). Every LSL process runs with the machine-only liblsl configuration.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LSL_CFG = REPO / "bfm_stim" / "lsl" / "lsl_api.cfg"
os.environ["LSLAPICFG"] = str(LSL_CFG)

from bfm_stim.lsl.protocol import PROTOCOL_VERSION, canonical_json, compute_mac  # noqa: E402  (after LSLAPICFG)


def child_env() -> dict[str, str]:
    """Environment for LSL subprocesses: machine-only config, no stream scope, the repository on the path."""
    env = dict(os.environ)
    env["LSLAPICFG"] = str(LSL_CFG)
    env.pop("BFM_STIM_LSL_SCOPE", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def start_server(*args: str) -> subprocess.Popen:
    """``python -m simulators.stream ARGS`` in a subprocess."""
    return subprocess.Popen([sys.executable, "-m", "simulators.stream", *args], env=child_env(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """Terminate ``proc`` and return its exit code; killed (a negative code) if it outlives ``timeout`` s."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


# A generator of bad stimulation commands (shared by the in-process and over-LSL fuzz tests).
GOOD_STIM = {"kind": "electrical", "contact": "c0", "amplitude_ma": 1.0, "frequency_hz": 130.0,
             "pulse_width_us": 60.0, "duration_s": 1.0, "biphasic": True}
CATEGORIES = ("malformed", "wrong_type", "nan", "out_of_range", "unsafe_charge", "bad_mac", "no_mac", "replay",
              "stale", "future", "bad_version", "unknown_field")
EXPECTED = {"malformed": {"malformed"}, "wrong_type": {"bad_field", "invalid_stimulus"}, "nan": {"malformed"},
            "out_of_range": {"unsafe", "invalid_stimulus"}, "unsafe_charge": {"unsafe"}, "bad_mac": {"bad_mac"},
            "no_mac": {"bad_mac"}, "replay": {"replay"}, "stale": {"stale"}, "future": {"future"},
            "bad_version": {"bad_version"}, "unknown_field": {"bad_field", "invalid_stimulus"}}


def signed(key: bytes, **fields) -> str:
    """A stimulate command of session ``fuzz`` with ``fields`` replaced, signed with ``key`` (canonical JSON)."""
    d = {"v": PROTOCOL_VERSION, "session": "fuzz", "seq": 10**7, "action": "stimulate", "stimulus": dict(GOOD_STIM),
         "apply_at": 0.0}
    d.update(fields)
    d = {k: v for k, v in d.items() if v is not _DROP}
    d["mac"] = compute_mac(d, key)
    return canonical_json(d).decode()


_DROP = object()


def bad_command(rng: random.Random, key: bytes, now: float, last_seq: int) -> tuple[str, str]:
    """One bad message and its category. ``last_seq``: highest seq already accepted for session 'fuzz'."""
    cat = rng.choice(CATEGORIES)
    seq = last_seq + 1 + rng.randrange(1000)
    if cat == "malformed":
        good = signed(key, seq=seq, apply_at=now)
        choice = rng.randrange(4)
        if choice == 0:
            msg = good[: rng.randrange(len(good))]
        elif choice == 1:
            msg = "".join(chr(rng.randrange(1, 0x2FF)) for _ in range(rng.randrange(1, 200)))
        elif choice == 2:
            msg = json.dumps(rng.choice([[1, 2], "str", 3.5, None, True]))
        else:
            msg = "[" * 5000
        if msg.startswith("{") and msg == good:
            msg = msg[:-1]
        return msg, cat
    if cat == "wrong_type":
        field, value = rng.choice([("seq", "1"), ("seq", 1.5), ("seq", -3), ("seq", True), ("session", 7),
                                   ("session", "bad session!"), ("action", "zap"), ("apply_at", "now"),
                                   ("apply_at", None), ("stimulus", [1]), ("stimulus", "x"),
                                   ("stimulus", {**GOOD_STIM, "amplitude_ma": "1"}),
                                   ("stimulus", {**GOOD_STIM, "contact": 3}), ("stimulus", {**GOOD_STIM, "kind": "laser"}),
                                   ("stimulus", {**GOOD_STIM, "biphasic": "yes"}), ("session", _DROP), ("seq", _DROP)])
        kw = {"seq": seq, "apply_at": now, field: value}
        return signed(key, **kw), cat
    if cat == "nan":
        good = json.loads(signed(key, seq=seq, apply_at=now))
        txt = json.dumps(good).replace(str(good["stimulus"]["amplitude_ma"]), rng.choice(["NaN", "Infinity", "-Infinity"]), 1)
        return txt, cat
    if cat == "out_of_range":
        stim = dict(GOOD_STIM)
        stim[rng.choice(["amplitude_ma", "frequency_hz", "pulse_width_us"])] = rng.choice([-1.0, 600.0, 1e6, 1e9])
        return signed(key, seq=seq, apply_at=now, stimulus=stim), cat
    if cat == "unsafe_charge":
        stim = {**GOOD_STIM, "amplitude_ma": rng.uniform(4.1, 5.0), "pulse_width_us": rng.uniform(440.0, 450.0)}
        return signed(key, seq=seq, apply_at=now, stimulus=stim), cat
    if cat == "bad_mac":
        d = json.loads(signed(key, seq=seq, apply_at=now))
        how = rng.randrange(3)
        if how == 0:
            d["mac"] = "".join(rng.choice("0123456789abcdef") for _ in range(64))
        elif how == 1:
            d["stimulus"]["amplitude_ma"] = 2.0  # tampered after signing
        else:
            d["mac"] = compute_mac({k: v for k, v in d.items() if k != "mac"}, b"another key of 32 bytes........")
        return json.dumps(d), cat
    if cat == "no_mac":
        d = json.loads(signed(key, seq=seq, apply_at=now))
        if rng.random() < 0.5:
            del d["mac"]
        else:
            d["mac"] = rng.choice([None, 123, "", "zz"])
        return json.dumps(d), cat
    if cat == "replay":
        return signed(key, seq=rng.randrange(0, last_seq + 1), apply_at=now), cat
    if cat == "stale":
        return signed(key, seq=seq, apply_at=now - rng.uniform(1.0, 1e6)), cat
    if cat == "future":
        return signed(key, seq=seq, apply_at=now + rng.uniform(11.0, 1e9)), cat
    if cat == "bad_version":
        return signed(key, seq=seq, apply_at=now, v=rng.choice([0, 2, "1", None])), cat
    return signed(key, seq=seq, apply_at=now, extra=rng.choice([1, "x", None])), cat
