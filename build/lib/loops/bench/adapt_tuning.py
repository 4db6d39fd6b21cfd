"""``bfm-stim bench adapt-tuning``: pick each trained method's steps and learning rate on validation patients.

The surrogate benchmark (:mod:`loops.bench.surrogate`) adapts three ways: the pretrained model with
its embedding and read-in/out tuned, the pretrained model fine-tuned whole, and the same architecture
trained from scratch. Each needs a number of optimiser steps and a learning rate; a method whose
settings were guessed while another's were tuned would not be a fair comparison. This sweep tunes
all three the same way:

- on ``n_val`` validation patients: evaluation-cohort seeds *after* the benchmark's own patients
  (never pretrained on, never reported; asserted disjoint from both), families in the benchmark's
  rotation;
- with 2 min of probe data (the amount the targets are set at), batch and channel subset as the benchmark;
- over a grid of (steps, learning rate) per method with the same step budget for every method
  (at most 300 steps at 2 min; see ``--amount`` below for the longer grids at 10 min); the
  pretrained methods' grids also hold anchored settings ``(steps, lr, anchor)``, which pull the
  weights towards the pretrained ones (:func:`bfm_stim.model.adapt.adapt`; keys ``"30@0.003+a100"``).
  The from-scratch model has no pretrained weights to be pulled towards and gets none;
- scored by the median over patients of R² at 160 ms plus stimulation-effect R² (the two targets
  adaptation can move; 40 ms is near its ceiling zero-shot), ties to the cheaper setting.

The JSON holds every (patient, method, setting) row, the medians, and ``picks``; the benchmark's
:data:`loops.bench.surrogate.FULL` uses the picks (a test checks they agree). The picks at 2 min do
not fit every amount (300 steps on 10 s of probes overfit), so ``--amount S`` runs the same sweep at
S s of probes (``bench/adapt_tuning_{S}s.json``; from :data:`LONG_FROM_S` on, every method's grid
also has a 1000-step setting and the from-scratch grid goes on to 6000 steps), and the benchmark's
``per_amount`` uses those picks at its other amounts. ``--reuse JSON`` takes over the rows an
earlier sweep of the same patients, data and checkpoint already has (checked against each
patient's recomputed zero-shot row, which fixes the checkpoint, the patient and the evaluation but
not the adaptation code: do not reuse across a change to it), so extending a grid costs only the
new settings.

:data:`REST` (``bfm-stim bench adapt-tuning --rest``) tunes the defaults of ``bfm-stim adapt``
instead: that command adapts on a recording, typically stimulation-free, so the sweep gives each
validation patient 2 min of rest and no probes (``amount_s`` 0), and tries the two modes the
command offers besides zero-shot. :data:`loops.adapt.DEFAULT_STEPS` and ``DEFAULT_LR`` use its
picks (a test checks they agree). The test trials and the score are the same as above, so the
stimulation-effect R² says how much a rest-only adaptation keeps of what pretraining learnt.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ValidationError
from loops.offline import repo_path

__all__ = ["TuningConfig", "FULL", "QUICK", "REST", "LONG_FROM_S", "LONG_SETTINGS", "run_adapt_tuning", "SCORE_METRICS"]

log = get_logger("bench.adapt_tuning")
SCORE_METRICS = ("forecast_r2_160ms", "stim_effect_r2")
REPORT_METRICS = ("forecast_r2_40ms", "forecast_r2_160ms", "stim_effect_r2", "stim_effect_r2_heldout")


@dataclass(frozen=True)
class TuningConfig:
    """Size of the sweep; ``grids`` maps a method to its settings, amounts in s.

    A setting is ``(steps, learning rate)`` or ``(steps, learning rate, anchor)``: the pull towards the
    pretrained weights of :func:`bfm_stim.model.adapt.adapt` (pretrained methods only; 0 or absent: none).

    Each patient's adaptation data is ``rest_s`` of stimulation-off rest plus the first ``amount_s``
    of probe trials (``amount_s`` 0: rest only).
    """

    n_val: int = 8
    amount_s: float = 120.0
    grids: tuple[tuple[str, tuple[tuple[int, float], ...]], ...] = (
        ("pretrained_finetune", ((30, 5e-4), (30, 1.5e-3), (100, 1e-4), (100, 2e-4), (100, 5e-4), (300, 1e-4),
                                 (30, 5e-4, 100.0), (100, 3e-4, 100.0), (300, 3e-4, 30.0))),
        ("pretrained_embedding", ((30, 3e-3), (100, 1e-3), (100, 3e-3), (300, 3e-4), (300, 1e-3),
                                  (30, 3e-3, 100.0), (30, 3e-3, 300.0), (100, 1e-3, 100.0), (300, 1e-3, 30.0))),
        ("scratch", ((100, 1e-3), (100, 3e-3), (300, 3e-4), (300, 1e-3), (300, 3e-3))),
    )
    rest_s: float = 30.0
    cal_s: float = 40.0
    n_test: int = 16
    hidden_s: float = 20.0
    batch_size: int = 8
    max_channels: int = 8
    n_cal_windows: int = 16
    workers: int = 2


# About 10 min on 2 cores (one validation patient per single-threaded process). The anchored settings
# (third element) were added later: adapting on 10 s of probes without them lost to zero-shot in
# every setting (the read-in/out layers overfit a handful of trials;
# bench/diagnostics/diag_anchor_10s.json), with them the pretrained weights' pull keeps what a few
# trials cannot tell.
FULL = TuningConfig()
QUICK = TuningConfig(n_val=1, amount_s=10.0, rest_s=8.0, cal_s=8.0, n_test=4, hidden_s=6.0, batch_size=4,
                     n_cal_windows=8, workers=1,
                     grids=(("pretrained_finetune", ((1, 5e-4), (2, 1e-4), (2, 1e-4, 100.0))), ("scratch", ((1, 1e-3),))))

# ``bfm-stim adapt``'s setting: 2 min of stimulation-free data, no probes; the two trained modes it offers.
# The first setting of each grid is the command's earlier default.
# The anchored settings (third element) came later, as in FULL.
REST = TuningConfig(amount_s=0.0, rest_s=120.0, grids=(
    ("pretrained_finetune", ((150, 5e-4), (100, 1e-4), (150, 1e-4), (300, 1e-4), (150, 2e-4), (300, 2e-4),
                             (100, 3e-4, 100.0), (300, 3e-4, 30.0))),
    ("pretrained_embedding", ((150, 3e-3), (150, 1e-3), (300, 3e-4), (300, 1e-3), (150, 3e-3, 100.0),
                              (300, 1e-3, 30.0))),
))

# From 10 min of probes on, the sweep also tries 1000 steps for every method: at 300 steps the
# from-scratch model was still improving there (the grid's cap bound its pick). It kept gaining with
# more steps (score 0.48 at 300, 0.54 at 1000, 0.65 at 3000), so its grid goes on to 6000 steps.
LONG_FROM_S = 600.0
LONG_SETTINGS = (("pretrained_finetune", ((1000, 1e-4),)), ("pretrained_embedding", ((1000, 3e-4),)),
                 ("scratch", ((1000, 1e-3), (3000, 3e-4), (3000, 1e-3), (6000, 1e-3))))

# What two sweeps may differ in and still share rows: the grids, the number of validation patients
# (rows are matched per patient) and the pool size. Every other TuningConfig field must be equal.
_REUSE_FREE = ("grids", "n_val", "workers")

_MODE = {"pretrained_finetune": "full", "pretrained_embedding": "embedding", "scratch": "full"}


def setting_key(steps: int, lr: float, anchor: float = 0.0) -> str:
    """JSON key of one grid setting, e.g. ``"100@0.0001"``, or ``"30@0.003+a100"`` with an anchor."""
    return f"{int(steps)}@{lr:g}" + (f"+a{anchor:g}" if anchor else "")


def unpack_setting(setting: Sequence[float]) -> tuple[int, float, float]:
    """``(steps, lr)`` or ``(steps, lr, anchor)`` → ``(steps, lr, anchor)`` (anchor 0 when absent)."""
    if len(setting) not in (2, 3):
        raise ValidationError("setting", tuple(setting), "(steps, lr) or (steps, lr, anchor)")
    steps, lr, anchor = (*setting, 0.0) if len(setting) == 2 else setting
    return int(steps), float(lr), float(anchor)


def validation_seeds(n_val: int) -> list[int]:
    """Eval-cohort seeds after the surrogate benchmark's patients (and its scratch validation patient)."""
    import simulators
    from loops.bench.surrogate import FULL as BENCH

    skip = BENCH.n_patients + 1
    return [int(s) for s in simulators.cohort("eval", skip + n_val)[skip:]]


