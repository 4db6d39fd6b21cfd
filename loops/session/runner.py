"""``bfm-stim session``: connect, calibrate, run trials (and continuous segments), end safely.

:func:`run_session` starts a new session in ``out`` or, with ``resume=True``, continues the one
there: every completed trial is kept exactly once, a trial that was in flight when the process died
is marked ``interrupted`` (never told, never silently repeated), a proposal logged but never sent is
sent next, and the optimizer is rebuilt from the log so it proposes what an uninterrupted run
would have. SIGINT/SIGTERM end with a stop command, a complete log, the FIF and the report.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bfm_stim import __version__
from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ConfigError, OptimizerError
from bfm_stim.space import Stimulus
from loops.config_files import config_path
from loops.session.config import SessionConfig, load_config
from loops.session.store import OPT_STATE, SessionStore, replay

__all__ = ["run_session", "SessionContext", "build_optimizer"]

log = get_logger("loops.session")


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"bfm-stim": __version__, "python": platform.python_version()}
    for pkg in ("torch", "botorch", "gpytorch", "pylsl", "mne", "numpy", "scipy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def key_fingerprint(key: bytes) -> str:
    """SHA-256 of the key, first 16 hex digits (identifies the key; never reveals it)."""
    return hashlib.sha256(b"bfm-stim key fingerprint:" + key).hexdigest()[:16]


def build_optimizer(cfg: SessionConfig, cal: Any) -> Any:
    """The configured optimizer over the device's space, with the surrogate's cost model when it uses one."""
    from bfm_stim.optim import SurrogateCost, make
    from loops.offline import SURROGATE_OPTIMIZERS, optimizer_settings

    name = cfg.trials.optimizer
    table = optimizer_settings(name, None)
    table.update(dict(cfg.trials.settings))
    table["seed"] = int(cfg.trials.seed)
    hooks: dict[str, Any] = {}
    if name in SURROGATE_OPTIMIZERS:
        if cal.surrogate is None or cal.forecast is None:
            raise ConfigError(f"[trials] optimizer = {name!r} needs the foundation model and a target it can score")
        sur = cal.surrogate
        ctx = cal.context[:, -sur.cfg.max_patches * sur.cfg.patch_len:]
        hooks["cost_model"] = SurrogateCost(sur, ctx, cal.forecast, seed=int(cfg.trials.seed))
    if cfg.calibration.probes:
        # probe trials: a scrambled Sobol design over the safe set, the same for the same seed
        hooks["initial_design"] = make("sobol", cal.space, seed=int(cfg.trials.seed)).ask(cfg.calibration.probes)
    return make(name, cal.space, settings=table, **hooks)


class SessionContext:
    """What the trial and continuous loops share: config, store, device, health, view, stop flag."""

    def __init__(self, cfg: SessionConfig, store: SessionStore, device: Any, health: Any, view: Any) -> None:
        self.cfg, self.store, self.device, self.health, self.view_ = cfg, store, device, health, view
        self.calibration: Any = None
        self.proposer: Any = None
        self.stop_requested = False
        self.t_start = time.time()
        self.best: tuple[float, Stimulus] | None = None
        self.since_best = 0
        self.trust_noticed: int | None = None  # the trial at which the model was first contradicted

    # --- the view ------------------------------------------------------------------------------------
    def view(self, **state: Any) -> None:
        st = self.view_.state
        if "fault" in state and state["fault"]:
            state.setdefault("faults", st["faults"] + 1)
        self.view_.update(**state)
        self.view_.refresh()

    def refresh(self) -> None:
        self.view_.refresh()

    # --- trials --------------------------------------------------------------------------------------
    def trials(self) -> list[Any]:
        return self.store.trials()

    def next_trial(self) -> int:
        return self.proposer.next_trial()

    def on_outcome(self, k: int, stim: Stimulus, outcome: Any) -> None:
        thr = self.proposer.opt.settings.side_effect_threshold
        se_ok = outcome.severity is None or outcome.severity < thr
        if se_ok and (self.best is None or outcome.cost < self.best[0]):
            self.best, self.since_best = (outcome.cost, stim), 0
        else:
            self.since_best += 1
        views = self.trials()
        self.view_.update(interrupted=sum(v.status == "interrupted" for v in views),
                          rejected=sum(v.status == "rejected" for v in views))
        self.view_.trial_done(k, stim, outcome.cost, self.best[0] if self.best else None,
                              self.best[1] if self.best else None)
        self.view_.refresh(force=True)

    def on_trust(self, k: int, fields: dict[str, Any]) -> None:
        """The model's trust after trial ``k`` (the proposer's worker): into the view; the one-line
        message, logged once, the first time the trials contradict the model."""
        self.view_.trust_done(k, fields)
        msg = fields.get("trust_message")
        if msg and self.trust_noticed is None:
            self.trust_noticed = k
            log.warning("trial %d: %s", k, msg)

    def stop_rule(self) -> str | None:
        c = self.cfg.trials
        views = self.trials()
        done = sum(v.status == "completed" for v in views)
        if done >= c.budget:
            return "budget"
        if self.best is not None and c.stop_cost is not None and self.best[0] <= c.stop_cost:
            return "target"
        if c.patience and self.since_best >= c.patience:
            return "patience"
        first = next((r for r in self.store.records if r["type"] == "start"), None)
        t0 = first["t"] if first else self.t_start
        if c.max_minutes and time.time() - t0 > 60 * c.max_minutes:
            return "wall_clock"
        return None


def _resume_state(store: SessionStore) -> tuple[str, int]:
    """Session id and the first unused command sequence number of an existing session."""
    meta = store.meta
    seqs = [r["seq"] for r in store.records if r["type"] in ("sent", "stop") and r.get("seq") is not None]
    return meta["session_id"], (max(seqs) + 1 if seqs else 1)


def _restore_optimizer(cfg: SessionConfig, cal: Any, store: SessionStore) -> Any:
    """Rebuild the optimizer from ``optimizer.json`` and the log's tail (or the whole log)."""
    ops = store.optimizer_ops()
    opt = build_optimizer(cfg, cal)
    start = 0
    p = store.path / OPT_STATE
    if p.is_file():
        import json

        try:
            state = json.loads(p.read_text())
            n = int(state.pop("op"))
            if 0 < n <= len(ops):
                opt.load_state_dict(state)
                start = n
        except (ValueError, KeyError, OptimizerError) as e:
            log.warning("optimizer.json not usable (%s); replaying the whole log", e)
            opt, start = build_optimizer(cfg, cal), 0
    try:
        for _ in replay(opt, ops, start=start):
            pass
    except OptimizerError:
        if start == 0:
            raise
        log.warning("the saved optimizer state disagrees with the log; replaying the whole log")
        opt = build_optimizer(cfg, cal)
        for _ in replay(opt, ops):
            pass
    return opt


