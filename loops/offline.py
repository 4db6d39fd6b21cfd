"""Offline protocol optimization: a patient (simulated, or a recording's adapted surrogate), a target, trials.

``bfm-stim optimize --patient bg-beta-v0 --seed 7 --target healthy --optimizer guided --budget 30 --out protocol.json``
runs ``budget`` real trials on the simulated patient, each stimulus passing ``space.check`` before it is
simulated; ``--surrogate-only --recording rec.fif`` optimizes against the patient's surrogate alone (no
trials). Writes the protocol JSON (top safe stimuli with predicted and, where measured, observed cost and
uncertainty; settings, patient, seed, objective, the full trial log) and a PNG beside it. With a surrogate
method (``guided``, ``gradient``, ``egreedy``) every trial carries the model's trust after it
(:func:`loops.model_trust.trial_fields`), the JSON a ``trust`` block (whether there was a model, the
final trust, its reason and message) and the PNG the trust over trials; the one-line message goes to
``on_trust_message`` the first time the trials contradict the model.

Targets: ``healthy`` (the patient's own healthy-regime twin), ``recording:PATH[:TMIN:TMAX]`` (a segment,
s), ``latent:PATH.npy`` (a latent vector), ``bandpower:LO-HI`` (minimize that band's power, Hz, on the
DBS lead's channels; the surrogate reads its biomarker heads), ``bandpower:LO-HI,energy=W`` (plus ``W`` times
the delivered TEED per second, mA²·Hz·ms: protocols reaching the goal with less charge win). With the
foundation model the measured cost of a trial is the (whitened) squared distance between the encoder
latents of the response and the target latent; without a checkpoint ``healthy`` falls back to the
simulators' band-power distance to the healthy twin and ``bandpower`` to the simulators' band power.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ConfigError, ModelError, ValidationError
from bfm_stim.files import check_readable, load_npy, read_toml
from bfm_stim.objectives import BandPowerObjective as ForecastBandPower, EnergyPenalized, LatentTarget
from bfm_stim.optim import Outcome, SurrogateCost, make, registry, settings_from_dict
from bfm_stim.space import Stimulus, StimulusSpace
from loops.config_files import CONFIG_DIR, bundled_config, config_path
from loops.model_trust import TrustNotice, draw_trust, model_manifest, trial_fields, trust_summary
from simulators.oracle import SETTLE_S  # s discarded after onset before scoring (0: the stimulation window)

log = get_logger("loops.offline")
REPO = Path(__file__).resolve().parents[1]
SURROGATE_OPTIMIZERS = ("gradient", "guided", "egreedy")
REST_S = 30.0


def _resample(data: np.ndarray | torch.Tensor, fs_in: float, fs_out: float) -> np.ndarray:
    from scipy.signal import resample_poly

    x = np.asarray(data, dtype=np.float64)
    if abs(fs_in - fs_out) < 1e-9:
        return x.astype(np.float32)
    from fractions import Fraction

    fr = Fraction(fs_out / fs_in).limit_denominator(1000)
    return resample_poly(x, fr.numerator, fr.denominator, axis=-1).astype(np.float32)


def checkpoint_path(checkpoint: str | Path | None) -> Path | None:
    """The checkpoint to use (given, or the shipped one); ``None`` when the shipped one is missing.

    Raises:
        ConfigError: A given checkpoint is missing or unreadable (a typo must not run without the model).
    """
    if checkpoint is not None:
        return check_readable(checkpoint, what="checkpoint",
                              hint="give a pretrained checkpoint (e.g. bfm_stim/checkpoints/default/model.pt), "
                                   "a `bfm-stim adapt` patient file, or leave --checkpoint out for the shipped one")
    from bfm_stim.surrogate import default_checkpoint

    try:
        return default_checkpoint()
    except ModelError:
        return None


def repo_path(path: str | Path) -> str:
    """``path`` as committed JSON may hold it: relative to the repository when inside it, else its name
    (no path of the machine a benchmark ran on)."""
    p = Path(path).resolve()
    return p.relative_to(REPO).as_posix() if p.is_relative_to(REPO) else p.name


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def patient_surrogate(patient: Any, checkpoint: Path, rest_s: float = REST_S) -> tuple[Any, np.ndarray]:
    """The foundation model bound to a simulated patient (zero-shot embedding from its rest); and the rest, µV."""
    from bfm_stim.model import load_checkpoint
    from bfm_stim.surrogate import Surrogate

    model, _ = load_checkpoint(checkpoint)
    rest = _resample(patient.simulate(rest_s, None, trial=900_000).data, patient.fs, model.config.fs)
    sur = Surrogate.from_checkpoint(checkpoint, positions=patient.channel_positions, rest=rest,
                                    space=patient.stimulus_space())
    return sur, rest


@dataclass(frozen=True)
class LatentObjective:
    """Measured cost of a trial: the target's latent distance of the encoder latents of the response.

    Called like the simulators' objectives: ``(patient, data (C, T) µV at patient.fs, stimulus) -> cost``.
    """

    surrogate: Any
    target: LatentTarget
    tag: str

    @property
    def key(self) -> str:
        return f"latent:{self.tag}"

    def __call__(self, patient: Any, data: torch.Tensor, stimulus: Stimulus | None) -> torch.Tensor:
        x = _resample(np.asarray(data)[: patient.n_channels], patient.fs, self.surrogate.fs)
        z = self.surrogate.latents(x)
        return self.target(z[None]).reshape(()).double()


@dataclass
class Target:
    """What a run optimizes: the measured objective, the surrogate-side objective and a description."""

    spec: str
    measured: Callable[[Any, torch.Tensor, Stimulus | None], torch.Tensor] | None
    forecast: Callable[[Any], torch.Tensor] | None
    description: str


def make_target(spec: str, patient: Any, surrogate: Any | None, *, ckpt_tag: str = "") -> Target:
    """Parse a target spec (see module docs) into measured and forecast objectives."""
    import simulators

    kind, _, arg = spec.partition(":")
    if kind == "bandpower" or spec.startswith("bandpower"):
        from bfm_stim.optim.cost_models import parse_bandpower_target

        (lo, hi), w = parse_bandpower_target(spec)
        meas = simulators.BandPowerObjective(band=(lo, hi), energy_weight=w) if patient is not None else None
        fc = None
        if surrogate is not None:
            # the channels the measured objective averages (the DBS lead's), natural log as it: the same
            # quantity on both sides, so an energy weight means the same trade-off on both
            types = list(getattr(patient, "channel_types", []) or [])
            chans = tuple(i for i, t in enumerate(types) if t == "dbs") or None
            fc = ForecastBandPower((lo, hi), surrogate.fs, channels=chans, log_base=math.e)
            if w > 0:
                fc = EnergyPenalized(fc, w)
        desc = f"minimize log band power {lo:g}-{hi:g} Hz" + (f" + {w:g} x TEED (mA²·Hz·ms)" if w else "")
        return Target(spec, meas, fc, desc)
    if kind == "healthy":
        if surrogate is None:
            return Target(spec, simulators.HealthyReferenceObjective(), None,
                          "band-power distance to the healthy twin (simulators.HealthyReferenceObjective)")
        twin = patient.healthy_twin()
        ref = _resample(twin.simulate(REST_S, None, trial=900_001).data, patient.fs, surrogate.fs)
        tgt = LatentTarget.from_recording(surrogate, ref)
    elif kind == "recording":
        from bfm_stim.recording import Recording

        parts = arg.split(":")
        rec = Recording.read(parts[0])
        if len(parts) == 3:
            rec = rec.crop(float(parts[1]), float(parts[2]))
        elif len(parts) != 1:
            raise ValidationError("target", spec, "recording:PATH or recording:PATH:TMIN:TMAX (s)")
        if surrogate is None:
            raise ConfigError(f"target {spec!r} needs the foundation model, but the shipped checkpoint is missing; "
                              "pass --checkpoint PATH")
        tgt = LatentTarget.from_recording(surrogate, rec)
    elif kind == "latent":
        if surrogate is None:
            raise ConfigError(f"target {spec!r} needs the foundation model, but the shipped checkpoint is missing; "
                              "pass --checkpoint PATH")
        tgt = LatentTarget.from_vector(load_npy(arg, what="latent target",
                                                hint="give latent:FILE.npy, a latent vector saved with numpy.save"))
    else:
        raise ValidationError("target", spec, "healthy | recording:PATH[:TMIN:TMAX] | latent:FILE.npy | bandpower:LO-HI")
    return Target(spec, LatentObjective(surrogate, tgt, f"{spec}:{ckpt_tag}"), tgt,
                  f"latent distance to {kind} target (BFM encoder)")


def _check_target_file(spec: str) -> None:
    """A ``latent:``/``recording:`` target's file must be readable, checked before the model loads."""
    kind, _, arg = spec.partition(":")
    if kind == "latent":
        check_readable(arg, what="latent target", hint="give latent:FILE.npy, a latent vector saved with numpy.save")
    elif kind == "recording":
        check_readable(arg.split(":")[0], what="target recording",
                       hint="give recording:PATH[:TMIN:TMAX] with a FIF, EDF, BDF, BrainVision or XDF file")


