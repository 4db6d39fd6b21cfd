"""``bfm-stim demo`` / ``make demo``: a closed-loop session end to end on the built-in defaults.

1. Serves an evaluation-cohort parkinsonian basal-ganglia patient (``bg-beta-v0``; never seen in
   pretraining) over LSL in a subprocess (``bfm-stim serve``; faster than real time, it says how much).
2. Runs a trial-mode session against it: 30 s of rest, the shipped foundation model adapted zero-shot,
   the patient's healthy state as the latent target, surrogate-guided BO (``guided``) choosing each
   train, every command signed, acknowledged and logged ahead; then a short continuous (adaptive)
   segment on the best contact found (130 Hz, 60 µs, amplitude set by the controller every 100 ms).
3. Stops the patient and scores the result with the simulator's ground truth: the oracle cost
   (8 noise realizations) of the stimulus the session recommends, against the oracle optimum of a
   dense grid search and against no stimulation, as gap-normalized regret
   (c − c_opt) / (c_off − c_opt).

Everything lands in ``OUT/session`` (log, stream, FIF, report) and ``OUT/demo.json``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from bfm_stim._logging import get_logger

__all__ = ["run_demo", "SessionObjective"]

log = get_logger("loops.demo")
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class SessionObjective:
    """A session's measured objective in the simulators' oracle signature ``(patient, data, stim) -> cost``."""

    measured: Callable[[np.ndarray], float]
    key: str

    def __call__(self, patient: Any, data: Any, stimulus: Any) -> Any:
        import torch

        return torch.tensor(self.measured(np.asarray(data)))


def _serve(seed: int, key: Path, source_id: str, speed: float, log_path: Path,
           patient: str = "bg-beta-v0") -> subprocess.Popen:
    env = dict(os.environ)
    env.setdefault("LSLAPICFG", str(REPO / "bfm_stim" / "lsl" / "lsl_api.cfg"))
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "simulators.stream", "--patient", patient, "--seed", str(seed), "--key-file",
           str(key), "--speed", str(speed), "--source-id", source_id, "--log-level", "WARNING"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))


def demo_config(source_id: str, key: Path, *, budget: int, rest_s: float, continuous_s: float) -> Any:
    from loops.session.config import SessionConfig

    return SessionConfig.from_dict({
        "device": {"source_id": source_id, "key_file": str(key.resolve()), "connect_timeout_s": 120.0},
        "calibration": {"rest_s": rest_s, "mode": "zero_shot", "target": "healthy"},
        "trials": {"optimizer": "guided", "budget": budget, "rest_s": 2.0},
        "continuous": {"segments": ["adaptive"] if continuous_s > 0 else [], "duration_s": max(continuous_s, 0.5)},
    })


def run_demo(out: Path, *, seed: int | None = None, speed: float = 2.0, budget: int = 12, rest_s: float = 30.0,
             continuous_s: float = 10.0, live: bool | None = None) -> Iterator[str]:
    """Run the demo into ``out``; yields the lines to print.

    Args:
        out: Output folder (``out/session`` is the session directory; replaced if present).
        seed: Evaluation-cohort patient seed (default: the first).
        speed: The simulated patient runs this many times faster than real time.
        budget: Trials of the trial-mode session.
        rest_s: Calibration rest, s of signal.
        continuous_s: Length of the continuous (adaptive) segment, s of signal (0: none).
        live: Live terminal view (default: when stdout is a terminal).
    """
    import shutil

    import simulators
    from bfm_stim.lsl.protocol import keygen
    from loops.session.runner import run_session

    t_start = time.monotonic()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed = simulators.cohort("eval", 1)[0] if seed is None else int(seed)
    key = keygen(out / "session.key", overwrite=True)
    sid = f"bfm-demo-bg-beta-{seed}-{secrets.token_hex(3)}"
    sess = out / "session"
    if sess.exists():
        shutil.rmtree(sess)
    yield (f"serving bg-beta-v0 seed {seed} (evaluation cohort) as LSL device {sid!r} at {speed:g}x real time "
           f"(all durations below are the patient's seconds)")
    proc = _serve(seed, key, sid, speed, out / "device.log")
    try:
        cfg = demo_config(sid, key, budget=budget, rest_s=rest_s, continuous_s=continuous_s)
        yield (f"session: {rest_s:g} s rest, zero-shot adaptation of the shipped BFM, healthy-state latent target, "
               f"{budget} trials of surrogate-guided BO" + (f", {continuous_s:g} s adaptive" if continuous_s else ""))
        summary = run_session(cfg, sess, live=live)
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    t_session = time.monotonic() - t_start
    yield f"session done in {t_session:.0f} s: {summary['trials_completed']} trials, end: {summary['end_reason']}"
    truth = ground_truth(sess, seed)
    result = {"patient": "bg-beta-v0", "seed": seed, "speed": speed, "session": summary, "ground_truth": truth,
              "wall_s": time.monotonic() - t_start, "session_wall_s": t_session}
    (out / "demo.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    yield from _lines(summary, truth, sess)
    yield f"demo finished in {result['wall_s']:.0f} s (wrote {out / 'demo.json'})"


def ground_truth(sess: Path, seed: int, patient_id: str = "bg-beta-v0") -> dict[str, Any]:
    """Oracle cost of the session's recommendation vs the oracle optimum and no stimulation
    (``patient_id`` and ``seed``: the served patient)."""
    import hashlib

    import simulators
    from bfm_stim.space import Stimulus
    from loops.session.calibrate import session_objective

    summary = json.loads((sess / "session.json").read_text()).get("summary") or {}
    patient = simulators.make(patient_id, seed=seed)
    digest = hashlib.sha256((sess / "target.npz").read_bytes() + (sess / "patient.pt").read_bytes()).hexdigest()[:16]
    obj = SessionObjective(session_objective(sess), key=f"session:{digest}")
    t0 = time.monotonic()
    opt = simulators.oracle_optimum(patient, obj)
    c_opt = simulators.oracle_cost(patient, Stimulus.from_dict(opt["stimulus"]), obj)
    c_off = simulators.oracle_cost(patient, None, obj)
    best = summary.get("best")
    c_best = simulators.oracle_cost(patient, Stimulus.from_dict(best["stimulus"]), obj) if best else c_off
    gap = c_off - c_opt
    return {"oracle_optimum": opt["stimulus"], "cost_opt": c_opt, "cost_off": c_off, "cost_recommended": c_best,
            "regret_gap": (c_best - c_opt) / gap if gap > 0 else None, "oracle_s": time.monotonic() - t0}


def _lines(summary: dict, truth: dict, sess: Path) -> Iterator[str]:
    from loops.session.live import _stim_text
    from bfm_stim.space import Stimulus

    b = summary.get("best")
    yield (f"cost before (no stimulation, measured on the rest): {summary['baseline_cost']:.4g}; "
           f"after (best trial): {b['cost']:.4g}" if b else "no trial completed")
    if b:
        yield f"recommended: {_stim_text(Stimulus.from_dict(b['stimulus']))} (trial {b['trial']} of {summary['trials_completed']})"
    yield (f"ground truth (simulator oracle, 8 noise realizations): off {truth['cost_off']:.4g}, recommended "
           f"{truth['cost_recommended']:.4g}, optimum {truth['cost_opt']:.4g} "
           f"({_stim_text(Stimulus.from_dict(truth['oracle_optimum']))}); gap-normalized regret "
           + (f"{truth['regret_gap']:.3f}" if truth["regret_gap"] is not None else "n/a (no gap)"))
    dt = summary.get("dead_time_ms") or {}
    yield (f"charge delivered in trials: {summary['charge_trials_uc']:.0f} µC"
           + (f"; adaptive segment: {summary['continuous'][0]['charge_uc']:.0f} µC, stimulation on "
              f"{100 * summary['continuous'][0]['on_fraction']:.0f} % of the time" if summary.get("continuous") else ""))
    if dt:
        yield f"dead time before a command: median {dt['median']:.1f} ms, p95 {dt['p95']:.1f} ms"
    yield f"report: {sess / 'report' / 'index.html'}   (log, stream, FIF: {sess})"
