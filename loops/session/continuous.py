"""Continuous (adaptive) mode over LSL: every ``period_s`` a biomarker of the newest window sets the amplitude.

Each segment of ``[continuous] segments`` runs ``duration_s`` s of signal in one mode:

- ``adaptive``: :class:`~loops.session.controller.AdaptiveController` (thresholds calibrated on the
  session's rest, ramp limits, hysteresis, blanking);
- ``open_loop``: the same contact, rate and pulse width at ``amplitude_max_ma``, always on;
- ``off``: no stimulation (the biomarker is still computed and logged).

Each period the loop waits for the next chunk of signal, computes the biomarker on the newest
window, lets the controller decide, logs the decision (``continuous.jsonl``, flushed before the
command is pushed) and sends a train of ``command_duration_s`` with ``apply_at`` = now, so the
device applies it at its next sample. Stimulation therefore ends by itself at most
``command_duration_s`` after the loop stops. The *decision latency* of each command is the time
from the last sample of its window to the sample the device applied it at (its ack's
``applied_at``). A stream fault stops stimulation at once and the segment waits for valid data.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.lsl.config import local_clock
from bfm_stim.space import Stimulus, StimulusSpace
from loops.config_files import CONFIG_DIR

__all__ = ["run_continuous", "controller_config", "segment_summary"]

log = get_logger("loops.session.continuous")
DEVICE_DURATIONS = (0.05, 600.0)  # s: the train durations a device accepts (continuous commands are short)


def controller_config(ctx: Any) -> Any:
    """The controller's settings: ``[continuous.controller]`` over the bundled ``continuous`` config; the contact
    from the trials' best train when ``use_best`` (the rate and pulse width stay the controller's: the
    trials may have optimized a target whose best train is, say, 2 Hz, which suppresses no beta)."""
    from loops.session.controller import ControllerConfig

    base = CONFIG_DIR / "continuous.toml"
    cfg = ControllerConfig.from_toml(base) if base.is_file() else ControllerConfig()
    if ctx.cfg.continuous.controller:
        cfg = cfg.replace(**dict(ctx.cfg.continuous.controller))
    best = _best_train(ctx) if ctx.cfg.continuous.use_best else None
    if best is not None and "contact" not in dict(ctx.cfg.continuous.controller):
        cfg = cfg.replace(contact=best.contact)
    if cfg.contact is None:  # nothing to take it from: the first contact of the device's space
        contacts = [c.name for c in ctx.calibration.space.contacts]
        log.warning("continuous mode: no trial delivered a usable train; stimulating on %s (set "
                    "[continuous.controller] contact to choose)", contacts[0])
        cfg = cfg.replace(contact=contacts[0])
    return cfg


def _best_train(ctx: Any) -> Stimulus | None:
    """The completed trial of lowest cost whose train delivered charge, preferring ones without a side effect."""
    done = [v for v in ctx.store.trials() if v.status == "completed" and v.cost is not None]
    trains = [(v, Stimulus.from_dict(v.stimulus)) for v in done]
    trains = [(v, s) for v, s in trains if s.kind == "electrical" and not s.is_off]
    if not trains:
        return None
    ok = [(v, s) for v, s in trains if (v.side_effect or 0.0) < 0.5] or trains
    return min(ok, key=lambda vs: vs[0].cost)[1]


def _space(ctx: Any) -> StimulusSpace:
    """The device's space with the train durations a device accepts (the trials' space fixes them at 1 s)."""
    from loops.session.calibrate import simulated_patient

    if ctx.cfg.device.space:
        return ctx.calibration.space
    p = simulated_patient(ctx.device.spec)
    return p.stimulus_space(ctx.cfg.device.space_kind, duration_s=DEVICE_DURATIONS) if p is not None \
        else ctx.calibration.space


def run_continuous(ctx: Any) -> list[dict[str, Any]]:
    """Run every configured segment; returns their summaries (also logged as ``continuous`` records)."""
    from loops.session.biomarker import from_spec
    from loops.session.controller import AdaptiveController, OpenLoop

    cfg = controller_config(ctx)
    space = _space(ctx)
    spec = ctx.device.spec
    want = ctx.cfg.continuous.biomarker
    beta = from_spec(want if want.startswith("bandpower:") else "bandpower:13-30", spec.fs, list(spec.ch_names),
                     [t.lower() for t in spec.ch_types], period_s=cfg.period_s)
    rest = np.load(ctx.store.path / "calibration" / "rest.npy")
    bio: Any = beta
    if want.startswith("state:"):
        from bfm_stim.decoding import StateDecoder
        from loops.session.state_biomarker import LatentStateBiomarker

        dec = StateDecoder.load(ctx.cfg.resolve(want.split(":", 1)[1]))
        bio = LatentStateBiomarker(dec, ctx.calibration.surrogate, ctx.calibration.rows, spec.fs, rest,
                                   period_s=cfg.period_s)
        log.info("continuous biomarker: %r from %s", bio, want)
    step = max(1, int(cfg.period_s * spec.fs))
    rest_b = np.array([bio(rest[:, i - bio.n_samples:i]) for i in range(bio.n_samples, rest.shape[1] + 1, step)])
    bio.reset()
    rest_power = _band_power(rest, spec.fs, beta)
    out = []
    first = max((int(r.get("segment", -1)) for r in ctx.store.records if r["type"] == "continuous"), default=-1) + 1
    for i, mode in enumerate(ctx.cfg.continuous.segments):
        if mode == "adaptive":
            ctl: Any = AdaptiveController(cfg, space).calibrate(rest_b)
        elif mode == "open_loop":
            ctl = OpenLoop(cfg, space)
        else:
            ctl = None
        bio.reset()
        out.append(run_segment(ctx, first + i, mode, ctl, bio, cfg, rest_power, beta))
    return out


def _band_power(x: np.ndarray, fs: float, bio: Any) -> float:
    """Mean band power (µV²/Hz) of ``x`` over the biomarker's channels and band (Welch, 0.5 s segments)."""
    from scipy.signal import welch

    rows = list(bio.channels) if getattr(bio, "channels", None) is not None else list(range(x.shape[0]))
    f, p = welch(np.asarray(x, np.float64)[rows], fs=fs, nperseg=min(x.shape[1], int(0.5 * fs)), axis=-1)
    lo, hi = bio.band
    m = (f >= lo) & (f <= hi)
    return float(p[:, m].mean())