def run_session(config: str | Path | SessionConfig | None, out: str | Path, *, resume: bool = False,
                live: bool | None = None, stop_event: threading.Event | None = None) -> dict[str, Any]:
    """Run (or resume) a session; returns its summary (also in ``session.json`` under ``"summary"``).

    Args:
        config: TOML path or :class:`SessionConfig` (new sessions; ignored on resume: the directory's copy rules).
        out: The session directory.
        resume: Continue the session in ``out``.
        live: Draw the live terminal view (default: when stdout is a terminal).
        stop_event: Set it to end the session as SIGINT would (tests, the demo).
    """
    from bfm_stim.lsl.config import configure
    from bfm_stim.lsl.protocol import load_key, new_session_id
    from loops.session.device import Device
    from loops.session.health import StreamHealth
    from loops.session.live import LiveView

    import warnings

    # BO's own note when every trial so far had a side effect; the session logs those trials itself
    warnings.filterwarnings("ignore", message="When all training points are infeasible")
    out = Path(out)
    if resume:
        store = SessionStore(out, create=False)
        meta = store.meta
        cfg = SessionConfig.from_dict(meta["config"], base=meta.get("config_base", "."))
    else:
        if config is None:
            raise ConfigError("give --config FILE for a new session (or --resume DIR)")
        if not isinstance(config, SessionConfig):
            config = config_path(config, what="session config")  # a file, or a bundled config's name
        cfg = config if isinstance(config, SessionConfig) else load_config(config)
        store = SessionStore(out, create=True)
        if not isinstance(config, SessionConfig):
            shutil.copyfile(config, out / "config.toml")
    configure(cfg.device.lsl_scope)
    key = load_key(cfg.resolve(cfg.device.key_file))
    if resume:
        session_id, first_seq = _resume_state(store)
    else:
        session_id, first_seq = new_session_id(), 1
    device = Device(cfg.device, key, store, session_id=session_id, first_seq=first_seq)
    view = LiveView(enabled=live, budget=cfg.trials.budget,
                    title=f"bfm-stim session {out.name}: {cfg.calibration.target} with {cfg.trials.optimizer}")
    ctx: SessionContext | None = None
    old_handlers = _install_signals(lambda: setattr(ctx, "stop_requested", True) if ctx is not None else None)
    end_reason = "error"
    try:
        device.connect()
        spec = device.spec
        store.open_signal(spec.n_channels)
        if not resume:
            ckpt = _checkpoint_digest(cfg)
            store.write_meta({
                "session_id": session_id, "config": cfg.to_dict(), "config_base": str(Path(cfg.base).resolve()),
                "versions": _versions(), "checkpoint": ckpt, "key_fingerprint": key_fingerprint(key),
                "stream": {"source_id": spec.source_id, "name": spec.name, "fs": spec.fs, "speed": spec.speed,
                           "n_channels": spec.n_channels, "ch_names": list(spec.ch_names),
                           "ch_types": list(spec.ch_types), "units": list(spec.units),
                           "positions": np.asarray(spec.positions, float).tolist()
                           if spec.positions is not None else None,
                           "acquisition": dict(spec.acquisition)},
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            })
        health = StreamHealth(device.inlet, cfg.health, tuple(spec.ch_names), tuple(spec.ch_types))
        ctx = SessionContext(cfg, store, device, health, view)
        if stop_event is not None:
            threading.Thread(target=lambda: (stop_event.wait(), setattr(ctx, "stop_requested", True)),
                             daemon=True).start()
        runs = sum(r["type"] == "start" for r in store.records)
        store.append("start", run=runs + 1, resume=resume, session_id=session_id, first_seq=first_seq)
        with view:
            end_reason = _run(ctx, resume)
    except BaseException as e:
        from loops.session.trials import GiveUp, SessionInterrupted

        if isinstance(e, (SessionInterrupted, KeyboardInterrupt)):
            end_reason = "signal"
        elif isinstance(e, GiveUp):
            end_reason = "no_valid_data"
            log.error("%s", e)
        else:
            end_reason = "error"
            if not resume and not (out / "session.json").is_file():
                # never got as far as a session (no device, wrong device): leave --out free for the next try
                store.close()
                for f in ("trials.jsonl",):
                    (out / f).unlink(missing_ok=True)
                shutil.rmtree(out / "stream", ignore_errors=True)
                raise
            _safe_end(device, store, f"error: {type(e).__name__}: {e}")
            raise
    finally:
        _restore_signals(old_handlers)
        if end_reason != "error":
            _safe_end(device, store, end_reason)
        device.disconnect()
        store.close()
    if not (out / "session.json").is_file():
        raise ConfigError(f"{out}: the session ended before it connected ({end_reason})")
    summary = summarize(out)
    store2 = SessionStore(out, create=False)
    store2.update_meta(summary=summary)
    store2.close()
    _finalize(out)
    return summary