def run_trial(patient: Any, stim: Stimulus, objective: Callable, trial: int) -> Outcome:
    """Simulate one trial and measure its cost (over the stimulation window, after ``SETTLE_S``) and side effect."""
    from simulators.batch import simulate_batch

    res = simulate_batch([patient], [stim], stim.duration_s + SETTLE_S, trials=[trial])
    k0 = int(round(SETTLE_S * patient.fs))
    cost = float(objective(patient, res.data[0, : patient.n_channels, k0:], stim))
    sev, reported = patient.side_effect(stim, trial=trial)
    return Outcome(cost, side_effect=float(sev), metadata={"trial": trial, "side_effect_reported": bool(reported)})


def optimizer_settings(name: str, config: str | Path | None) -> dict[str, Any]:
    """The ``[name]`` table of ``config`` (a file or a bundled config's name; default the bundled
    ``optimizers``), or ``{}``."""
    what = "optimizer settings file"
    path = config_path(config, what=what) if config is not None else CONFIG_DIR / "optimizers.toml"
    if name not in registry:
        raise ConfigError(f"unknown optimizer {name!r}; registered: {sorted(registry)}")
    if config is None and not path.is_file():
        return {}
    table = read_toml(path, what=what).get(name, {})
    settings_from_dict(name, table)  # validate now, with the file's name in the error path
    return dict(table)


