"""Offline evaluation and tuning of the continuous-mode controller on simulated patients.

Each run replays what the session loop does against a device, on a ``bg-beta`` patient
(``simulators.make("bg-beta-v0", seed=s)``): reset, ``rest_s`` without stimulation (the rest
biomarker values calibrate the quantile thresholds), then ``duration_s`` in ``period_s`` blocks:
advance the patient one block, compute the biomarker on the newest ``window_s`` of its own output
(DBS-lead LFP, stimulation artifact included), call the controller, and apply its decision at the
next sample (``start_stimulation`` of the ``command_duration_s`` train, or ``stop_stimulation``),
as ``simulators.stream`` applies a command at its ``apply_at`` sample. Modes:

* ``"off"``: no stimulation (the reference);
* ``"open_loop"``: continuous stimulation at the controller's settings (contact, frequency, pulse
  width) and ``amplitude_max_ma``;
* ``"adaptive"``: :class:`~loops.session.controller.AdaptiveController`;
* ``"constant"``: open loop at another amplitude (the matched-charge control);
* ``"oracle"``: stimulates a block at ``amplitude_max_ma`` when the *counterfactual* beta power
  of the coming blocks (the off run, same noise) is above a quantile: a controller that knows the
  hidden future, the ceiling of timing-based control.

Every run of one patient starts from the same state with the same noise (counter-based streams
indexed by the absolute sample), so the off run is the stimulated run's exact counterfactual.
Beta suppression is ``1 - P_beta(run) / P_beta(off)`` over the evaluation window, ``P_beta`` the
Welch band power (13–30 Hz, 1 s Hann segments) averaged over the DBS channels; delivered charge is
``amplitude × pulse width × 2 phases × frequency × time on``, µC.

The contact is chosen per patient by a monopolar review (each contact at ``amplitude_max_ma`` for
3 s on an independent noise realization, contacts with a reported side effect excluded; the best
beta suppression wins) unless the config names one.

:func:`tune` searches the controller's gains with CMA-ES (the ``cma`` package) over a unit cube
on TRAINING seeds (a block of seeds outside the evaluation cohort), minimizing the charge fraction
with a penalty when suppression falls below 90 % of open loop's. ``bfm_stim.optim``'s optimizers
ask and tell :class:`~bfm_stim.space.Stimulus` objects of a stimulus space (every proposal passes
the safety gate), which has no place for controller gains, so the plain ``cma`` loop is used.

    python -m loops.session.adaptive_eval --json bench/adaptive_eval.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.signal import welch

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ValidationError
from bfm_stim.space import Stimulus, StimulusSpace
from loops.session.biomarker import BandPowerBiomarker
from loops.session.controller import AdaptiveController, ControllerConfig, OpenLoop
from loops.stats import median

__all__ = ["PATIENT_ID", "TRAIN_SEEDS_OFFSET", "train_seeds", "eval_space", "select_contact", "run", "evaluate",
           "decode", "tune", "ceiling", "dynamics", "main"]

log = get_logger("session.adaptive_eval")

PATIENT_ID = "bg-beta-v0"
BETA = (13.0, 30.0)
# Training patients: the free seed range between the pretraining and evaluation cohorts (no
# evaluation patient is ever tuned on).
TRAIN_SEEDS_OFFSET = 500_000
MODES = ("off", "open_loop", "adaptive", "constant", "oracle")


def train_seeds(n: int) -> list[int]:
    """The first ``n`` tuning seeds (outside the ``pretrain`` and ``eval`` cohorts)."""
    import simulators

    seeds = list(range(TRAIN_SEEDS_OFFSET, TRAIN_SEEDS_OFFSET + n))
    assert all(simulators.cohort_of(s) is None for s in seeds)
    return seeds


def eval_space(patient: Any) -> StimulusSpace:
    """The patient's electrical space with train durations of 0.05–2 s (continuous-mode commands)."""
    return patient.stimulus_space("electrical", duration_s=(0.05, 2.0))


def _dbs(patient: Any) -> list[int]:
    return [i for i, t in enumerate(patient.channel_types) if t == "dbs"] or list(range(patient.n_channels))