def run_segment(ctx: Any, seg: int, mode: str, ctl: Any, bio: Any, cfg: Any, rest_power: float,
                power_bio: Any = None) -> dict[str, Any]:
    """One continuous segment (see the module docstring); returns its summary. ``power_bio``: the band-power
    biomarker whose band and channels the summary's power ratio uses (default ``bio``)."""
    power_bio = power_bio if power_bio is not None else bio
    from loops.session.trials import SessionInterrupted, TrialLoop

    dev, store = ctx.device, ctx.store
    duration = ctx.cfg.continuous.duration_s
    period_w = dev.wall(cfg.period_s)
    latency: dict[int, float] = {}
    sent: dict[int, tuple[float, float]] = {}  # seq -> (t_last, amplitude)
    applied: list[tuple[float, float, int]] = []  # (applied_at, amplitude, seq)
    stops: list[float] = []
    decide_ms: list[float] = []  # last sample of the window -> command pushed (the session's share), ms

    def on_ack(ack: Any) -> None:
        if ack.seq in sent and ack.status == "applied" and ack.applied_at is not None:
            t_last, amp = sent.pop(ack.seq)
            latency[ack.seq] = float(ack.applied_at) - t_last
            applied.append((float(ack.applied_at), amp, ack.seq))
            store.continuous({"kind": "ack", "segment": seg, "seq": ack.seq, "status": "applied",
                              "applied_at": ack.applied_at, "latency_s": latency[ack.seq]})
        elif ack.seq in sent:  # refused (or superseded by a stop): logged with the device's reason
            sent.pop(ack.seq)
            store.continuous({"kind": "ack", "segment": seg, "seq": ack.seq, "status": ack.status,
                              "reason": ack.reason, "detail": ack.detail})
            log.warning("continuous command %d %s: %s %s", ack.seq, ack.status, ack.reason, ack.detail)
        dev.acks.pop(ack.seq, None)

    dev.on_ack = on_ack
    store.append("continuous", phase="start", mode=mode, segment=seg, duration_s=duration,
                 controller=cfg.to_dict())
    ctx.view(mode=mode, status=f"continuous: {mode}")
    loop = TrialLoop(ctx)
    on = False
    # No garbage-collection pause inside the control loop: collect now, keep what exists out of later
    # collections, and switch the collector off until the segment ends (a 20 s segment allocates little).
    gc.collect()
    gc.freeze()
    gc.disable()
    t0 = local_clock()
    t_end = t0 + dev.wall(duration)
    next_tick = t0
    try:
        while local_clock() < t_end:
            if ctx.stop_requested:
                raise SessionInterrupted()
            while local_clock() < next_tick:
                dev.pump()
                time.sleep(min(0.002, max(0.0, next_tick - local_clock())))
            next_tick += period_w
            dev.pump()
            dev.inlet.wait_new(1, timeout=min(0.05, period_w))  # decide on the chunk that just arrived
            dev.pump()
            for _ in range(8):  # a device running late pushes its backlog chunk after chunk: take the newest
                if not dev.inlet.wait_new(1, timeout=0.0005):
                    break
                dev.pump()
            f = loop.fault_now()
            if f is not None:
                if on:
                    dev.stop(f"continuous: stream fault ({f.kind})")
                    stops.append(local_clock())
                    on = False
                if ctl is not None:
                    ctl.reset()
                loop.wait_healthy()
                next_tick = local_clock()
                continue
            x, ts = dev.inlet.get_data(bio.n_samples)
            t_last = float(ts[-1])
            b = float(bio(x))
            t_rel = t_last - t0
            rec = {"t": t_last, "segment": seg, "mode": mode, "biomarker": b}
            if ctl is None:
                rec.update(amplitude_ma=0.0, threshold_on=None, threshold_off=None, seq=None)
                store.continuous(rec)
                ctx.view(biomarker=b, amplitude_ma=0.0)
                continue
            d = ctl.step(t_rel * dev.speed, b)
            rec.update(amplitude_ma=d.amplitude_ma, threshold_on=d.threshold_on, threshold_off=d.threshold_off,
                       state=d.state, seq=None)
            if d.stimulus is not None:
                seq = dev.next_seq
                rec["seq"], rec["stimulus"] = seq, d.stimulus.to_dict()
                store.continuous(rec)  # logged (flushed) before the command leaves
                t_send = local_clock()
                dev.send(d.stimulus, t_send)
                sent[seq] = (t_last, d.amplitude_ma)
                decide_ms.append(1e3 * (t_send - t_last))
                on = True
            else:
                store.continuous(rec)
                if d.stop or on:
                    dev.stop(f"continuous: {mode} controller off")
                    stops.append(local_clock())
                    on = False
            ctx.view(biomarker=b, amplitude_ma=d.amplitude_ma)
    finally:
        gc.enable()
        gc.unfreeze()
        if on:
            dev.stop(f"continuous segment {seg} ends")
            stops.append(local_clock())
        t_stop = local_clock()
        wait_end = t_stop + 0.3  # collect the last acks
        while local_clock() < wait_end and sent:
            dev.pump()
            time.sleep(0.005)
        dev.on_ack = None
        if store._continuous is not None:  # noqa: SLF001
            store._continuous.sync()  # noqa: SLF001
    x, _ = dev.window(t0, t_end)
    summary = segment_summary(mode, cfg, applied, stops, latency, t0, t_end, dev.speed,
                              _band_power(x, dev.spec.fs, power_bio) if x.shape[1] > power_bio.n_samples else None,
                              rest_power)
    if decide_ms:
        summary["session_side_ms"] = {"p50": float(np.median(decide_ms)), "p99": float(np.percentile(decide_ms, 99)),
                                      "max": float(np.max(decide_ms))}
    store.append("continuous", phase="end", mode=mode, segment=seg, **summary)
    ctx.view(mode="trials", status="running")
    log.info("continuous %s: beta %.3g of rest, charge %.0f µC, on %.0f %%, latency p99 %s ms", mode,
             summary["beta_ratio_to_rest"] or float("nan"), summary["charge_uc"], 100 * summary["on_fraction"],
             summary["latency_ms"]["p99"] if summary["latency_ms"] else "-")
    return summary