def predicted(cost: Any, space: StimulusSpace, stims: list[Stimulus]) -> list[tuple[float | None, float | None]]:
    """Predicted (cost, std) of stimuli; ``(None, None)`` without a cost model."""
    if cost is None or not stims:
        return [(None, None)] * len(stims)
    with torch.no_grad():
        m, s = cost.predict(space.to_features(stims, dtype=torch.float64))
    return list(zip(m.tolist(), s.tolist()))


def run_offline(patient: str = "bg-beta-v0", seed: int = 7, target: str = "healthy", optimizer: str = "guided",
                budget: int = 30, out: str | Path = "protocol.json", *, surrogate_only: bool = False,
                recording: str | Path | None = None, checkpoint: str | Path | None | bool = None,
                config: str | Path | None = None, top: int = 5, progress: bool = True,
                space: str | Path | None = None, scale: float | None = None,
                channel_files: tuple[str | Path, ...] = (), montage: str | None = None,
                on_trust_message: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Optimize a stimulation protocol; write ``out`` (JSON) and ``out`` with ``.png``.

    Args:
        patient: Simulated patient id (``simulators.make``).
        seed: Patient seed; also the optimizer's seed.
        target: ``healthy`` | ``recording:PATH[:TMIN:TMAX]`` | ``latent:FILE.npy`` | ``bandpower:LO-HI``.
        optimizer: Registered optimizer name.
        budget: Number of trials (real, or surrogate-only virtual trials), >= 1.
        out: Protocol JSON path.
        surrogate_only: No trials: optimize against the surrogate of ``recording``.
        recording: With ``surrogate_only``: the patient's recording (its stimulation-off start is the context).
        checkpoint: BFM checkpoint or ``bfm-stim adapt`` patient file (default: the shipped checkpoint);
            ``False``: no foundation model (the simulators' objectives). A given file that is missing raises.
        config: TOML with a table per optimizer, or a bundled config's name (default the bundled
            ``optimizers``); with
            ``surrogate_only`` a ``[space]`` table too.
        top: Number of protocols reported.
        progress: Show a progress bar over trials.
        space: With ``surrogate_only``: a TOML stimulus space (``[space]`` with the contacts), or a
            bundled config's name (``"space-dbs"``). Without
            it (and without a ``[space]`` table in ``config``) the contacts are the recording's own
            lead contacts (:func:`bfm_stim.io.geometry.stimulation_contacts`) with the bounds and
            safety limits of the bundled ``space-dbs``; a recording without any is refused.
        scale, channel_files, montage: With ``surrogate_only``: how to read the recording
            (:func:`loops.recording_input.prepare_recording`).
        on_trust_message: Called once with the one-line message when the trials first contradict the
            surrogate method's model (default: logged as a warning); the CLI prints it.

    Returns:
        The protocol dict written to ``out`` (``top``, ``trials``, ``settings`` ...).
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValidationError("budget", budget, "an integer >= 1 (trials)")
    table = optimizer_settings(optimizer, config)
    table["seed"] = int(seed)
    ckpt = None if checkpoint is False else checkpoint_path(checkpoint)  # type: ignore[arg-type]
    _check_target_file(target)
    if surrogate_only:
        p, (space, sur, context, rec_info) = None, _recorded_patient(
            recording, ckpt, config, space_file=space, scale=scale, channel_files=channel_files, montage=montage)
    else:
        import simulators

        p = simulators.make(patient, seed=seed)
        space = p.stimulus_space()
        sur, context = patient_surrogate(p, ckpt) if ckpt is not None else (None, None)
        if sur is None and checkpoint is not False:
            log.warning("the shipped foundation-model checkpoint is missing: running without a surrogate "
                        "(pass --checkpoint PATH)")
    tgt = make_target(target, p, sur, ckpt_tag=file_digest(ckpt) if sur is not None else "")
    cost = SurrogateCost(sur, context[:, -sur.cfg.max_patches * sur.cfg.patch_len:], tgt.forecast, seed=seed) \
        if sur is not None and tgt.forecast is not None else None
    if surrogate_only and cost is None:
        raise ConfigError("--surrogate-only needs the foundation model and a target it can score")
    hooks = {"cost_model": cost} if optimizer in SURROGATE_OPTIMIZERS else {}
    opt = make(optimizer, space, settings=table, **hooks)
    trials: list[dict[str, Any]] = []
    notice = TrustNotice()
    from tqdm.auto import tqdm

    for i in tqdm(range(budget), desc=f"{optimizer} trials", disable=not progress):
        stim = space.check(opt.ask(1)[0])  # the loop checks too, before anything is delivered
        if surrogate_only:
            (m, sd), = predicted(cost, space, [stim])
            outcome = Outcome(m, metadata={"trial": i, "virtual": True})
        else:
            outcome = run_trial(p, stim, tgt.measured, trial=i)
        opt.tell([stim], [outcome])
        (m, sd), = predicted(cost, space, [stim])
        trials.append({"trial": i, "stimulus": stim.to_dict(), "cost": outcome.cost,
                       "side_effect": outcome.side_effect, "predicted_cost": m, "predicted_std": sd,
                       "measured": not surrogate_only, **_trial_trust(opt, stim, surrogate_only)})
        msg = None if surrogate_only else notice.check(opt, i)
        if msg is not None:
            (on_trust_message or (lambda text: log.warning("after %d trials: %s", i + 1, text)))(msg)
    result = {
        "patient": None if surrogate_only else patient, "seed": seed, "recording": str(recording) if recording else None,
        "target": target, "objective": tgt.description, "optimizer": optimizer, "settings": opt.settings.to_dict(),
        "budget": budget, "surrogate": str(ckpt) if sur is not None else None, "surrogate_only": surrogate_only,
        "space": space.to_dict(), "top": _top(opt, cost, space, trials, top, surrogate_only), "trials": trials,
        "trust": _trust_block(opt, ckpt if sur is not None else None, trials, surrogate_only),
    }
    if surrogate_only:
        result["recording_input"] = rec_info
        result["ranking"] = ranking_verdict(result["top"])
        log.log(logging.WARNING if not result["ranking"]["distinguishable"] else logging.INFO,
                "%s", result["ranking"]["message"])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float))
    result["figure"] = str(plot_protocol(result, out.with_suffix(".png")))
    out.write_text(json.dumps(result, indent=1, default=float))
    return result