def beta_power(x: np.ndarray, fs: float, band: tuple[float, float] = BETA) -> float:
    """Mean Welch PSD in ``band`` (µV²/Hz), 1 s Hann segments, averaged over rows of ``x`` (c, n)."""
    f, p = welch(x, fs=fs, nperseg=min(int(fs), x.shape[-1]), axis=-1)
    m = (f >= band[0]) & (f <= band[1])
    return float(p[..., m].mean())


def select_contact(patient: Any, cfg: ControllerConfig, *, review_s: float = 3.0, trial: int = 101) -> str:
    """Monopolar review: the contact with the largest beta suppression at ``amplitude_max_ma``.

    Each contact is stimulated for ``review_s`` on noise realization ``trial`` (not the evaluation's),
    contacts where the patient reports a side effect are skipped (all skipped: the best anyway).
    """
    space = eval_space(patient)
    dbs = _dbs(patient)
    off = patient.simulate(review_s, None, trial=trial).data.numpy()[dbs]
    p_off = beta_power(off[:, int(patient.fs * 0.5):], patient.fs)
    scores: dict[str, tuple[bool, float]] = {}
    for c in patient.contacts:
        ol = OpenLoop(cfg, space, contact=c.name)
        stim = ol._stim(ol.amplitude_max_ma).with_(duration_s=review_s)
        res = patient.simulate(review_s, stim, trial=trial)
        x = res.data.numpy()[dbs]
        scores[c.name] = (not res.side_effect_reported, 1.0 - beta_power(x[:, int(patient.fs * 0.5):], patient.fs) / p_off)
    best = max(scores, key=lambda k: scores[k])
    log.debug("monopolar review of %s: %s -> %s", patient.id, scores, best)
    return best


@dataclass
class _Setup:
    """One patient prepared for evaluation: contact, space, biomarker and the off run's references."""

    patient: Any
    contact: str
    space: StimulusSpace
    rest_bio: np.ndarray
    p_off: float
    block_beta_off: np.ndarray


def _biomarker(patient: Any, cfg: ControllerConfig, window_s: float) -> BandPowerBiomarker:
    return BandPowerBiomarker(patient.fs, BETA, _dbs(patient), window_s, period_s=cfg.period_s)


