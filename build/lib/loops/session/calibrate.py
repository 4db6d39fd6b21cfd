"""Calibration: record rest, adapt the BFM to this patient, define the target and the trial cost.

Everything a session derives here is written to its directory (``calibration/rest.npy``,
``calibration/rest_raw.fif``, ``patient.pt``, ``target.npz``) and read back from there, by the first
run and by ``--resume`` alike, so both build bit-identical surrogates and objectives (and a
resumed optimizer proposes what the first run would have).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ConfigError, ValidationError
from bfm_stim.space import StimulusSpace

__all__ = ["Calibration", "record_rest", "calibrate", "device_space", "simulated_patient"]

log = get_logger("loops.session.calibrate")
NEURAL = ("eeg", "seeg", "ecog", "dbs")
REF_S = 30.0  # s of the healthy reference simulated for a `healthy` target


@dataclass
class Calibration:
    """What the trials need from calibration.

    Attributes:
        space: The device's stimulus space (every proposal passes its check).
        surrogate: The adapted :class:`~bfm_stim.surrogate.Surrogate` (None for a model-free target).
        context: (C_model, T) rest at the surrogate's rate, µV (the surrogate's context).
        rows: Stream rows of the model's channels, in the model's order.
        measured: Cost of a response window ``(n_stream_channels, n) µV`` at the stream rate.
        forecast: The surrogate-side objective (``Forecast -> (N,)``), or None.
        target: JSON description (kind, spec, latent vector when there is one).
        rest_window: ``[t0, t1]`` LSL s of the rest recording.
    """

    space: StimulusSpace
    surrogate: Any
    context: np.ndarray | None
    rows: list[int]
    measured: Callable[[np.ndarray], float]
    forecast: Any
    target: dict[str, Any]
    rest_window: list[float]


def simulated_patient(spec: Any) -> Any | None:
    """The ``simulators`` patient a stream says it serves (``desc/acquisition`` model + seed), or None."""
    acq = dict(spec.acquisition or {})
    model, seed = acq.get("patient_id") or acq.get("model"), acq.get("seed")
    if not model or seed is None:
        return None
    import simulators

    if model not in dict(simulators.list_patients()):
        return None
    return simulators.make(model, seed=int(seed))


def device_space(cfg: Any, spec: Any) -> StimulusSpace:
    """The stimulus space: ``[device] space`` (a TOML file or a bundled config's name), or the simulated
    patient's own."""
    if cfg.device.space:
        return StimulusSpace.from_toml(cfg.config_file(cfg.device.space, what="[device] space"))
    p = simulated_patient(spec)
    if p is None:
        raise ConfigError(f"device {spec.source_id!r} is not a simulated patient, so its stimulus space must be "
                          "given: [device] space = \"space-dbs.toml\" (contacts, bounds, safety limits: the bundled "
                          "space-dbs, or your copy from `bfm-stim configs space-dbs --out space-dbs.toml`)")
    return p.stimulus_space(cfg.device.space_kind)


def record_rest(device: Any, store: Any, rest_s: float, health: Any, *, progress: Callable[[float], None] | None = None,
                should_stop: Callable[[], bool] | None = None, max_wait_s: float = 600.0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Record ``rest_s`` s of fault-free, stimulation-free signal; a fault restarts the count (and is logged).

    Returns: ``(data (n_channels, n) µV, times (n,) LSL s)``.

    Raises:
        SessionInterrupted: ``should_stop()`` became true (SIGINT/SIGTERM).
        GiveUp: no ``rest_s`` of valid data within ``max_wait_s``.
    """
    from bfm_stim.lsl.config import local_clock
    from loops.session.trials import GiveUp, SessionInterrupted

    device.stop("calibration: rest must be stimulation-free")
    rate = device.spec.fs * device.speed
    need = int(round(rest_s * device.spec.fs))
    t0 = t_begin = local_clock()
    last_fault = None
    while True:
        device.pump()
        if should_stop is not None and should_stop():
            raise SessionInterrupted()
        f = health.check()
        if f is not None:
            if last_fault is None or f.kind != last_fault.kind:
                store.append("fault", kind=f.kind, detail=f"during the calibration rest: {f.detail}")
                log.warning("calibration rest restarts: %s", f.detail)
            last_fault = f
            if local_clock() - t_begin > max_wait_s:
                raise GiveUp(f"no {rest_s:g} s of valid rest within {max_wait_s:g} s ([health] max_wait_s); last "
                             f"fault: {f.detail}")
            t0 = local_clock()  # start again after the fault
            time.sleep(0.02)
            continue
        if last_fault is not None:
            store.append("recovered", detail="stream valid again; the calibration rest starts over")
            last_fault = None
        got = (local_clock() - t0) * rate
        if progress is not None:
            progress(min(1.0, got / need))
        if got >= need + 0.02 * rate:
            break
        time.sleep(0.02)
    data, ts = device.window(t0, local_clock() + 1.0)
    return data[:, -need:], ts[-need:]


def _neural_rows(spec: Any) -> list[int]:
    types = [t.lower() for t in (spec.ch_types or ())]
    rows = [i for i, t in enumerate(types) if t in NEURAL]
    return rows or list(range(spec.n_channels))


def _resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    from loops.offline import _resample as res

    return res(x, fs_in, fs_out)


def _band_rows(cfg: Any, spec: Any) -> list[int]:
    names = list(spec.ch_names)
    if cfg.calibration.target_channels:
        missing = [c for c in cfg.calibration.target_channels if c not in names]
        if missing:
            raise ConfigError(f"[calibration] target_channels {missing} are not channels of the stream; "
                              f"it has {names}")
        return [names.index(c) for c in cfg.calibration.target_channels]
    dbs = [i for i, t in enumerate(spec.ch_types or ()) if t.lower() == "dbs"]
    return dbs or _neural_rows(spec)


def calibrate(cfg: Any, device: Any, store: Any, health: Any, *, fresh: bool,
              progress: Callable[[str, float], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> Calibration:
    """Calibrate (``fresh``) or rebuild the calibration of a session from its directory.

    Args:
        cfg: :class:`~loops.session.config.SessionConfig`.
        device: Connected :class:`~loops.session.device.Device`.
        store: The session's :class:`~loops.session.store.SessionStore`.
        health: :class:`~loops.session.health.StreamHealth` of the device.
        fresh: Record and adapt now; else read everything back from the directory.
        progress: ``(stage, fraction)`` callback for the live view.
    """
    spec = device.spec
    d = store.path
    cal_dir = d / "calibration"
    space = device_space(cfg, spec)
    kind, _, arg = cfg.calibration.target.partition(":")
    if fresh:
        cal_dir.mkdir(exist_ok=True)
        data, ts = record_rest(device, store, cfg.calibration.rest_s, health,
                               progress=(lambda f: progress("rest", f)) if progress else None,
                               should_stop=should_stop, max_wait_s=cfg.health.max_wait_s)
        np.save(cal_dir / "rest.npy", data.astype(np.float32))
        np.save(cal_dir / "rest_times.npy", ts)
    data = np.load(cal_dir / "rest.npy")
    ts = np.load(cal_dir / "rest_times.npy")
    rest_window = [float(ts[0]), float(ts[-1])]
    if kind == "bandpower":
        try:
            lo, hi = (float(v) for v in arg.split("-"))
        except ValueError:
            raise ConfigError(f"[calibration] target = {cfg.calibration.target!r}: expected bandpower:LO-HI in Hz, "
                              "e.g. bandpower:13-30") from None
        if not 0 <= lo < hi <= spec.fs / 2:
            raise ConfigError(f"[calibration] target band {lo:g}-{hi:g} Hz: expected 0 <= LO < HI <= {spec.fs / 2:g} Hz")
    needs_model = kind != "bandpower" or cfg.trials.optimizer in ("guided", "gradient", "egreedy")
    sur, context, rows = None, None, _neural_rows(spec)
    adapt_summary: dict[str, Any] = {}
    if needs_model:
        sur, context, rows, adapt_summary = _surrogate(cfg, spec, space, data, cal_dir, d, fresh=fresh,
                                                       progress=progress)
    measured, forecast, target = _target(cfg, spec, sur, rows, kind, arg, d, fresh=fresh)
    if fresh:
        # the cost of not stimulating: the objective on 1-s stretches of the rest (the trials' window)
        n = int(spec.fs)
        costs = [measured(data[:, i:i + n]) for i in range(0, data.shape[1] - n + 1, n)]
        store.append("calibrated", rest_s=cfg.calibration.rest_s, mode=cfg.calibration.mode, target=target,
                     adapt=adapt_summary, rest_window=rest_window,
                     baseline_cost=float(np.mean(costs)) if costs else None,
                     baseline_cost_sd=float(np.std(costs)) if costs else None)
    return Calibration(space, sur, context, rows, measured, forecast, target, rest_window)


def _surrogate(cfg: Any, spec: Any, space: StimulusSpace, data: np.ndarray, cal_dir: Path, d: Path, *, fresh: bool,
               progress: Any) -> tuple[Any, np.ndarray, list[int], dict]:
    from bfm_stim.recording import Recording
    from bfm_stim.surrogate import Surrogate
    from loops.adapt import main as adapt_main

    patient_file = d / "patient.pt"
    summary: dict[str, Any] = {}
    if fresh:
        pos = np.asarray(spec.positions, float) if spec.positions is not None else None
        rec = Recording(data, spec.fs, list(spec.ch_names), [t.lower() for t in spec.ch_types] or None,
                        positions=pos, meta={"source": "bfm-stim session calibration"})
        rec.write_fif(cal_dir / "rest_raw.fif", overwrite=True)
        if progress:
            progress("adapt", 0.0)
        ckpt = cfg.resolve(cfg.calibration.checkpoint) if cfg.calibration.checkpoint else None
        summary = adapt_main(cal_dir / "rest_raw.fif", patient_file, checkpoint=ckpt, mode=cfg.calibration.mode,
                             rest_s=cfg.calibration.rest_s, seed=cfg.trials.seed, progress=False)
        summary = {k: v for k, v in summary.items() if k in ("mode", "steps", "lr", "anchor", "final_loss",
                                                             "loss_first", "n_channels", "calibration", "heldout",
                                                             "fallback")}
        if progress:
            progress("adapt", 1.0)
    if not patient_file.is_file():
        raise ConfigError(f"{d}: patient.pt is missing; the session's calibration did not finish. Start a new "
                          "session (calibration is not resumable)")
    sur = Surrogate.from_patient_file(patient_file, space=space)
    names = list(spec.ch_names)
    rows = [names.index(n) for n in sur.ch_names] if sur.ch_names else _neural_rows(spec)
    context = _resample(data[rows], spec.fs, sur.fs)
    return sur, context, rows, summary


def _target(cfg: Any, spec: Any, sur: Any, rows: list[int], kind: str, arg: str, d: Path, *, fresh: bool):
    from bfm_stim.objectives import BandPowerObjective, LatentTarget

    if kind == "bandpower":
        lo, hi = (float(v) for v in arg.split("-"))
        brows = _band_rows(cfg, spec)
        from simulators.oracle import band_power

        def measured(x: np.ndarray) -> float:
            p = band_power(torch.as_tensor(np.asarray(x[brows], np.float64)), spec.fs, (lo, hi))
            return float(torch.log10(p.mean() + 1e-12))

        fc = None
        if sur is not None:
            mrows = [rows.index(r) for r in brows if r in rows] or None
            fc = BandPowerObjective((lo, hi), sur.fs, channels=tuple(mrows) if mrows else None)
        return measured, fc, {"kind": "bandpower", "spec": cfg.calibration.target, "band_hz": [lo, hi],
                              "channels": [spec.ch_names[i] for i in brows]}
    tfile = d / "target.npz"
    if fresh:
        if kind == "healthy":
            from loops.session.calibrate import simulated_patient as sp

            p = sp(spec)
            if p is None:
                raise ConfigError(f"target = 'healthy' needs a device that provides a healthy reference (a simulated "
                                  f"patient); {spec.source_id!r} does not. Use recording:PATH, latent:FILE.npy or "
                                  "bandpower:LO-HI")
            ref = p.healthy_twin().simulate(REF_S, None, trial=900_001).data.numpy()
            names = list(spec.ch_names)
            ref_rows = [list(p.channel_names).index(names[r]) for r in rows]
            tgt = LatentTarget.from_recording(sur, _resample(ref[ref_rows], p.fs, sur.fs))
        elif kind == "recording":
            from bfm_stim.recording import Recording

            parts = arg.split(":")
            path = cfg.resolve(parts[0])
            rec = Recording.read(path)
            if len(parts) == 3:
                rec = rec.crop(float(parts[1]), float(parts[2]))
            elif len(parts) != 1:
                raise ConfigError(f"[calibration] target = {cfg.calibration.target!r}: expected recording:PATH or "
                                  "recording:PATH:TMIN:TMAX (s)")
            if sur.ch_names:
                missing = [n for n in sur.ch_names if n not in rec.ch_names]
                if missing:
                    raise ConfigError(f"target recording {path} lacks the session's channels {missing[:5]}")
                rec = rec.pick(sur.ch_names)
            tgt = LatentTarget.from_recording(sur, rec)
        else:  # latent
            path = cfg.resolve(arg)
            if not path.is_file():
                raise ConfigError(f"[calibration] target latent file not found: {path} (a .npy vector of the "
                                  f"model's latent width {sur.cfg.d_model if hasattr(sur.cfg, 'd_model') else ''})")
            tgt = LatentTarget.from_vector(np.load(path))
        np.savez(tfile, z=tgt.z.numpy(), weight=(tgt.weight.numpy() if tgt.weight is not None else np.zeros(0)))
    if not tfile.is_file():
        raise ConfigError(f"{d}: target.npz is missing; the session's calibration did not finish")
    z = np.load(tfile)
    w = torch.as_tensor(z["weight"]) if z["weight"].size else None
    tgt = LatentTarget(torch.as_tensor(z["z"]), w)

    return LatentCost(sur, tgt, rows, float(spec.fs)), tgt, {"kind": kind, "spec": cfg.calibration.target, "latent": tgt.z.tolist(),
                                  "weight": None if w is None else w.tolist()}


class LatentCost:
    """Measured cost of a window for a latent target: the target's distance of the encoder latents of the
    response (as :class:`loops.offline.LatentObjective` scores offline trials); :attr:`last` holds the
    window's mean latent (D,) for the log and the report's latent trajectory."""

    def __init__(self, surrogate: Any, target: Any, rows: list[int], fs: float) -> None:
        self.surrogate, self.target, self.rows, self.fs = surrogate, target, rows, fs
        self.last: list[float] | None = None

    def __call__(self, x: np.ndarray) -> float:
        xm = _resample(np.asarray(x)[self.rows], self.fs, self.surrogate.fs)
        z = self.surrogate.latents(xm)
        self.last = z.mean(0).detach().tolist()
        return float(self.target(z[None]).reshape(()))


def target_json(target: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in target.items() if k not in ("latent", "weight")})


def check_window(x: np.ndarray, fs: float, need_s: float) -> None:
    if x.shape[1] < int(0.9 * need_s * fs):
        raise ValidationError("response window", x.shape[1], f">= {int(0.9 * need_s * fs)} samples")


def session_objective(session_dir: str | Path) -> Callable[[np.ndarray], float]:
    """The measured objective of a finished (or running) session, rebuilt from its directory alone:
    ``cost(x)`` of a window ``(n_stream_channels, n)`` µV at the stream rate, exactly as the trials scored it."""
    from types import SimpleNamespace

    from loops.session.config import SessionConfig

    d = Path(session_dir)
    meta = json.loads((d / "session.json").read_text())
    cfg = SessionConfig.from_dict(meta["config"], base=meta.get("config_base", "."))
    st = meta["stream"]
    spec = SimpleNamespace(ch_names=tuple(st["ch_names"]), ch_types=tuple(st["ch_types"]), fs=float(st["fs"]),
                           n_channels=int(st["n_channels"]), positions=None, source_id=st["source_id"],
                           acquisition=st.get("acquisition", {}))
    kind, _, arg = cfg.calibration.target.partition(":")
    sur, rows = None, _neural_rows(spec)
    if (d / "patient.pt").is_file():
        from bfm_stim.surrogate import Surrogate

        sur = Surrogate.from_patient_file(d / "patient.pt")
        names = list(spec.ch_names)
        rows = [names.index(n) for n in sur.ch_names] if sur.ch_names else rows
    measured, _, _ = _target(cfg, spec, sur, rows, kind, arg, d, fresh=False)
    return measured