def segment_summary(mode: str, cfg: Any, applied: list[tuple[float, float, int]], stops: list[float],
                    latency: dict[int, float], t0: float, t_end: float, speed: float, power: float | None,
                    rest_power: float) -> dict[str, Any]:
    """Charge (µC), time on, beta relative to rest and decision latency (ms) of one segment.

    A command applied at ``a`` with amplitude ``A`` stimulates until the next command, a stop, or
    ``command_duration_s`` of signal, whichever comes first (LSL times, converted to signal s by ``speed``).
    """
    applied = sorted(applied)
    ends = sorted(stops)
    charge, on_s = 0.0, 0.0
    for j, (a, amp, _) in enumerate(applied):
        lim = [a + cfg.command_duration_s / speed, t_end]
        if j + 1 < len(applied):
            lim.append(applied[j + 1][0])
        lim += [s for s in ends if s > a][:1]
        dur = max(0.0, min(lim) - a) * speed
        on_s += dur if amp > 0 else 0.0
        charge += 2.0 * amp * cfg.pulse_width_us / 1000.0 * cfg.frequency_hz * dur
    lat = np.array(list(latency.values())) * 1e3
    seg_s = (t_end - t0) * speed
    return {"duration_s": seg_s, "charge_uc": charge, "on_fraction": on_s / seg_s if seg_s > 0 else 0.0,
            "n_commands": len(applied), "beta_power": power,
            "beta_ratio_to_rest": None if power is None or rest_power <= 0 else power / rest_power,
            "latency_ms": None if not lat.size else {"p50": float(np.median(lat)), "p99": float(np.percentile(lat, 99)),
                                                     "max": float(lat.max()), "n": int(lat.size)}}