def _simulate(setup: _Setup, cfg: ControllerConfig, mode: str, duration_s: float, rest_s: float, *,
              window_s: float, amplitude_ma: float | None = None, oracle_on: np.ndarray | None = None,
              latency_s: float = 0.0, record: bool = False) -> dict[str, Any]:
    p = setup.patient
    fs = p.fs
    blk = int(round(cfg.period_s * fs))
    lat = int(round(latency_s * fs))
    if not 0 <= lat < blk:
        raise ValidationError("latency_s", latency_s, f"[0, period_s = {cfg.period_s:g}) s")
    n_rest, n_blocks = int(round(rest_s / cfg.period_s)), int(round(duration_s / cfg.period_s))
    bio = _biomarker(p, cfg, window_s)
    if mode == "adaptive":
        ctl: Any = AdaptiveController(cfg, setup.space, contact=setup.contact)
    elif mode in ("open_loop", "constant"):
        ctl = OpenLoop(cfg, setup.space, contact=setup.contact, amplitude_ma=amplitude_ma if mode == "constant" else None)
    else:
        ctl = OpenLoop(cfg, setup.space, contact=setup.contact)  # for the oracle's trains
    p.reset()
    buf = np.zeros((p.n_channels, max(bio.n_samples, blk)), np.float32)
    rest_vals = []
    for _ in range(n_rest):
        x = p.advance(blk)
        buf = np.concatenate([buf[:, blk:], x], axis=1)
        rest_vals.append(bio(buf))
    if mode == "adaptive":
        ctl.calibrate(np.asarray(rest_vals))
    seg = np.empty((p.n_channels, n_blocks * blk), np.float32)
    amps = np.zeros(n_blocks)
    trace = []
    current: Stimulus | None = None
    pending: Any = None  # decision waiting for its apply sample (latency)
    for k in range(n_blocks):
        t = (n_rest + k) * cfg.period_s
        if pending is not None and lat:
            seg[:, k * blk:k * blk + lat] = p.advance(lat)
            current = _apply(p, pending, current)
            seg[:, k * blk + lat:(k + 1) * blk] = p.advance(blk - lat)
        else:
            if pending is not None:
                current = _apply(p, pending, current)
            seg[:, k * blk:(k + 1) * blk] = p.advance(blk)
        amps[k] = 0.0 if current is None else current.amplitude_ma
        buf = np.concatenate([buf[:, blk:], seg[:, k * blk:(k + 1) * blk]], axis=1)
        if mode == "off":
            pending = None
            continue
        if mode == "oracle":
            on = bool(oracle_on[k + 1]) if oracle_on is not None and k + 1 < len(oracle_on) else False
            pending = ctl.step(t + cfg.period_s, None)
            if not on:
                pending = _OFF
        else:
            b = bio(buf)
            pending = ctl.step(t + cfg.period_s, b)
            if record:
                trace.append(pending.to_dict())
    dbs = _dbs(p)
    pw = beta_power(seg[dbs], fs)
    on_s = (amps > 0).sum() * cfg.period_s
    charge = float(sum(cfg.train_charge_uc(a, cfg.period_s) for a in amps))
    out = {"mode": mode, "beta_power": pw, "charge_uc": charge, "time_on_fraction": float(on_s / (n_blocks * cfg.period_s)),
           "mean_amplitude_ma": float(amps.mean()), "amplitude_max_ma": float(getattr(ctl, "amplitude_max_ma", 0.0))}
    if mode == "off":
        block = seg[dbs].reshape(len(dbs), n_blocks, blk)
        out["block_beta"] = np.array([beta_power(block[:, i], fs) for i in range(n_blocks)])
        out["rest_bio"] = np.asarray(rest_vals)
    if record:
        out["trace"] = trace
        out["amplitudes"] = amps.tolist()
    return out


class _Off:
    stimulus = None
    stop = True
    amplitude_ma = 0.0


_OFF = _Off()


def _apply(p: Any, decision: Any, current: Stimulus | None) -> Stimulus | None:
    """Apply a decision as the device would: a new train, or stop."""
    if decision.stimulus is None:
        if current is not None:
            p.stop_stimulation()
        return None
    p.start_stimulation(decision.stimulus)
    return decision.stimulus


def _setup(seed: int, cfg: ControllerConfig, duration_s: float, rest_s: float, window_s: float,
           patient_id: str = PATIENT_ID) -> _Setup:
    import simulators

    patient = simulators.make(patient_id, seed=seed)
    contact = cfg.contact or select_contact(patient, cfg)
    s = _Setup(patient, contact, eval_space(patient), np.zeros(0), math.nan, np.zeros(0))
    off = _simulate(s, cfg, "off", duration_s, rest_s, window_s=window_s)
    s.p_off, s.block_beta_off, s.rest_bio = off["beta_power"], off["block_beta"], off["rest_bio"]
    return s


def _summary(setup: _Setup, r: dict[str, Any], ref: dict[str, Any] | None) -> dict[str, Any]:
    out = {k: v for k, v in r.items() if k not in ("block_beta", "rest_bio")}
    out["suppression"] = 1.0 - r["beta_power"] / setup.p_off
    if ref is not None:
        ref_supp = 1.0 - ref["beta_power"] / setup.p_off
        out["suppression_ratio"] = out["suppression"] / ref_supp if ref_supp > 0 else math.nan
        out["charge_fraction"] = r["charge_uc"] / ref["charge_uc"] if ref["charge_uc"] > 0 else math.nan
    return out


