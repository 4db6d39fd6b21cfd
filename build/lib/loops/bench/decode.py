"""``bfm-stim bench decode``: the foundation model as a feature extractor, measured by decoding.

On evaluation-cohort patients of both pathological families, labelled data the simulators know:

* ``state`` — healthy vs pathological (the patient and its healthy twin: same anatomy, channels,
  noise model), 5 s blocks in a seeded random order;
* ``stim`` — stimulation off / 20 Hz / 130 Hz on one contact at 2 mA (the recording as it comes,
  artifacts included);
* ``flicker`` — visual flicker at 8 / 13 / 20 Hz (cortical patients only: the basal-ganglia
  family has no sensory input);
* ``hidden`` — regression of a hidden state the recording does not show directly: log10 variance of
  the first source (STN motor population; cortical column 0) per window, over the ``state`` data.

Each task has 48 blocks of 5 s cut into 1 s windows (240 windows, 4 min). Features of every window:
the BFM's pooled latents (zero-shot: the patient embedding from 30 s of the patient's own rest, no
labels), the same architecture with random weights (``random_init``), and hand-crafted features
(log band powers per channel, line length, Hjorth). One linear read-out, blocked 5-fold CV, with
the first 10 s, 30 s and 2 min of labels of the training folds (:func:`bfm_stim.decoding.cross_validate`).

Cross-patient (``state`` and ``stim``, per family, leave one patient out): a decoder trained on the
other patients' windows, applied to the new one with no labels from it, in latent space encoded with
(a) the model's own patient embedding of each patient, (b) a generic embedding (the mean of the
pretraining patients'), (c) (b) re-centred and whitened by each patient's rest latents
(:class:`bfm_stim.decoding.RestAlignment`, the baseline to beat), (d) (a) and (c) together; and
channel-averaged hand-crafted features re-centred by rest. Compared with within-patient decoding at
2 min of labels.

Real recordings: each file of ``../shared/data/recordings`` with annotations — windows that hold
an annotation vs windows that do not — reported whichever way they come out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from bfm_stim._logging import get_logger

__all__ = ["run_decode_bench", "simulate_tasks", "TASKS", "LABEL_S"]

log = get_logger("loops.bench.decode")

FAMILIES = ("bg-beta-v0", "cortex-jr-epileptic-v0")
TASKS = ("state", "stim", "flicker", "hidden")
LABEL_S = (10, 30, 120)
BLOCK_S, WINDOW_S, N_BLOCKS, REST_S = 5.0, 1.0, 48, 30.0
CROSS_TASKS = ("state", "stim")
POOL = "mean+scale"  # the mean latent of the window and its amplitude (see bfm_stim.features.window_scale)
CROSS_METHODS = ("latent_model", "latent_generic", "latent_generic_rest", "latent_model_rest", "handcrafted_rest")


@dataclass
class TaskData:
    """Windows (N, C, T) µV at the patient's rate, labels (N,), block ids (N,)."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    kind: str  # "classification" | "regression"


def _stimuli(p: Any, task: str) -> list[tuple[str, Any]]:
    from bfm_stim.space import Stimulus

    d = BLOCK_S
    if task == "stim":
        c = p.contacts[0].name
        return [("off", None),
                ("20Hz", Stimulus.electrical(contact=c, amplitude_ma=2.0, frequency_hz=20.0, pulse_width_us=60.0, duration_s=d)),
                ("130Hz", Stimulus.electrical(contact=c, amplitude_ma=2.0, frequency_hz=130.0, pulse_width_us=60.0,
                                              duration_s=d))]
    if task == "flicker":
        return [(f"{r:g}Hz", Stimulus.sensory(modality="visual_flicker", frequency_hz=r, level=1.0, duration_s=d))
                for r in (8.0, 13.0, 20.0)]
    raise ValueError(task)


