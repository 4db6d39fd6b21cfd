"""Trial mode: ask → signed command → acknowledgement → response window → cost → tell → rest.

One trial (every transition logged before it takes effect)::

    READY ─ proposal ─▶ log "sent" (fsync) ─▶ push ─▶ ack ─▶ response window ─▶ score ─▶ tell ─▶ REST ─▶ READY
    any fault (dropout, stale or bad data, no ack) or a signal ─▶ stop sent, trial "interrupted", wait for valid data

Durations in the config are signal seconds; the loop waits the wall-clock equivalent
(``Device.wall``). Timing of each trial (``timing`` record): ``stim_s``, ``response_s``
and ``rest_s`` are what the protocol asks for; ``overhead_s`` is everything else (the command's
lead, the last chunk's arrival, waiting for a proposal); ``dead_s`` is the time from the end of the
rest (ready) to the command leaving.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.lsl.config import local_clock
from bfm_stim.space import Stimulus

__all__ = ["run_trials", "SessionInterrupted", "preprocess"]

log = get_logger("loops.session.trials")
CHEAP_ASKS = ("random", "sobol", "cmaes")  # no model to fit: asking after the tell adds no dead time


class SessionInterrupted(Exception):
    """SIGINT/SIGTERM arrived; the loop stops after a stop command."""


class GiveUp(Exception):
    """No valid data for longer than ``[health] max_wait_s``."""


def preprocess(x: np.ndarray, fs: float, stim: Stimulus, cfg: Any) -> np.ndarray:
    """Artifact blanking and filtering of a response window ``(C, n)`` µV (``[preprocess]``)."""
    from bfm_stim import preprocessing as pp

    out = np.asarray(x, np.float64)
    if cfg.blank_ms > 0 and stim.kind == "electrical" and not stim.is_off and stim.frequency_hz > 0:
        n_p = int(stim.duration_s * stim.frequency_hz) + 1
        w = cfg.blank_ms / 1000.0
        out = pp.blank_windows(out, fs, [(k / stim.frequency_hz, k / stim.frequency_hz + w) for k in range(n_p)])
    if cfg.highpass_hz > 0 or cfg.lowpass_hz > 0:
        out = pp.filter_data(out, fs, cfg.highpass_hz or None, cfg.lowpass_hz or None)
    if cfg.notch_hz > 0:
        out = pp.notch_data(out, fs, cfg.notch_hz)
    return out.astype(np.float32)


def charge_delivered_uc(stim: Stimulus, on_s: float | None = None) -> float:
    """Charge of a train, µC: charge per phase × 2 phases × pulses (``on_s``: time on, default its duration)."""
    if stim.kind != "electrical" or stim.is_off:
        return 0.0
    return stim.charge_uc * 2.0 * stim.frequency_hz * (stim.duration_s if on_s is None else on_s)


class TrialLoop:
    """State of the trial mode of one run (see :func:`run_trials`)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.dev = ctx.device
        self.store = ctx.store
        self.prop = ctx.proposer
        self.cal = ctx.calibration

    # --- waiting ------------------------------------------------------------------------------------
    def _poll(self) -> None:
        self.dev.pump()
        self.ctx.refresh()
        if self.ctx.stop_requested:
            raise SessionInterrupted()

    def fault_now(self) -> Any:
        if self.ctx.stop_requested:
            raise SessionInterrupted()
        f = self.ctx.health.check()
        if f is None and not self.dev.listening:
            from loops.session.health import Fault

            f = Fault("lost", "the device does not listen to the command stream (stopped or restarting)")
        return f

    def wait_healthy(self) -> bool:
        """Return once the stream is valid and the device listens (True when it had to wait); log the
        fault and the recovery."""
        f = self.fault_now()
        if f is None:
            return False
        self.store.append("fault", kind=f.kind, detail=f.detail)
        self.ctx.view(status=f"waiting: {f.kind}", fault=f.detail)
        log.warning("stream fault (%s): %s; waiting for valid data", f.kind, f.detail)
        t0 = time.monotonic()
        ok_since = None
        while True:
            self._poll()
            f = self.fault_now()
            if f is None:
                ok_since = ok_since or time.monotonic()
                if time.monotonic() - ok_since >= 0.5:  # valid for half a second before acting again
                    break
            else:
                ok_since = None
            if time.monotonic() - t0 > self.cfg.health.max_wait_s:
                raise GiveUp(f"no valid data for {self.cfg.health.max_wait_s:g} s ([health] max_wait_s); last "
                             f"fault: {f.kind if f else 'none'}")
            time.sleep(0.02)
        self.store.append("recovered", detail="stream valid again; continuing")
        self.ctx.view(status="running", fault="")
        log.info("stream valid again; continuing")
        return True

    def sleep(self, wall_s: float) -> None:
        t_end = time.monotonic() + wall_s
        while time.monotonic() < t_end:
            self._poll()
            time.sleep(min(0.01, max(0.0, t_end - time.monotonic())))

    # --- one trial ----------------------------------------------------------------------------------
    def interrupt(self, k: int, stim: Stimulus, reason: str) -> None:
        self._in_flight = None
        self.dev.stop(f"trial {k} interrupted: {reason}")
        self.prop.cancel(k, stim, "interrupted", reason)
        log.warning("trial %d interrupted: %s", k, reason)

    def policy(self) -> str:
        """When to ask for the next trial: ``after_tell`` (it sees this trial's outcome) for optimizers
        whose asks cost nothing, else ``pending`` (asked as soon as this trial's command has left, with
        this trial as a pending point), so a model fit never delays the next command."""
        p = self.cfg.trials.prefetch
        if p != "auto":
            return p
        return "after_tell" if self.cfg.trials.optimizer in CHEAP_ASKS else "pending"

    def one(self, k: int, t_ready: float) -> tuple[str, float]:
        """Run trial ``k``; returns (status, time it ended: the next trial's ready time).

        A signal while the trial is in flight (sent, not yet told) stops the device and marks it interrupted."""
        self._in_flight: tuple[int, Stimulus] | None = None
        try:
            return self._one(k, t_ready)
        except SessionInterrupted:
            if self._in_flight is not None:
                self.interrupt(*self._in_flight, "the session was stopped by a signal (SIGINT/SIGTERM)")
            raise

    def _one(self, k: int, t_ready: float) -> tuple[str, float]:
        c = self.cfg
        waited = self.wait_healthy()
        t_wait = local_clock()
        k, stim, ask_s = self.prop.result(k, poll=self._poll)
        stim = self.cal.space.check(stim)  # the one safety check, again, before anything leaves
        policy = self.policy()
        seq = self.dev.next_seq
        apply_at = local_clock() + c.device.lead_s
        self.store.append("sent", trial=k, seq=seq, apply_at=apply_at, session_id=self.dev.session_id,
                          stimulus=stim.to_dict())
        self._in_flight = (k, stim)
        self.dev.send(stim, apply_at)
        t_sent = local_clock()
        dead = t_sent - (t_wait if waited else t_ready)  # time the loop itself kept the next command waiting
        self.ctx.view(trial=k, stimulus=stim, status="stimulating", dead_s=dead)
        if policy == "pending":
            self.prop.start(k + 1)
        ack = self.dev.wait_ack(seq, c.device.ack_timeout_s)
        if ack is None:
            self.store.append("fault", kind="no_ack", detail=f"no acknowledgement of seq {seq} within "
                              f"{c.device.ack_timeout_s:g} s ([device] ack_timeout_s)")
            self.interrupt(k, stim, f"no acknowledgement within {c.device.ack_timeout_s:g} s")
            return "interrupted", local_clock()
        self.store.append("ack", trial=k, seq=seq, status=ack.status, applied_at=ack.applied_at, reason=ack.reason,
                          detail=ack.detail, side_effect=ack.side_effect)
        if ack.status != "applied":
            self._in_flight = None
            self.prop.cancel(k, stim, "rejected", ack.reason or "rejected", detail=ack.detail)
            log.warning("trial %d rejected by the device (%s): %s", k, ack.reason, ack.detail)
            return "rejected", local_clock()
        t_on = float(ack.applied_at)
        t_end = t_on + self.dev.wall(stim.duration_s + c.trials.response_s)
        f = self.dev.wait_until(t_end, check=self._during)
        if f is not None:
            self.store.append("fault", kind=f.kind, detail=f.detail)
            self.interrupt(k, stim, f"{f.kind}: {f.detail}")
            return "interrupted", local_clock()
        t_data = local_clock()
        x, ts = self.dev.window(t_on, t_end)
        fs = self.dev.spec.fs
        need = int(round((stim.duration_s + c.trials.response_s) * fs))
        bad = self.ctx.health.data_fault(x)
        if x.shape[1] < need - 2 or bad is not None:
            detail = bad.detail if bad is not None else f"the window holds {x.shape[1]} of {need} samples (gap)"
            self.store.append("fault", kind=bad.kind if bad is not None else "gap", detail=detail)
            self.interrupt(k, stim, detail)
            return "interrupted", local_clock()
        x = preprocess(x[:, :need], fs, stim, c.preprocess)
        cost = float(self.cal.measured(x))
        if not math.isfinite(cost):
            self.interrupt(k, stim, f"the objective is not finite ({cost}) on this window")
            return "interrupted", local_clock()
        rest_end = t_end + self.dev.wall(c.trials.rest_s)
        se = ack.side_effect
        t_score = local_clock()
        extra = {"latent": getattr(self.cal.measured, "last", None)} if hasattr(self.cal.measured, "last") else {}
        outcome = self.prop.tell(k, stim, cost, se, window=[t_on, t_end], seq=seq,
                                 charge_uc=charge_delivered_uc(stim), score_s=t_score - t_data, **extra)
        self._in_flight = None
        self.ctx.on_outcome(k, stim, outcome)
        if policy == "after_tell":
            self.prop.start(k + 1)
        self.ctx.view(status="rest")
        while local_clock() < rest_end:
            self._poll()
            time.sleep(0.005)
        t_next = local_clock()
        stim_w, resp_w, rest_w = (self.dev.wall(stim.duration_s), self.dev.wall(c.trials.response_s),
                                  self.dev.wall(c.trials.rest_s))
        trial_s = t_next - t_ready
        self.store.append("timing", trial=k, trial_s=trial_s, stim_s=stim_w, response_s=resp_w, rest_s=rest_w,
                          overhead_s=trial_s - stim_w - resp_w - rest_w, dead_s=dead, lead_s=t_on - t_sent,
                          ask_s=ask_s, policy=policy, sync=False)
        return "completed", t_next

    def _during(self) -> Any:
        f = self.fault_now()
        self.ctx.refresh()
        return f


def run_trials(ctx: Any) -> str:
    """Run trials until a stopping rule holds; returns the reason (``budget``, ``target``, ``patience``,
    ``wall_clock``, ``device_rejects``)."""
    loop = TrialLoop(ctx)
    c = ctx.cfg.trials
    t_ready = local_clock()
    rejects = 0
    while True:
        reason = ctx.stop_rule()
        if reason:
            return reason
        status, t_ready = loop.one(ctx.next_trial(), t_ready)
        rejects = rejects + 1 if status == "rejected" else 0
        if rejects >= 5:
            return "device_rejects"
        if status != "completed":
            loop.sleep(ctx.device.wall(c.rest_s))
            t_ready = local_clock()