def run(seed: int, cfg: ControllerConfig, duration_s: float = 60.0, *, rest_s: float = 20.0, window_s: float = 0.5,
        matched_charge: bool = True, latency_s: float = 0.0, record: bool = False,
        patient_id: str = PATIENT_ID) -> dict[str, Any]:
    """Off, open-loop and adaptive runs (and the matched-charge constant amplitude) on one patient.

    Returns:
        ``{"seed", "contact", "off", "open_loop", "adaptive"[, "matched_charge"]}``; each run has
        beta_power (µV²/Hz), suppression, charge_uc, time_on_fraction, mean_amplitude_ma, and the
        stimulated runs suppression_ratio and charge_fraction against open loop.
    """
    s = _setup(seed, cfg, duration_s, rest_s, window_s, patient_id)
    kw = dict(window_s=window_s, latency_s=latency_s)
    ol = _simulate(s, cfg, "open_loop", duration_s, rest_s, **kw)
    ad = _simulate(s, cfg, "adaptive", duration_s, rest_s, record=record, **kw)
    out = {"seed": seed, "contact": s.contact, "off": {"beta_power": s.p_off},
           "open_loop": _summary(s, ol, ol), "adaptive": _summary(s, ad, ol)}
    if matched_charge:
        amp = ad["mean_amplitude_ma"]
        mc = _simulate(s, cfg, "constant", duration_s, rest_s, amplitude_ma=min(amp, ol["amplitude_max_ma"]), **kw)
        out["matched_charge"] = _summary(s, mc, ol)
    return out


def _median(rows: list[dict[str, Any]], name: str, key: str) -> float:
    return median([r[name][key] for r in rows if name in r and key in r[name]])


def evaluate(seeds: Sequence[int], cfg: ControllerConfig, duration_s: float = 60.0, *, rest_s: float = 20.0,
             window_s: float = 0.5, latency_s: float = 0.0, matched_charge: bool = True,
             patient_id: str = PATIENT_ID) -> dict[str, Any]:
    """Adaptive against open loop on ``seeds``; per-patient figures, medians and the target check.

    Target: adaptive reaches >= 90 % of open loop's beta suppression with <= 50 % of
    its charge; ``target_met`` counts the patients that meet it.
    """
    t0 = time.perf_counter()
    rows = [run(s, cfg, duration_s, rest_s=rest_s, window_s=window_s, latency_s=latency_s,
                matched_charge=matched_charge, patient_id=patient_id) for s in seeds]
    for r in rows:
        a = r["adaptive"]
        r["target_met"] = bool(a["suppression_ratio"] >= 0.9 and a["charge_fraction"] <= 0.5)
    med = {f"{m}_{k}": _median(rows, m, k) for m in ("open_loop", "adaptive", "matched_charge")
           for k in ("suppression", "charge_uc", "time_on_fraction", "mean_amplitude_ma", "suppression_ratio",
                     "charge_fraction")}
    return {"patient_id": patient_id, "seeds": list(seeds), "duration_s": duration_s, "rest_s": rest_s,
            "window_s": window_s, "latency_s": latency_s, "config": cfg.to_dict(), "patients": rows,
            "median": {k: v for k, v in med.items() if not math.isnan(v)},
            "target_met": int(sum(r["target_met"] for r in rows)), "n_patients": len(rows),
            "wall_s": round(time.perf_counter() - t0, 2)}


# --- tuning ------------------------------------------------------------------------------------------
def _log_map(u: float, lo: float, hi: float) -> float:
    return float(math.exp(math.log(lo) + min(max(u, 0.0), 1.0) * (math.log(hi) - math.log(lo))))


PARAMETERIZATIONS = ("dual_threshold", "dual_threshold_offset", "proportional")