_VIRTUAL = "surrogate-only: no trial was measured, so the model was not checked against the patient"


def _trial_trust(opt: Any, stim: Stimulus, virtual: bool) -> dict[str, Any]:
    """The trust fields of a trial; a virtual trial (the model's own prediction) tells nothing of the model."""
    out = trial_fields(opt, stim)
    if virtual:
        out = {**out, "trust": None, "model_weight": None, "trust_reason": None}
        out.pop("trust_message", None)
    return out


def _trust_block(opt: Any, ckpt: Path | None, trials: list[dict[str, Any]], virtual: bool) -> dict[str, Any] | None:
    """The surrogate method's model and trust at the end (``None`` for optimizers without a model)."""
    if not hasattr(opt, "has_model"):
        return None
    block = model_manifest(opt, None if ckpt is None else {"path": repo_path(ckpt), "sha256_16": file_digest(ckpt)})
    end = trust_summary(trials)
    if end is None:
        reason = _VIRTUAL if virtual else "no cost model, so no trust was measured" if not opt.has_model else None
        end = {"trust": None, "reason": reason, "message": None}
    return {**block, **end}


def _recorded_patient(recording: str | Path | None, ckpt: Path | None, config: str | Path | None, *,
                      space_file: str | Path | None = None, scale: float | None = None,
                      channel_files: tuple[str | Path, ...] = (), montage: str | None = None):
    """Space, surrogate, context and input report of a recorded patient (surrogate-only mode).

    The recording goes through :func:`loops.recording_input.prepare_recording` (scale, geometry,
    sanity checks, neural channels); unknown positions stay NaN, as the model expects.
    """
    from bfm_stim.model import load_checkpoint
    from bfm_stim.model.checkpoint import load_patient
    from bfm_stim.surrogate import Surrogate
    from loops.recording_input import prepare_recording

    if recording is None:
        raise ConfigError("--surrogate-only needs --recording PATH (the patient's recording)")
    if ckpt is None:
        raise ConfigError("--surrogate-only needs the foundation model, but the shipped checkpoint is missing; "
                          "pass --checkpoint PATH")
    cfg = config_path(config, what="optimizer settings file") if config is not None else None
    data = read_toml(cfg, what="optimizer settings file") if cfg is not None else {}
    try:
        model, info = load_patient(ckpt)
        patient_file = True
    except Exception:  # noqa: BLE001 - not a patient file: a pretrained checkpoint, zero-shot embedding
        model, patient_file = load_checkpoint(ckpt)[0], False
    mc = model.config
    prep = prepare_recording(recording, scale=scale, channel_files=channel_files, montage=montage,
                             min_duration_s=max(2, mc.max_patches - mc.horizon_patches) * mc.patch_len / mc.fs)
    space, space_source, notes = _space_for(prep.full, data, cfg, space_file)
    rec_info = {**prep.to_dict(), "space_source": space_source}
    rec_info["checks"]["findings"] += [dict(n.__dict__) for n in notes]
    if patient_file:
        sur = Surrogate.from_patient_file(ckpt, space=space)
        rec = prep.full.pick(sur.ch_names) if sur.ch_names else prep.recording
    else:
        rec = prep.recording
        rest = _resample(rec.data, rec.fs, mc.fs)
        sur = Surrogate.from_checkpoint(ckpt, positions=rec.positions, rest=rest, space=space)
    return space, sur, _resample(rec.data, rec.fs, sur.fs), rec_info