def _tune_patient(job: dict[str, Any]) -> dict[str, Any]:
    """Every grid setting of every method on one validation patient (in a worker or inline)."""
    from bfm_stim.model.adapt import adapt, infer_embedding
    from bfm_stim.model.checkpoint import load_checkpoint
    from loops.bench.data import make_eval_patient
    from loops.bench.surrogate import _eval_bfm, _forecaster, _scratch_model

    tc: TuningConfig = job["tc"]
    i = job["i"]
    torch.set_num_threads(1)
    model, _ = load_checkpoint(job["checkpoint"])
    cfg = model.config
    ep = make_eval_patient(job["family"], job["seed"], fs=cfg.fs, patch_len=cfg.patch_len,
                           ctx_patches=cfg.max_patches - cfg.horizon_patches, hor_patches=cfg.horizon_patches,
                           rest_s=tc.rest_s, probe_s=tc.amount_s, cal_s=tc.cal_s, n_test=tc.n_test,
                           hidden_s=tc.hidden_s)
    torch.manual_seed(1000 + i)
    e0 = infer_embedding(model, ep.series(0).data, ep.session.positions)
    zs, _ = _eval_bfm(model, e0, ep, cfg.fs, tc.n_cal_windows, _forecaster(cfg, ep.series(0)))
    rows: dict[str, dict[str, dict[str, float]]] = {"zero_shot": {"-": {k: zs[k] for k in REPORT_METRICS}}}
    reuse = job.get("reuse") or {}
    for path, (i_old, fam_old) in reuse.get("where", {}).items():
        if (i_old, fam_old) != (i, job["family"]):
            raise ValidationError("--reuse", path, "the same validation patients",
                                  f"seed {job['seed']} is patient {i_old} ({fam_old}) there, {i} ({job['family']}) here")
    for path, old in reuse.get("zero_shot", {}).items():
        # the zero-shot row is recomputed every run; equal figures mean the same checkpoint, patient and test
        for k in REPORT_METRICS:
            if not math.isclose(old[k], zs[k], rel_tol=1e-9, abs_tol=1e-12):
                raise ValidationError("--reuse", path, "a sweep made with this checkpoint and code",
                                      f"validation patient {job['seed']}: zero-shot {k} {old[k]!r} there, "
                                      f"{zs[k]!r} here; rerun without --reuse")
    ser = ep.series(tc.amount_s)
    for method, grid in tc.grids:
        rows[method] = {}
        for setting in grid:
            steps, lr, anchor = unpack_setting(setting)
            key = setting_key(steps, lr, anchor)
            if key in reuse.get("rows", {}).get(method, {}):
                rows[method][key] = reuse["rows"][method][key]
                continue
            t = time.perf_counter()
            scratch = method == "scratch"
            res = adapt(_scratch_model(cfg, i) if scratch else model, ser, mode=_MODE[method], steps=steps, lr=lr,
                        seed=i, patient_init=None if scratch else e0, batch_size=tc.batch_size,
                        max_channels=tc.max_channels, anchor=anchor)
            met, _ = _eval_bfm(res.model, res.embedding, ep, cfg.fs, tc.n_cal_windows, res.forecaster)
            rows[method][key] = {**{k: met[k] for k in REPORT_METRICS},
                                                    "seconds": time.perf_counter() - t}
    return {"i": i, "family": job["family"], "seed": job["seed"], "rows": rows}