def decode(z: Sequence[float], base: ControllerConfig, mode: str) -> ControllerConfig:
    """A controller config from unit-cube gains ``z`` (6 numbers in [0, 1]).

    ``mode`` is one of :data:`PARAMETERIZATIONS`. Coordinates:

    0. the upper threshold: a rest quantile 0.05–0.98 (``dual_threshold``, ``proportional``) or
       an offset from the rest median, -1.5 to +0.3 decades (``dual_threshold_offset``);
    1. the lower threshold as a fraction of the upper quantile (``dual_threshold``), its distance
       below the upper offset, 0–0.6 decades (``dual_threshold_offset``), or the gain,
       0.3–100 mA/decade, log (``proportional``);
    2. 3. ramp up, ramp down: 0.05–100 mA/s, log;
    4. smoothing: 0.01–1 s, log (below 0.02 s: none);
    5. amplitude floor as a fraction of amplitude_max.
    """
    if mode not in PARAMETERIZATIONS:
        raise ValidationError("mode", mode, f"one of {PARAMETERIZATIONS}")
    z = [min(max(float(v), 0.0), 1.0) for v in z]
    if len(z) != 6:
        raise ValidationError("z", len(z), "6 numbers in [0, 1]")
    tau = _log_map(z[4], 0.01, 1.0)
    common = dict(threshold_on=None, threshold_off=None, threshold_quantile_on=round(0.05 + 0.93 * z[0], 4),
                  threshold_quantile_off=None, threshold_offset_on=None, threshold_offset_off=None,
                  ramp_up_ma_per_s=round(_log_map(z[2], 0.05, 100.0), 4),
                  ramp_down_ma_per_s=round(_log_map(z[3], 0.05, 100.0), 4),
                  smoothing_s=0.0 if tau < 0.02 else round(tau, 4),
                  amplitude_min_ma=round(z[5] * base.amplitude_max_ma, 3))
    if mode == "dual_threshold":
        common.update(threshold_quantile_off=round(common["threshold_quantile_on"] * z[1], 4))
        return base.replace(mode="dual_threshold", **common)
    if mode == "dual_threshold_offset":
        on = round(-1.5 + 1.8 * z[0], 4)
        common.update(threshold_offset_on=on, threshold_offset_off=round(on - 0.6 * z[1], 4))
        return base.replace(mode="dual_threshold", **common)
    return base.replace(mode="proportional", gain_ma_per_decade=round(_log_map(z[1], 0.3, 100.0), 4), **common)


def _objective(rows: list[dict[str, Any]], target: float, penalty: float) -> float:
    cf = np.array([r["adaptive"]["charge_fraction"] for r in rows])
    sr = np.array([r["adaptive"]["suppression_ratio"] for r in rows])
    return float(cf.mean() + penalty * np.maximum(0.0, target - sr).mean())


def tune(train_seeds: Sequence[int], base: ControllerConfig | None = None, *,
         modes: Sequence[str] = PARAMETERIZATIONS, duration_s: float = 60.0, rest_s: float = 20.0, window_s: float = 0.5,
         generations: int = 10, popsize: int = 8, sigma0: float = 0.3, seed: int = 0, target: float = 0.92,
         penalty: float = 5.0, history: list[dict[str, Any]] | None = None, patient_id: str = PATIENT_ID) -> ControllerConfig:
    """Tune the controller's gains on training patients with CMA-ES; returns the best config.

    Objective (minimized, mean over patients): charge fraction of open loop's
    ``+ penalty × max(0, target − suppression / open-loop suppression)`` — the least charge that keeps
    suppression at ``target`` (0.92: a margin over the 90 % requirement) of open loop's.

    Args:
        train_seeds: Patients to tune on; never the ones reported (:func:`train_seeds`).
        base: Fixed settings (amplitude_max, frequency, pulse width, period, contact); default config.
        modes: Parameterizations (:func:`decode`) tried, each tuned separately; the best objective wins.
        duration_s, rest_s, window_s: As :func:`evaluate` (shorter runs for speed).
        generations, popsize, sigma0, seed: CMA-ES budget and settings (gains in the unit cube).
        target, penalty: The objective's constraint and weight.
        history: If given, every evaluated point is appended ({mode, z, objective, config}).
    """
    import cma
    import simulators

    bad = [s for s in train_seeds if simulators.cohort_of(s) == "eval"]
    if bad or not train_seeds:
        raise ValidationError("train_seeds", bad or list(train_seeds),
                              "a non-empty list of seeds outside the 'eval' cohort (see train_seeds(n))")
    base = base or ControllerConfig()
    setups = [_setup(s, base, duration_s, rest_s, window_s, patient_id) for s in train_seeds]
    ols = [_simulate(s, base, "open_loop", duration_s, rest_s, window_s=window_s) for s in setups]
    best: tuple[float, ControllerConfig] | None = None
    for mode in modes:
        def f(z: Sequence[float]) -> tuple[float, ControllerConfig]:
            cfg = decode(z, base, mode)
            rows = [{"adaptive": _summary(s, _simulate(s, cfg, "adaptive", duration_s, rest_s, window_s=window_s), ol)}
                    for s, ol in zip(setups, ols)]
            return _objective(rows, target, penalty), cfg

        x0 = {"dual_threshold": [0.6, 0.6, 0.8, 0.8, 0.2, 0.0], "dual_threshold_offset": [0.3, 0.3, 0.6, 0.6, 0.2, 0.0],
              "proportional": [0.3, 0.5, 0.8, 0.8, 0.2, 0.3]}[mode]
        es = cma.CMAEvolutionStrategy(x0, sigma0, {"bounds": [0.0, 1.0], "popsize": popsize, "seed": seed + 1,
                                                   "verbose": -9})
        for g in range(generations):
            zs = es.ask()
            vals = []
            for z in zs:
                v, cfg = f(z)
                vals.append(v)
                if history is not None:
                    history.append({"mode": mode, "generation": g, "z": [float(u) for u in z], "objective": v,
                                    "config": cfg.to_dict()})
                if best is None or v < best[0]:
                    best = (v, cfg)
            es.tell(zs, vals)
            log.info("tune %s generation %d: best %.4f (overall %.4f)", mode, g, min(vals), best[0])
    assert best is not None
    return best[1]