def _space_for(rec: Any, data: dict[str, Any], cfg: Path | None, space_file: str | Path | None):
    """The stimulus space of a recorded patient, where it came from, and findings (never a default lead)."""
    from bfm_stim.io.geometry import missing_contacts_message, stimulation_contacts

    if space_file is not None:
        path = check_readable(config_path(space_file, what="stimulus space file"), what="stimulus space file")
        return StimulusSpace.from_toml(path), f"--space {space_file}", []
    if "space" in data:
        return StimulusSpace.from_dict(data["space"]), f"[space] of {cfg}", []
    contacts, notes = stimulation_contacts(rec)
    if not contacts:
        raise ConfigError(missing_contacts_message(rec))
    for n in notes:
        log.warning("%s", n.message)
    template = StimulusSpace.from_toml(bundled_config("space-dbs")).to_dict()
    template["contacts"] = [{"name": c.name, "position_mm": list(c.position_mm), "area_cm2": c.area_cm2}
                            for c in contacts]
    source = (f"the recording's {len(contacts)} lead contacts ({', '.join(c.name for c in contacts)}); bounds and "
              "safety limits of the bundled space-dbs config")
    log.info("stimulus space: %s", source)
    return StimulusSpace.from_dict(template), source, notes


def ranking_verdict(top: list[dict], *, z: float = 1.0) -> dict[str, Any]:
    """Can the surrogate tell its unmeasured candidates apart? Spread, uncertainty and a message.

    A candidate is told apart from the best when its predicted cost exceeds the best's by more than
    ``z`` times their combined predicted std (``sqrt(std_best² + std_i²)``). Each candidate gets
    ``tied_with_best``, and a ``rank`` only when it is told apart from the best (the candidates tied
    with the best share ``rank = None`` when there are several).
    """
    cands = [t for t in top if not t.get("measured") and t.get("predicted_cost") is not None]
    if not cands:
        return {"distinguishable": False, "n": 0, "spread": None, "uncertainty": None,
                "message": "no unmeasured candidates to rank"}
    m = np.array([c["predicted_cost"] for c in cands], dtype=float)
    sd = np.array([c["predicted_std"] or 0.0 for c in cands], dtype=float)
    best = int(np.argmin(m))
    tied = (m - m[best]) <= z * np.sqrt(sd[best] ** 2 + sd ** 2)
    spread, unc = float(m.max() - m.min()), float(np.median(sd))
    n_tied = int(tied.sum())
    order = np.argsort(m, kind="stable")
    for r, k in enumerate(order):
        cands[k]["tied_with_best"] = bool(tied[k])
        cands[k]["rank"] = None if tied[k] and n_tied > 1 else r + 1
    out = {"distinguishable": n_tied < len(cands), "n": len(cands), "n_tied_with_best": n_tied, "spread": spread,
           "uncertainty": unc}
    if n_tied == len(cands):
        out["message"] = (
            f"the surrogate cannot tell these apart: the {len(cands)} candidates' predicted costs span {spread:.3g} "
            f"({m.min():.4g} to {m.max():.4g}), within its uncertainty (predicted std, median {unc:.3g}); treat them "
            "as equivalent and measure them, or adapt the model to more of this patient's data")
    elif n_tied > 1:
        out["message"] = (
            f"{n_tied} of {len(cands)} candidates tie with the best within the surrogate's uncertainty (predicted "
            f"costs span {spread:.3g}, median std {unc:.3g}); only the others rank below them")
    else:
        out["message"] = (f"the best candidate beats the others by more than the surrogate's uncertainty "
                          f"(predicted costs span {spread:.3g}, median std {unc:.3g})")
    return out