def _pick(per_setting: dict[str, dict[str, float]], grid: tuple[tuple[float, ...], ...]) -> dict[str, Any]:
    """The setting with the best median score; ties (within 1e-9) go to fewer steps, then to no anchor."""
    best = max((unpack_setting(s) for s in grid),
               key=lambda s: (round(per_setting[setting_key(*s)]["score"], 9), -s[0], -s[2]))
    return {"steps": best[0], "lr": best[1], "anchor": best[2], "score": per_setting[setting_key(*best)]["score"]}


def _load_reuse(paths: Sequence[str | Path], tc: TuningConfig) -> dict[int, dict[str, Any]]:
    """Rows of earlier sweeps' JSON files that this sweep can take over, per validation seed.

    A file qualifies when its data and every config field but ``_REUSE_FREE`` equal this sweep's; only
    settings in this sweep's grids are taken (a later file wins). Each taken row gains
    ``reused_from`` (the file). :func:`_tune_patient` checks per patient that the file's zero-shot row
    equals the recomputed one (same checkpoint, patient data and evaluation; the adaptation code
    itself is not fingerprinted).
    """
    out: dict[int, dict[str, Any]] = {}
    want = dataclasses.asdict(tc)
    grids = {m: {setting_key(*unpack_setting(s)) for s in g} for m, g in tc.grids}
    data = "rest only" if tc.amount_s == 0 else "rest + probes"
    for path in paths:
        try:
            old = json.loads(Path(path).read_text())
            cfg, parts = old["config"], old["per_patient"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValidationError("--reuse", str(path), "a JSON file written by `bfm-stim bench adapt-tuning`",
                                  f"{type(e).__name__}: {e}") from None
        diff = [k for k in want if k not in _REUSE_FREE and cfg.get(k) != want[k]]
        if old.get("data") != data:
            diff.insert(0, "data")
        if diff:
            k = diff[0]
            raise ValidationError("--reuse", str(path), "a sweep with the same patients, data and evaluation",
                                  f"{k} is {old.get('data') if k == 'data' else cfg.get(k)!r} there, "
                                  f"{data if k == 'data' else want[k]!r} here")
        try:
            for part in parts:
                slot = out.setdefault(int(part["seed"]), {"zero_shot": {}, "rows": {}, "where": {}})
                slot["where"][str(path)] = (int(part["i"]), str(part["family"]))
                slot["zero_shot"][str(path)] = {k: float(part["rows"]["zero_shot"]["-"][k]) for k in REPORT_METRICS}
                for method, rows in part["rows"].items():
                    for key, row in rows.items():
                        if key in grids.get(method, ()):
                            vals = {k: float(row[k]) for k in REPORT_METRICS}
                            slot["rows"].setdefault(method, {})[key] = {
                                **row, **vals, "reused_from": row.get("reused_from", repo_path(path))}
        except (KeyError, TypeError, ValueError) as e:
            raise ValidationError("--reuse", str(path), "per-patient rows with every reported metric",
                                  f"{type(e).__name__}: {e}") from None
    return out


def run_adapt_tuning(quick: bool = False, checkpoint: str | None = None, *, config: TuningConfig | None = None,
                     rest: bool = False, amount_s: float | None = None, progress: bool = True,
                     reuse: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Run the sweep and return its JSON-able results (see the module docstring).

    ``rest``: the :data:`REST` sweep (``bfm-stim adapt``'s defaults; with ``quick``, :data:`QUICK`
    on rest only). ``amount_s``: the sweep at that many seconds of probe trials instead of
    :data:`FULL`'s 120 (the benchmark's other amounts; not with ``rest``). ``config`` overrides all.
    ``reuse``: earlier sweeps' JSON files whose rows for the same patients and settings are taken
    over instead of recomputed (see :func:`_load_reuse`; a grid extended by a few settings then
    costs only those). Raises :class:`ValidationError` when a file was made with other data,
    evaluation settings, checkpoint or code.
    """
    import simulators

    from bfm_stim.model.checkpoint import load_checkpoint
    from bfm_stim.surrogate import default_checkpoint
    from loops.bench.surrogate import FAMILIES

    if rest and amount_s is not None:
        raise ValidationError("amount_s", amount_s, "None with rest=True (rest only has no probe trials)")
    tc = config or (QUICK if quick else FULL)
    if rest and config is None:
        tc = dataclasses.replace(QUICK, amount_s=0.0, rest_s=QUICK.rest_s + QUICK.amount_s) if quick else REST
    elif amount_s is not None and config is None:
        if not (math.isfinite(amount_s) and amount_s > 0):
            raise ValidationError("amount_s", amount_s, "> 0 s of probe trials (use --rest for rest only)")
        tc = dataclasses.replace(tc, amount_s=float(amount_s))
        if amount_s >= LONG_FROM_S and not quick:
            tc = dataclasses.replace(tc, grids=tuple((m, g + dict(LONG_SETTINGS)[m]) for m, g in tc.grids))
    ck = str(checkpoint or default_checkpoint())
    _, info = load_checkpoint(ck)
    seeds = validation_seeds(tc.n_val)
    n_pre = int(info["extra"].get("pretrain_config", {}).get("corpus", {}).get("n_patients", 0))
    from loops.bench.surrogate import FULL as BENCH

    first = BENCH.n_patients + 1  # the benchmark's patients and its scratch validation patient come first
    reported = set(simulators.cohort("eval", first))
    pre = set(simulators.cohort("pretrain", 4 * max(n_pre, 1)))
    assert not (set(seeds) & (reported | pre)) and all(simulators.cohort_of(s) == "eval" for s in seeds), \
        "validation patients overlap the reported or pretraining patients"
    old = _load_reuse(reuse, tc)
    jobs = [dict(i=first + k, family=FAMILIES[(first + k) % len(FAMILIES)], seed=s, tc=tc, checkpoint=ck,
                 reuse=old.get(s)) for k, s in enumerate(seeds)]
    t0 = time.perf_counter()
    from loops._pool import map_jobs

    parts = map_jobs(_tune_patient, jobs, tc.workers, desc="validation patients", progress=progress)
    medians: dict[str, dict[str, dict[str, float]]] = {}
    for method in parts[0]["rows"]:
        medians[method] = {}
        for key in parts[0]["rows"][method]:
            vals = {k: float(np.median([p["rows"][method][key][k] for p in parts])) for k in REPORT_METRICS}
            vals["score"] = float(np.median([sum(p["rows"][method][key][k] for k in SCORE_METRICS) for p in parts]))
            medians[method][key] = vals
    picks = {m: _pick(medians[m], grid) for m, grid in tc.grids}
    log.info("adaptation picks: %s", picks)
    return {"config": dataclasses.asdict(tc), "data": "rest only" if tc.amount_s == 0 else "rest + probes",
            "checkpoint": repo_path(ck), "score": " + ".join(SCORE_METRICS), "reused": [repo_path(p) for p in reuse],
            "validation_patients": [{"i": p["i"], "family": p["family"], "seed": p["seed"]} for p in parts],
            "per_patient": parts, "medians": medians, "picks": picks,
            "timing_s": {"total": time.perf_counter() - t0}}