def _checkpoint_digest(cfg: SessionConfig) -> dict[str, Any]:
    from loops.offline import checkpoint_path, file_digest

    p = checkpoint_path(cfg.resolve(cfg.calibration.checkpoint) if cfg.calibration.checkpoint else None)
    if p is None or not Path(p).is_file():
        return {"path": None, "sha256_16": None}
    return {"path": Path(p).name, "sha256_16": file_digest(Path(p))}


def _run(ctx: SessionContext, resume: bool) -> str:
    from loops.model_trust import model_manifest, trial_fields
    from loops.session.calibrate import calibrate
    from loops.session.proposer import Proposer
    from loops.session.trials import run_trials

    cfg, store = ctx.cfg, ctx.store
    if resume:  # whatever the previous run left scheduled or running at the device ends now
        ctx.device.stop("resume: the previous run ended without its final stop")
    fresh = not any(r["type"] == "calibrated" for r in store.records)
    ctx.view(status="calibrating")

    def progress(stage: str, frac: float) -> None:
        ctx.view(stage=stage, progress=frac)

    cal = calibrate(cfg, ctx.device, store, ctx.health, fresh=fresh, progress=progress,
                    should_stop=lambda: ctx.stop_requested)
    ctx.calibration = cal
    ctx.view(stage="", progress=None, status="running")
    if resume:
        _mark_in_flight(store)
        opt = _restore_optimizer(cfg, cal, store)
    else:
        opt = build_optimizer(cfg, cal)
    store.update_meta(surrogate=model_manifest(opt, store.meta.get("checkpoint")))
    ks = [v.trial for v in store.trials()]
    prop = Proposer(opt, store, probes=cfg.calibration.probes, next_trial=max(ks) + 1 if ks else 1,
                    on_told=ctx.on_trust)
    ctx.proposer = prop
    for v in store.trials():  # a proposal logged but never sent is the next trial
        if v.status == "asked":
            prop.set_ready(v.trial, Stimulus.from_dict(v.stimulus), v.ask_s or 0.0)
    told = [v for v in store.trials() if v.status == "completed"]
    for v in told:
        ctx.on_outcome(v.trial, Stimulus.from_dict(v.stimulus), _outcome(v))
    if told:  # a resumed session shows the trust it had (said once: not again)
        ctx.trust_noticed = next((r["trial"] for r in store.records if r.get("trust_message")), None)
        ctx.on_trust(told[-1].trial, trial_fields(opt))
    try:
        reason = run_trials(ctx)
    finally:
        prop.wait_idle()  # every measured outcome told and logged before the session ends
        prop.close()
    if cfg.continuous.segments:
        from loops.session.continuous import run_continuous

        run_continuous(ctx)
    return reason