# --- the ceiling -----------------------------------------------------------------------------------
def ceiling(seeds: Sequence[int], cfg: ControllerConfig, duration_s: float = 60.0, *, rest_s: float = 20.0,
            window_s: float = 0.5, quantiles: Sequence[float] = (0.5, 0.7), lookahead: Sequence[int] = (0, 1, 2),
            duties: Sequence[tuple[float, float]] = ((0.2, 0.2), (0.3, 0.1), (0.1, 0.1), (0.5, 0.5)),
            amplitudes: Sequence[float] = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5), patient_id: str = PATIENT_ID) -> dict[str, Any]:
    """What any controller could reach on this simulator, per patient.

    * ``oracle``: stimulate a block when the off run's (same noise) beta power in that block or
      the ``lookahead`` blocks after it exceeds its ``quantile`` — perfect knowledge of the
      unstimulated future;
    * ``duty``: periodic on/off trains (on s, off s) at amplitude_max — timing without information;
    * ``amplitude``: continuous stimulation at lower amplitudes — dose instead of timing;
      ``titrated``: the lowest of them reaching 90 % of open loop's suppression (per-patient
      titration: the most an amplitude-setting controller could save);
    * ``dynamics``: burstiness and response times (:func:`dynamics`).
    Each entry: suppression, suppression_ratio and charge_fraction against open loop.
    """
    rows = []
    for seed in seeds:
        s = _setup(seed, cfg, duration_s, rest_s, window_s, patient_id)
        ol = _simulate(s, cfg, "open_loop", duration_s, rest_s, window_s=window_s)
        row: dict[str, Any] = {"seed": seed, "contact": s.contact, "open_loop": _summary(s, ol, ol), "oracle": {},
                               "duty": {}, "amplitude": {}}
        bb = s.block_beta_off
        for q in quantiles:
            thr = np.quantile(bb, q)
            for la in lookahead:
                fut = np.array([bb[k:k + la + 1].max() for k in range(len(bb))])
                r = _simulate(s, cfg, "oracle", duration_s, rest_s, window_s=window_s, oracle_on=fut > thr)
                row["oracle"][f"q{q:g}_la{la}"] = _keep(_summary(s, r, ol))
        for on_s, off_s in duties:
            r = _duty(s, cfg, duration_s, rest_s, on_s, off_s)
            row["duty"][f"{on_s:g}on_{off_s:g}off"] = _keep(_summary(s, r, ol))
        for a in amplitudes:
            r = _simulate(s, cfg, "constant", duration_s, rest_s, window_s=window_s, amplitude_ma=a)
            row["amplitude"][f"{a:g}mA"] = _keep(_summary(s, r, ol))
        ok = [a for a in amplitudes if row["amplitude"][f"{a:g}mA"]["suppression_ratio"] >= 0.9]
        row["titrated"] = dict(row["amplitude"][f"{min(ok):g}mA"], amplitude_ma=min(ok)) if ok else None
        row["dynamics"] = dynamics(seed, cfg.replace(contact=s.contact))
        rows.append(row)
    med: dict[str, Any] = {}
    for group in ("oracle", "duty", "amplitude"):
        for key in rows[0][group]:
            med[f"{group}:{key}"] = {k: median([r[group][key][k] for r in rows])
                                     for k in ("suppression_ratio", "charge_fraction", "time_on_fraction")}
    tit = [r["titrated"] for r in rows if r["titrated"] is not None]
    med["titrated"] = {"n_reaching_90pct": len(tit),
                       "n_meeting_target": sum(t["charge_fraction"] <= 0.5 for t in tit),
                       "charge_fraction": median([t["charge_fraction"] for t in tit])}
    med["dynamics"] = {k: median([r["dynamics"][k] for r in rows]) for k in rows[0]["dynamics"]}
    return {"seeds": list(seeds), "duration_s": duration_s, "patients": rows, "median": med}