def simulate_tasks(family: str, seed: int, tasks: Sequence[str] = TASKS) -> tuple[Any, dict[str, TaskData], np.ndarray]:
    """The patient, its labelled task data and 30 s of its rest (C, T) µV (trial ids never shared)."""
    import simulators

    p = simulators.make(family, seed)
    rng = np.random.default_rng([seed, 25])
    w = int(round(WINDOW_S * p.fs))
    per = int(round(BLOCK_S / WINDOW_S))
    out: dict[str, TaskData] = {}
    rest = p.simulate(REST_S, trial=10_000).data.numpy()

    def cut(data: np.ndarray) -> list[np.ndarray]:
        return [data[:, i * w:(i + 1) * w] for i in range(per)]

    if "state" in tasks or "hidden" in tasks:
        twin = p.healthy_twin()
        order = rng.permutation(np.repeat([0, 1], N_BLOCKS // 2))
        X, y, g, hid = [], [], [], []
        for b, lab in enumerate(order):
            r = (p if lab else twin).simulate(BLOCK_S, trial=20_000 + b)
            X += cut(r.data.numpy())
            h = r.hidden.numpy()[:, 0]
            hid += [np.log10(h[i * w:(i + 1) * w].var() + 1e-12) for i in range(per)]
            y += [int(lab)] * per
            g += [b] * per
        if "state" in tasks:
            out["state"] = TaskData(np.stack(X), np.array(y), np.array(g), "classification")
        if "hidden" in tasks:
            out["hidden"] = TaskData(np.stack(X), np.array(hid), np.array(g), "regression")
    for task in ("stim", "flicker"):
        if task not in tasks or (task == "flicker" and family.startswith("bg-")):
            continue
        stims = _stimuli(p, task)
        order = rng.permutation(np.repeat(np.arange(len(stims)), N_BLOCKS // len(stims)))
        X, y, g = [], [], []
        for b, k in enumerate(order):
            r = p.simulate(BLOCK_S, stims[k][1], trial=30_000 + 1000 * len(out) + b)
            X += cut(r.data.numpy())
            y += [stims[k][0]] * per
            g += [b] * per
        out[task] = TaskData(np.stack(X), np.array(y), np.array(g), "classification")
    return p, out, rest


class _Encoders:
    """The shipped BFM, and the same architecture with random weights (seeded)."""

    def __init__(self, checkpoint: str | Path | None) -> None:
        from bfm_stim.features import load_encoder
        from bfm_stim.model.bfm import BrainFoundationModel

        self.model, _, self.info = load_encoder(checkpoint)
        torch.manual_seed(0)
        self.random = BrainFoundationModel(self.model.config).eval()
        with torch.no_grad():
            self.generic = self.model.patient_table.weight.mean(0)  # the pretraining patients' mean embedding

    def latents(self, model: Any, X: np.ndarray, fs: float, pos: np.ndarray, e: torch.Tensor) -> np.ndarray:
        from bfm_stim.features import _pool, _resample, encode_windows

        x = _resample(X, fs, model.config.fs)
        return _pool(encode_windows(model, x, pos, e), POOL, x)

    def embedding(self, model: Any, rest: np.ndarray, fs: float, pos: np.ndarray) -> torch.Tensor:
        from bfm_stim.features import _resample
        from bfm_stim.model.adapt import infer_embedding

        return infer_embedding(model, _resample(rest, fs, model.config.fs), pos)


def _rest_windows(rest: np.ndarray, fs: float) -> np.ndarray:
    w = int(round(WINDOW_S * fs))
    n = rest.shape[1] // w
    return rest[:, : n * w].reshape(rest.shape[0], n, w).transpose(1, 0, 2)


def _patient_features(enc: _Encoders, p: Any, tasks: dict[str, TaskData], rest: np.ndarray) -> dict[str, Any]:
    from bfm_stim.handcrafted import handcrafted_features

    pos = p.channel_positions
    e_own = enc.embedding(enc.model, rest, p.fs, pos)
    e_rand = enc.embedding(enc.random, rest, p.fs, pos)
    rw = _rest_windows(rest, p.fs)
    feats: dict[str, Any] = {"rest": {
        "latent_model": enc.latents(enc.model, rw, p.fs, pos, e_own),
        "latent_generic": enc.latents(enc.model, rw, p.fs, pos, enc.generic),
        "handcrafted_mean": handcrafted_features(rw, p.fs, channel_mean=True)}}
    done: dict[int, dict[str, np.ndarray]] = {}
    for name, td in tasks.items():
        key = id(td.X)
        if key not in done:  # `hidden` reuses the `state` windows
            done[key] = {"latent": enc.latents(enc.model, td.X, p.fs, pos, e_own),
                         "random_init": enc.latents(enc.random, td.X, p.fs, pos, e_rand),
                         "handcrafted": handcrafted_features(td.X, p.fs)}
            if name in CROSS_TASKS:
                done[key]["latent_generic"] = enc.latents(enc.model, td.X, p.fs, pos, enc.generic)
                done[key]["handcrafted_mean"] = handcrafted_features(td.X, p.fs, channel_mean=True)
        feats[name] = done[key]
    return feats


def _within(feats: dict[str, Any], tasks: dict[str, TaskData]) -> dict[str, Any]:
    from bfm_stim.decoding import cross_validate

    out: dict[str, Any] = {}
    for name, td in tasks.items():
        out[name] = {}
        for fset in ("latent", "random_init", "handcrafted"):
            out[name][fset] = {str(s): cross_validate(feats[name][fset], td.y, td.kind, groups=td.groups,
                                                      n_train=int(s / WINDOW_S))["score"] for s in LABEL_S}
    return out


def _cross(family_rows: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """Leave-one-patient-out decoding within a family for one task."""
    from bfm_stim.decoding import RestAlignment, fit_decoder, score

    def feats(row: dict[str, Any], method: str) -> np.ndarray:
        f = row["feats"]
        if method in ("latent_model", "latent_generic"):
            return f[task][method if method == "latent_generic" else "latent"]
        if method == "latent_generic_rest":
            return RestAlignment().fit(f["rest"]["latent_generic"]).transform(f[task]["latent_generic"])
        if method == "latent_model_rest":
            return RestAlignment().fit(f["rest"]["latent_model"]).transform(f[task]["latent"])
        if method == "handcrafted_rest":
            return RestAlignment().fit(f["rest"]["handcrafted_mean"]).transform(f[task]["handcrafted_mean"])
        raise ValueError(method)

    out = []
    for i, test in enumerate(family_rows):
        if task not in test["tasks"]:
            continue
        train = [r for j, r in enumerate(family_rows) if j != i and task in r["tasks"]]
        row: dict[str, Any] = {"seed": test["seed"]}
        for m in CROSS_METHODS:
            F = np.concatenate([feats(r, m) for r in train])
            y = np.concatenate([r["tasks"][task].y for r in train])
            g = np.concatenate([np.asarray(r["tasks"][task].groups) + 1000 * k for k, r in enumerate(train)])
            est = fit_decoder(F, y, "classification", g)
            row[m] = score("classification", test["tasks"][task].y, est.predict(feats(test, m)))
        out.append(row)
    return out


def _real(recordings: Path | None, enc: _Encoders) -> list[dict[str, Any]]:
    """Windows holding an annotation vs not, per real recording with annotations (blocked 3-fold CV)."""
    from bfm_stim.decoding import cross_validate
    from bfm_stim.handcrafted import handcrafted_features
    from loops.recording_input import prepare_recording

    rows: list[dict[str, Any]] = []
    from loops.bench.real import DEFAULT_RECORDINGS

    folder = recordings or DEFAULT_RECORDINGS
    if not folder.is_dir():
        return rows
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".vhdr", ".edf", ".bdf", ".xdf", ".fif"):
            continue
        try:
            rec = prepare_recording(path).recording
        except Exception as err:  # noqa: BLE001 - report what could not be used and go on
            rows.append({"file": path.name, "skipped": f"{type(err).__name__}: {str(err).splitlines()[0]}"})
            continue
        events = [ev for ev in rec.events if len(ev.description) < 64]
        win = 0.5
        n = int(rec.duration_s / win)
        if not events or n < 9:
            rows.append({"file": path.name, "skipped": f"{len(events)} annotations, {n} windows of {win} s: "
                         "no labels to decode (>= 1 annotation and >= 9 windows needed)"})
            continue
        w = int(round(win * rec.fs))
        X = rec.data[:, : n * w].reshape(rec.n_channels, n, w).transpose(1, 0, 2)
        y = np.array([int(any(i * win <= ev.onset_s < (i + 1) * win for ev in events)) for i in range(n)])
        pos = rec.positions  # NaN where unknown: the model reads them as such
        e = enc.embedding(enc.model, rec.data, rec.fs, pos)
        res = {"file": path.name, "fs": rec.fs, "channels": rec.n_channels, "windows": n, "window_s": win,
               "positive_windows": int(y.sum()), "labels": "window holds an annotation (1) or not (0)"}
        if len(np.unique(y)) < 2 or min(np.bincount(y)) < 3:
            res["skipped"] = "fewer than 3 windows of a class"
            rows.append(res)
            continue
        for name, F in (("latent", enc.latents(enc.model, X, rec.fs, pos, e)),
                        ("handcrafted", handcrafted_features(X, rec.fs))):
            try:
                res[name] = cross_validate(F, y, "classification", n_folds=3)["score"]
            except Exception as err:  # noqa: BLE001
                res[name] = f"not scored: {err}"
        rows.append(res)
    return rows


def _median(v: list[float]) -> float | None:
    v = [x for x in v if x is not None and np.isfinite(x)]
    return float(np.median(v)) if v else None


def run_decode_bench(*, n_patients: int = 6, quick: bool = False, checkpoint: str | Path | None = None,
                     recordings: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the benchmark (module docstring); returns the JSON-ready result with its ``targets`` block."""
    from tqdm import tqdm

    from loops.offline import repo_path
    from simulators.registry import cohort

    if quick:
        n_patients = 2
    t0 = time.perf_counter()
    enc = _Encoders(checkpoint)
    seeds = cohort("eval", n_patients)
    rows: dict[str, list[dict[str, Any]]] = {f: [] for f in FAMILIES}
    bar = tqdm(total=len(FAMILIES) * len(seeds), desc="decode bench", unit="patient", disable=not progress)
    for fam in FAMILIES:
        for seed in seeds:
            p, tasks, rest = simulate_tasks(fam, seed)
            feats = _patient_features(enc, p, tasks, rest)
            rows[fam].append({"seed": seed, "tasks": tasks, "feats": feats, "within": _within(feats, tasks)})
            bar.update(1)
    bar.close()
    within = {f: [{"seed": r["seed"], **r["within"]} for r in rows[f]] for f in FAMILIES}
    cross = {f: {t: _cross(rows[f], t) for t in CROSS_TASKS} for f in FAMILIES}
    summary: dict[str, Any] = {}
    for f in FAMILIES:
        summary[f] = {}
        for t in TASKS:
            have = [r for r in within[f] if t in r]
            if not have:
                summary[f][t] = "not applicable (the family has no such input)"
                continue
            summary[f][t] = {fs: {s: _median([r[t][fs][s] for r in have]) for s in map(str, LABEL_S)}
                             for fs in ("latent", "random_init", "handcrafted")}
        for t in CROSS_TASKS:
            summary[f][f"{t}_cross_patient"] = {m: _median([r[m] for r in cross[f][t]]) for m in CROSS_METHODS}
    # targets (median patient, both families pooled per task)
    adv, ratio = {}, {}
    for t in ("state", "stim", "flicker"):
        d = [r[t]["latent"]["30"] - r[t]["handcrafted"]["30"] for f in FAMILIES for r in within[f] if t in r]
        adv[t] = _median(d)
    for t in CROSS_TASKS:
        vals = []
        for f in FAMILIES:
            wmap = {r["seed"]: r[t]["latent"]["120"] for r in within[f]}
            for r in cross[f][t]:
                best = max(r["latent_model"], r["latent_model_rest"], r["latent_generic_rest"])
                vals.append(best / wmap[r["seed"]] if wmap[r["seed"]] else None)
        ratio[t] = _median(vals)
    targets = {
        "latent_beats_handcrafted_30s": {
            "measured": adv, "target": ">= 0.1 balanced accuracy (latent - hand-crafted, 30 s of labels, median patient)",
            "met": bool(adv and all(v is not None and v >= 0.1 for v in adv.values()))},
        "cross_patient_aligned_vs_within_2min": {
            "measured": ratio, "target": ">= 0.9 (best aligned cross-patient / within-patient at 2 min of labels, median)",
            "met": bool(ratio and all(v is not None and v >= 0.9 for v in ratio.values()))},
    }
    real = _real(Path(recordings) if recordings else None, enc)
    return {"quick": quick, "families": list(FAMILIES), "seeds": seeds, "tasks": list(TASKS), "label_s": list(LABEL_S),
            "block_s": BLOCK_S, "window_s": WINDOW_S, "blocks": N_BLOCKS, "rest_s": REST_S,
            "checkpoint": repo_path(enc.info.get("path", "")) if enc.info.get("path") else None,
            "checkpoint_digest": enc.info.get("digest"),
            "decoder": "StandardScaler + LogisticRegression(class_weight=balanced) / Ridge, C or alpha by inner blocked "
                       "3-fold CV on the training windows; outer blocked 5-fold CV, labels = the first windows of the "
                       "training folds (balanced blocks)",
            "metric": "balanced accuracy (classification), R2 (hidden)",
            "summary": summary, "targets": targets, "within": within, "cross_patient": cross, "real": real,
            "wall_s": time.perf_counter() - t0}