def _outcome(v: Any) -> Any:
    from bfm_stim.optim import Outcome

    return Outcome(v.cost, v.side_effect, {"trial": v.trial})


def _mark_in_flight(store: SessionStore) -> None:
    """Trials sent when the previous run died: marked interrupted (cancelled for the optimizer); trials
    measured but not yet told: told now (the replay applies the ``outcome`` written here)."""
    for v in store.trials():
        if v.status == "completed" and not v.told:
            m = next(r for r in reversed(store.records) if r["type"] == "measured" and r["trial"] == v.trial)
            store.append("outcome", **{k: val for k, val in m.items() if k not in ("type", "t", "lsl")})
        if v.status == "sent":
            store.append("interrupted", trial=v.trial, reason="the session process ended while this trial was in "
                         "flight; its response was not scored (resumed)")


def _safe_end(device: Any, store: SessionStore, reason: str) -> None:
    try:
        device.stop(f"session end: {reason}")
    except Exception as e:  # noqa: BLE001 - the stream may already be gone; still log the end
        log.warning("could not send the final stop: %s", e)
    views = store.trials()
    best = None
    done = [v for v in views if v.status == "completed"]
    if done:
        b = min(done, key=lambda v: v.cost)
        best = {"trial": b.trial, "stimulus": b.stimulus, "cost": b.cost}
    store.append("end", reason=reason, best=best)