def dynamics(seed: int, cfg: ControllerConfig, *, rest_s: float = 60.0, cycles: int = 15,
             patient_id: str = PATIENT_ID) -> dict[str, float]:
    """How bursty beta is and how fast stimulation moves it, on one patient (DBS channels).

    From ``rest_s`` without stimulation: the beta envelope's (13–30 Hz band-pass, Hilbert power,
    mean over DBS channels) autocorrelation time (1/e, ms) and the median and 90th-percentile
    duration of its excursions above its 75th percentile (ms). From ``cycles`` of 1 s trains at
    ``amplitude_max_ma`` every 3 s on the reviewed contact: the time after onset until the mean
    envelope falls below half its rest mean, and after offset until it is back above half (ms).
    """
    import simulators
    from scipy.signal import butter, hilbert, sosfiltfilt

    p = simulators.make(patient_id, seed=seed)
    fs, dbs = p.fs, _dbs(p)
    sos = butter(4, BETA, btype="band", fs=fs, output="sos")

    def env(x: np.ndarray) -> np.ndarray:
        return (np.abs(hilbert(sosfiltfilt(sos, x, axis=-1), axis=-1)) ** 2).mean(axis=0)

    e = env(p.reset().advance(int(rest_s * fs))[dbs])[int(fs):-int(fs)]
    z = e - e.mean()
    n = min(z.size, 20 * int(fs))
    ac = np.correlate(z[:n], z[:n], "full")[n - 1:]
    tau_ms = float(np.argmax(ac / ac[0] < 1 / math.e) / fs * 1e3)
    above = (e > np.quantile(e, 0.75)).astype(int)
    edges = np.diff(above)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    ends = ends[ends > starts[0]] if starts.size else ends
    k = min(starts.size, ends.size)
    bursts = (ends[:k] - starts[:k]) / fs * 1e3
    ol = OpenLoop(cfg, eval_space(p), contact=cfg.contact or select_contact(p, cfg))
    stim = ol._stim(ol.amplitude_max_ma).with_(duration_s=1.0)
    p.reset()
    segs = []
    for _ in range(cycles):
        p.start_stimulation(stim)
        segs.append(p.advance(int(3 * fs))[dbs])
    ee = env(np.concatenate(segs, axis=1)).reshape(cycles, -1)[1:].mean(axis=0) / e.mean()
    on, off = ee[:int(fs)], ee[int(fs):]
    return {"envelope_autocorr_ms": tau_ms, "burst_median_ms": float(np.median(bursts)),
            "burst_p90_ms": float(np.percentile(bursts, 90)),
            "onset_to_half_ms": float(np.argmax(on < 0.5) / fs * 1e3),
            "offset_to_half_return_ms": float(np.argmax(off > 0.5) / fs * 1e3),
            "suppressed_level": float(on[int(0.5 * fs):].mean())}