def _top(opt: Any, cost: Any, space: StimulusSpace, trials: list[dict], n: int, surrogate_only: bool) -> list[dict]:
    """Best measured trials (no side effect) then the surrogate's best unmeasured candidates."""
    out: list[dict] = []
    if not surrogate_only:
        ok = sorted((t for t in trials if (t["side_effect"] or 0.0) < 0.5), key=lambda t: t["cost"])
        seen = set()
        for t in ok:
            key = json.dumps(t["stimulus"], sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append({"stimulus": t["stimulus"], "observed_cost": t["cost"], "predicted_cost": t["predicted_cost"],
                            "predicted_std": t["predicted_std"], "measured": True, "trial": t["trial"]})
            if len(out) == n:
                break
    if cost is not None:
        from bfm_stim.optim.gradient import rank_candidates, surrogate_search

        st = opt.settings
        U = surrogate_search(cost, space, seed=int(st.seed), n_starts=getattr(st, "n_starts", 6),
                             steps=getattr(st, "steps", 60), lr=getattr(st, "lr", 0.05))
        for s, m, sd in rank_candidates(cost, space, U, n):
            out.append({"stimulus": space.check(s).to_dict(), "observed_cost": None, "predicted_cost": m,
                        "predicted_std": sd, "measured": False})
    return out


def plot_protocol(result: dict, path: Path) -> Path:
    """Cost per trial with best-so-far, the surrogate method's trust in its model per trial (when it has one),
    and amplitude vs frequency coloured by cost, per contact."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = result["trials"]
    cost = np.array([t["cost"] for t in trials])
    contacts = sorted({t["stimulus"].get("contact") or t["stimulus"].get("modality") or "-" for t in trials})
    n_trust = int(any(t.get("trust") is not None for t in trials))
    n = 1 + n_trust + len(contacts)
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.5), squeeze=False)
    ax = axes[0, 0]
    ax.plot(np.arange(1, len(cost) + 1), cost, "o", ms=3, label="trial")
    ax.plot(np.arange(1, len(cost) + 1), np.minimum.accumulate(cost), "-", label="best so far")
    ax.set(xlabel="trial", ylabel="cost", title=f"{result['optimizer']} - {result['target']}")
    ax.legend(fontsize=7)
    if n_trust:  # trials counted from 1, as in the cost panel
        draw_trust(axes[0, 1], [{**t, "trial": t["trial"] + 1} for t in trials])
        axes[0, 1].set_title("trust in the model")
        axes[0, 1].legend(fontsize=6, loc="best")
    vmin, vmax = float(cost.min()), float(cost.max())
    for ax, c in zip(axes[0, 1 + n_trust:], contacts):
        sel = [t for t in trials if (t["stimulus"].get("contact") or t["stimulus"].get("modality") or "-") == c]
        x = [t["stimulus"].get("frequency_hz", 0.0) for t in sel]
        y = [t["stimulus"].get("amplitude_ma", t["stimulus"].get("level", 0.0)) for t in sel]
        sc = ax.scatter(x, y, c=[t["cost"] for t in sel], vmin=vmin, vmax=vmax, cmap="viridis", s=18)
        ax.set(xscale="log", xlabel="frequency (Hz)", ylabel="amplitude (mA)", title=str(c))
    fig.colorbar(sc if contacts else None, ax=axes[0, -1]) if contacts else None
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