def summarize(out: str | Path) -> dict[str, Any]:
    """A session's figures from its directory: trials, best, costs, charge, timing, the model's trust at the end
    (:func:`loops.model_trust.trust_summary`; ``None`` without a model)."""
    from loops.model_trust import trust_summary
    from loops.session.store import read_log, trial_views

    out = Path(out)
    recs = read_log(out / "trials.jsonl")
    views = trial_views(recs)
    done = [v for v in views if v.status == "completed"]
    timing = {r["trial"]: r for r in recs if r["type"] == "timing"}
    cal = next((r for r in recs if r["type"] == "calibrated"), {})
    ends = [r for r in recs if r["type"] == "end"]
    se_thr = 0.5
    ok = [v for v in done if v.side_effect is None or v.side_effect < se_thr]
    best = min(ok, key=lambda v: v.cost) if ok else None
    # the first trial of each run waits for its first proposal, which nothing could overlap: the
    # dead time is the loop's between trials (the first one's wait is reported apart)
    firsts, after_start = set(), False
    for r in recs:
        if r["type"] == "start":
            after_start = True
        elif r["type"] == "timing" and after_start:
            firsts.add(r["trial"])
            after_start = False
    dead = np.array([timing[v.trial]["dead_s"] for v in done if v.trial in timing and v.trial not in firsts])
    over = np.array([timing[v.trial]["overhead_s"] / timing[v.trial]["trial_s"] for v in done if v.trial in timing])
    charge = sum(float(v.extra.get("charge_uc") or 0.0) for v in done)
    return {
        "trials_completed": len(done), "trials_interrupted": sum(v.status == "interrupted" for v in views),
        "trials_rejected": sum(v.status == "rejected" for v in views),
        "side_effect_trials": sum(1 for v in done if (v.side_effect or 0) >= se_thr),
        "baseline_cost": cal.get("baseline_cost"),
        "first_cost": done[0].cost if done else None,
        "best": None if best is None else {"trial": best.trial, "stimulus": best.stimulus, "cost": best.cost},
        "charge_trials_uc": charge,
        "dead_time_ms": None if not dead.size else {"median": 1e3 * float(np.median(dead)),
                                                    "p95": 1e3 * float(np.percentile(dead, 95)), "n": int(dead.size)},
        "first_trial_wait_ms": [1e3 * timing[k]["dead_s"] for k in sorted(firsts)],
        "overhead_fraction_median": None if not over.size else float(np.median(over)),
        "end_reason": ends[-1]["reason"] if ends else None, "runs": sum(r["type"] == "start" for r in recs),
        "faults": sum(r["type"] == "fault" for r in recs),
        "trust": trust_summary([r for r in recs if r["type"] == "outcome"]),
        "continuous": [{k: v for k, v in r.items() if k not in ("type", "t", "lsl", "phase")}
                       for r in recs if r["type"] == "continuous" and r.get("phase") == "end"],
    }


def _finalize(out: Path) -> None:
    """Write recording.fif and the report (each failure is logged, never hides the session's end)."""
    try:
        from loops.session.fif import write_session_fif

        write_session_fif(out)
    except Exception as e:  # noqa: BLE001
        log.warning("could not write recording.fif: %s", e)
    try:
        from loops.session.report import build_report

        build_report(out)
    except Exception as e:  # noqa: BLE001
        log.warning("could not build the report: %s (rebuild it with `bfm-stim report %s`)", e, out)


def _install_signals(on_signal: Any) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    old = {}

    def handler(signum: int, frame: Any) -> None:
        log.warning("signal %d: stopping the session (stop command, complete log)", signum)
        on_signal()

    for s in (signal.SIGINT, signal.SIGTERM):
        old[s] = signal.signal(s, handler)
    return old


def _restore_signals(old: dict[int, Any]) -> None:
    for s, h in old.items():
        signal.signal(s, h)