def _keep(d: dict[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in ("suppression", "suppression_ratio", "charge_fraction", "time_on_fraction",
                              "mean_amplitude_ma") if k in d}


def _duty(s: _Setup, cfg: ControllerConfig, duration_s: float, rest_s: float, on_s: float, off_s: float) -> dict[str, Any]:
    """Periodic trains at amplitude_max: ``on_s`` on, ``off_s`` off (timing without information)."""
    blocks = int(round(duration_s / cfg.period_s))
    n_on, n_cyc = int(round(on_s / cfg.period_s)), int(round((on_s + off_s) / cfg.period_s))
    mask = np.array([(k % n_cyc) < n_on for k in range(blocks + 1)])
    return _simulate(s, cfg, "oracle", duration_s, rest_s, window_s=0.5, oracle_on=mask)


def _fmt(r: dict[str, Any]) -> str:
    a, ol = r["adaptive"], r["open_loop"]
    mc = r.get("matched_charge", {})
    return (f"seed {r['seed']} {r['contact']}: open loop {ol['suppression']:.3f}, adaptive {a['suppression']:.3f} "
            f"(ratio {a['suppression_ratio']:.2f}, charge {a['charge_fraction']:.2f}, on {a['time_on_fraction']:.2f})"
            + (f", matched-charge constant {mc['suppression']:.3f}" if mc else ""))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m loops.session.adaptive_eval``: tune on training seeds, evaluate, measure the ceiling."""
    ap = argparse.ArgumentParser(prog="python -m loops.session.adaptive_eval", description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="TOML with a [continuous] table: the fixed settings and starting gains "
                    "(default: ControllerConfig's defaults)")
    ap.add_argument("--patient", default=PATIENT_ID, help="registered bg-beta id (default %(default)s; "
                    "bg-beta-v1 has physiological beta bursts)")
    ap.add_argument("--n-eval", type=int, default=8)
    ap.add_argument("--n-train", type=int, default=4)
    ap.add_argument("--duration", type=float, default=60.0, help="evaluation run per patient and mode, s")
    ap.add_argument("--tune-duration", type=float, default=60.0)
    ap.add_argument("--generations", type=int, default=10)
    ap.add_argument("--popsize", type=int, default=8)
    ap.add_argument("--no-tune", action="store_true")
    ap.add_argument("--no-ceiling", action="store_true")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--log-level", default="INFO")
    a = ap.parse_args(argv)
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import simulators

    base = ControllerConfig.from_toml(a.config) if a.config else ControllerConfig()
    eval_seeds = simulators.cohort("eval", a.n_eval)
    out: dict[str, Any] = {"base_config": base.to_dict()}
    t0 = time.perf_counter()
    cfg = base
    if not a.no_tune:
        hist: list[dict[str, Any]] = []
        tr = train_seeds(a.n_train)
        cfg = tune(tr, base, duration_s=a.tune_duration, generations=a.generations, popsize=a.popsize, history=hist,
                   patient_id=a.patient)
        best = min(hist, key=lambda h: h["objective"])
        out["tuning"] = {"train_seeds": tr, "duration_s": a.tune_duration, "generations": a.generations,
                         "popsize": a.popsize, "evaluations": len(hist), "best_objective": best["objective"],
                         "best_per_mode": {m: min((h for h in hist if h["mode"] == m), key=lambda h: h["objective"])
                                           for m in {h["mode"] for h in hist}},
                         "wall_s": round(time.perf_counter() - t0, 1)}
    out["tuned_config"] = cfg.to_dict()
    out["patient_id"] = a.patient
    out["evaluation"] = ev = evaluate(eval_seeds, cfg, a.duration, patient_id=a.patient)
    for r in ev["patients"]:
        log.info(_fmt(r))
    log.info("median: %s; target met on %d of %d", ev["median"], ev["target_met"], ev["n_patients"])
    out["evaluation_default"] = evaluate(eval_seeds, base, a.duration, matched_charge=False, patient_id=a.patient)
    if not a.no_ceiling:
        out["ceiling"] = ceiling(eval_seeds, base, a.duration, patient_id=a.patient)
        log.info("ceiling medians: %s", out["ceiling"]["median"])
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
