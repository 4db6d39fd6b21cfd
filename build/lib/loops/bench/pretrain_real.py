"""Does mixing a lab's real recordings into continued pretraining help? Measured, with and without.

Two stages, so the second can run where mne/mne-bids are not installed (e.g. a GPU machine):

1. :func:`prepare` (needs mne-bids): each real recording is split at ``1 - holdout_frac`` of its
   length; the first part goes into a BIDS dataset (a subject per file) and from there through the
   archive pipeline (:mod:`loops.pretrain_archive`) into corpus shards; the whole recording,
   preprocessed the same way (z-scored with the first part's statistics), is kept for evaluation.
2. :func:`run`: the simulated corpus of the config (built as ``bfm-stim pretrain`` builds it), and
   the same corpus with the real shards appended (what ``build_corpus`` writes for the config with
   ``bids_root`` added; :func:`assemble_with_real`). From the checkpoint, continued pretraining for
   the same steps, learning rate and seeds on each; every shard in memory, so windows are drawn
   uniformly over series (patients and real pieces). Then zero-shot forecast R² at 40/160 ms:
   on the last ``holdout_frac`` of each real recording (forecast targets there only; embedding and
   linear forecaster from the first part), and on simulated evaluation patients
   (:mod:`loops.bench.surrogate`'s zero-shot metric: embedding from 30 s of rest).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ConfigError

__all__ = ["RealBenchConfig", "prepare", "assemble_with_real", "link_sim_corpus", "run"]

log = get_logger("bench.pretrain_real")
RECORDINGS = ("test.vhdr", "test_edf_stim_channel.edf", "test_bdf_stim_channel.bdf")
# how a lab would type the EDF's non-EEG channels in its channels.tsv
EDF_TYPES = {"EOG VEOG_I": "eog", "EOG VEOG_II": "eog", "ECG ECG1": "ecg", "ECG ECG2": "ecg", "DIG DTRIG": "stim",
             "REF_EEG REF_EEG": "misc"}


@dataclass(frozen=True)
class RealBenchConfig:
    """Size of the comparison. Durations in s."""

    steps: int = 300
    lr: float = 3e-4
    batch_size: int = 64
    seeds: tuple[int, ...] = (0,)
    holdout_frac: float = 0.2
    segment_s: float = 3.0
    min_segment_s: float = 2.0
    n_sim_patients: int = 4
    sim_rest_s: float = 30.0
    sim_cal_s: float = 8.0
    sim_n_test: int = 8
    window_step: int = 5  # samples between held-out forecast windows


def _archive_keys(bc: RealBenchConfig, bids_root: str) -> dict[str, Any]:
    return dict(bids_root=bids_root, segment_s=bc.segment_s, min_segment_s=bc.min_segment_s)


def prepare(recordings_dir: str | Path, work: str | Path, config: str | Path, bc: RealBenchConfig) -> Path:
    """Stage 1: the real recordings' training shards and evaluation arrays under ``work/real``."""
    import mne
    from mne_bids import BIDSPath, write_raw_bids

    from loops.archive_sources import list_bids, open_bids
    from loops.pretrain import load_config
    from loops.pretrain_archive import _load, _picks, _Prep
    from loops.pretrain_corpus import write_corpus

    cfg = load_config(config)
    fs = cfg.model.fs
    real = Path(work) / "real"
    shutil.rmtree(real, ignore_errors=True)
    for root, frac in (("bids_train", 1.0 - bc.holdout_frac), ("bids_full", 1.0)):
        for k, name in enumerate(RECORDINGS):
            raw = mne.io.read_raw(Path(recordings_dir) / name, preload=True, verbose="error")
            if name.endswith(".edf"):
                raw.set_channel_types(EDF_TYPES, verbose="error")
            if name.endswith(".vhdr"):
                raw.set_montage("standard_1020", on_missing="ignore", verbose="error")
            raw.info["line_freq"] = 50
            raw.crop(tmax=frac * raw.times[-1])
            with warnings.catch_warnings():  # pybv: "unsupported non-voltage units" of the misc channels
                warnings.simplefilter("ignore", UserWarning)
                write_raw_bids(raw, BIDSPath(subject=f"{k + 1:02d}", task="rest", datatype="eeg", root=real / root),
                               format="BrainVision", allow_preload=True, verbose="error")
    corpus_cfg = dataclasses.replace(cfg.corpus, source="archive", **_archive_keys(bc, str(real / "bids_train")))
    window = (cfg.train.ctx_patches + cfg.model.horizon_patches) * cfg.model.patch_len
    write_corpus(corpus_cfg, real / "corpus", fs=fs, info={"fs": fs}, progress=False, min_samples=window)
    # evaluation arrays: the whole recording through the same preprocessing, z-scored with the first part's stats
    arrays: dict[str, np.ndarray] = {}
    for k, bp in enumerate(list_bids(real / "bids_full", datatypes=["eeg"])):
        src = next(open_bids(bp, stim_patterns=cfg.corpus.exclude_events))
        picks, _ = _picks(src, cfg.corpus.exclude_channels)
        line = cfg.corpus.line_freq_hz or src.line_freq_hz
        notch = tuple(line * j for j in range(1, 64) if line * j < fs / 2 - 1) if line else ()
        prep = _Prep(fs, cfg.corpus.highpass_hz, notch, 1.0)
        x = _load(src, picks, (0, src.n_samples, 0, src.n_samples), prep)
        split = int(round((1.0 - bc.holdout_frac) * x.shape[1]))
        sd = x[:, :split].std(1, keepdims=True)
        live = sd[:, 0] >= 1e-3
        x = (x[live] - x[live, :split].mean(1, keepdims=True)) / sd[live] * cfg.corpus.zscore_uv
        arrays[f"x{k}"] = x.astype(np.float32)
        arrays[f"pos{k}"] = np.asarray(src.positions, np.float32)[picks][live]
        arrays[f"split{k}"] = np.array(split)
        arrays[f"name{k}"] = np.array(RECORDINGS[k])
    np.savez(real / "eval.npz", **arrays)
    return real


def assemble_with_real(sim_dir: Path, real_corpus: Path, out_dir: Path, corpus_config: dict[str, Any]) -> Path:
    """The simulated corpus with the real shards appended, as ``build_corpus`` writes it for ``corpus_config``.

    The simulated patients fill whole shards (n_patients a multiple of patients_per_shard), so a direct
    build writes the same simulated shards followed by the archive's; the manifest records the
    config with ``bids_root``, so :func:`loops.pretrain.build_corpus` reuses this corpus.
    """
    sim = json.loads((sim_dir / "manifest.json").read_text())
    rc = json.loads((real_corpus / "manifest.json").read_text())
    if sim["n_patients"] % corpus_config["patients_per_shard"]:
        raise ConfigError("the simulated patients must fill whole shards for an exact assembly")
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = []
    for sh in sim["shards"]:
        shutil.copyfile(sim_dir / sh["file"], out_dir / sh["file"])
        shards.append(sh)
    for sh in rc["shards"]:
        name = f"shard_{len(shards):05d}.npz"
        shutil.copyfile(real_corpus / sh["file"], out_dir / name)
        shards.append({**sh, "file": name})
    man = {**sim, "corpus_config": json.loads(json.dumps(corpus_config)), "shards": shards,
           "n_patients": sum(len(s["patients"]) for s in shards), "archive": rc["archive"]}
    (out_dir / "manifest.json").write_text(json.dumps(man, indent=1))
    return out_dir / "manifest.json"


@torch.no_grad()
def eval_real(model: Any, eval_npz: Path, bc: RealBenchConfig) -> dict[str, Any]:
    """Zero-shot forecast R² with targets in the held-out last part of each recording."""
    from bfm_stim.model.adapt import infer_embedding
    from bfm_stim.model.data import PatientSeries
    from loops.bench.data import forecast_r2
    from loops.bench.surrogate import _forecaster, _norm, bfm_predict
    from loops.pretrain_corpus import FEATURES_OFF

    cfg = model.config
    ctx_n = (cfg.max_patches - cfg.horizon_patches) * cfg.patch_len
    l40, l160 = int(round(0.04 * cfg.fs)), int(round(0.16 * cfg.fs))
    hor = int(np.ceil(l160 / cfg.patch_len))
    out: dict[str, Any] = {}
    z = np.load(eval_npz)
    for k in range(len([f for f in z.files if f.startswith("x")])):
        x, pos, split = z[f"x{k}"], z[f"pos{k}"], int(z[f"split{k}"])
        rest = x[:, :split]
        emb = infer_embedding(model, rest, pos)
        fc = _forecaster(cfg, PatientSeries(rest, pos, np.zeros(split, np.int32), FEATURES_OFF[None], split))
        th = hor * cfg.patch_len
        t0s = np.arange(max(split, ctx_n), x.shape[1] - th + 1, bc.window_step)  # targets in the held-out part
        ctx = torch.from_numpy(np.stack([x[:, t - ctx_n:t] for t in t0s]))
        fut = torch.from_numpy(np.stack([x[:, t:t + th] for t in t0s]))
        stim = torch.as_tensor(FEATURES_OFF)[None, None].expand(len(t0s), hor, -1)  # no stimulation
        mu, _, _ = bfm_predict(model, emb, pos, ctx, stim, fc)
        fut_n = _norm(ctx, fut)
        out[str(z[f"name{k}"])] = {"forecast_r2_40ms": forecast_r2(fut_n, mu, l40),
                                   "forecast_r2_160ms": forecast_r2(fut_n, mu, l160),
                                   "n_windows": int(len(t0s)), "n_channels": int(x.shape[0]),
                                   "heldout_s": round((x.shape[1] - split) / cfg.fs, 3)}
    for m in ("forecast_r2_40ms", "forecast_r2_160ms"):
        out[f"mean_{m}"] = float(np.mean([v[m] for v in out.values() if isinstance(v, dict)]))
    return out


def _sim_patients(model: Any, bc: RealBenchConfig) -> list[Any]:
    import simulators
    from loops.bench.data import make_eval_patient
    from loops.bench.surrogate import FAMILIES

    cfg = model.config
    seeds = simulators.cohort("eval", bc.n_sim_patients)
    return [make_eval_patient(FAMILIES[i % len(FAMILIES)], int(s), fs=cfg.fs, patch_len=cfg.patch_len,
                              ctx_patches=cfg.max_patches - cfg.horizon_patches, hor_patches=cfg.horizon_patches,
                              rest_s=bc.sim_rest_s, probe_s=0.0, cal_s=bc.sim_cal_s, n_test=bc.sim_n_test,
                              hidden_s=6.0) for i, s in enumerate(seeds)]


def eval_sim(model: Any, eps: list[Any]) -> dict[str, Any]:
    """Zero-shot forecast R² on simulated evaluation patients (loops.bench.surrogate's metric)."""
    from bfm_stim.model.adapt import infer_embedding
    from loops.bench.surrogate import _eval_bfm, _forecaster

    cfg = model.config
    per = []
    for ep in eps:
        torch.manual_seed(0)
        e0 = infer_embedding(model, ep.series(0).data, ep.session.positions)
        met, _ = _eval_bfm(model, e0, ep, cfg.fs, 8, _forecaster(cfg, ep.series(0)))
        per.append({"id": ep.meta.get("id"), "forecast_r2_40ms": met["forecast_r2_40ms"],
                    "forecast_r2_160ms": met["forecast_r2_160ms"]})
    return {"patients": per, **{f"mean_{m}": float(np.mean([p[m] for p in per]))
                                for m in ("forecast_r2_40ms", "forecast_r2_160ms")}}


def link_sim_corpus(src: Path, dst: Path, corpus_config: dict[str, Any], fs: float) -> Path:
    """Reuse a simulated corpus built elsewhere for the same ``[corpus]`` (e.g. another run's ``corpus/``).

    Its shards are linked (or copied) into ``dst`` and its manifest rewritten with ``dst`` as the
    directory, so :func:`loops.pretrain.build_corpus` reuses it; ``src`` is only read.

    Raises:
        ConfigError: ``src`` was built for another ``[corpus]`` (any key but ``dir``) or sampling rate.
    """
    import os

    man = json.loads((src / "manifest.json").read_text())
    want, have = json.loads(json.dumps(corpus_config)), man.get("corpus_config", {})
    diff = sorted(k for k in set(want) | set(have) if k != "dir" and want.get(k) != have.get(k))
    if diff or man.get("fs") != fs:
        raise ConfigError(f"--sim-corpus {src}: built for another corpus (differs in {diff or ['fs']})")
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    for sh in man["shards"]:
        try:
            os.link(src / sh["file"], dst / sh["file"])
        except OSError:
            shutil.copyfile(src / sh["file"], dst / sh["file"])
    man["corpus_config"] = {**man["corpus_config"], "dir": want["dir"]}
    (dst / "manifest.json").write_text(json.dumps(man, indent=1))
    return dst / "manifest.json"


def _load_shard_once(path: str | Path) -> list[Any]:
    """:func:`bfm_stim.model.data.load_shard`'s series, each shard's arrays read once.

    ``load_shard`` reads ``z["data"]`` anew for every patient, and each series keeps a view of its
    own full copy: about 1.5 GB per shard of 16 patients instead of 0.1 GB, so all 15 simulated
    shards in memory (this benchmark's sampling) need about 22 GB. Same values, so the same batches.
    """
    from bfm_stim.model.data import PatientSeries

    with np.load(path) as z:
        a = {k: z[k] for k in z.files}
    return [PatientSeries(a["data"][i, :c, :t], a["positions"][i, :c], a["stim_ids"][i, :t], a["stim_table"][i],
                          int(a["rest_samples"][i]), int(a["patient"][i]), int(a["group"][i]))
            for i, (c, t) in enumerate(zip(a["n_channels"].tolist(), a["n_samples"].tolist()))]


def run(config: str | Path, checkpoint: str | Path, work: str | Path, bc: RealBenchConfig,
        partial: Path | None = None, sim_corpus: str | Path | None = None) -> dict[str, Any]:
    """Stage 2: build, train both variants per seed, evaluate; returns the JSON-able results
    (also written to ``partial`` after each model, so a run cut short keeps what it measured).
    ``sim_corpus``: a simulated corpus already built for the config's ``[corpus]``, reused
    (:func:`link_sim_corpus`) instead of generating it again."""
    from unittest import mock

    with mock.patch("bfm_stim.model.data.load_shard", _load_shard_once):  # every shard in memory: see there
        return _run(config, checkpoint, work, bc, partial, sim_corpus)


def _run(config: str | Path, checkpoint: str | Path, work: str | Path, bc: RealBenchConfig, partial: Path | None,
         sim_corpus: str | Path | None) -> dict[str, Any]:
    from bfm_stim.model.checkpoint import load_checkpoint
    from loops.pretrain import build_corpus, load_config, main

    t0 = time.perf_counter()
    work = Path(work)
    real = work / "real"
    base = load_config(config)
    n_shards = 64  # every shard in memory: windows uniform over series
    train = dataclasses.replace(base.train, shards_in_memory=n_shards)
    sim_dir, with_dir = (work / "corpus_sim").resolve(), (work / "corpus_with").resolve()
    cfg_without = dataclasses.replace(base, train=train, corpus=dataclasses.replace(base.corpus, dir=str(sim_dir)))
    with_corpus = dataclasses.replace(base.corpus, dir=str(with_dir), **_archive_keys(bc, "real/bids_train"))
    cfg_with = dataclasses.replace(cfg_without, corpus=with_corpus)
    if sim_corpus is not None:
        link_sim_corpus(Path(sim_corpus), sim_dir, dataclasses.asdict(cfg_without.corpus), base.model.fs)
    build_corpus(cfg_without, sim_dir, progress=False)
    t_corpus = time.perf_counter() - t0
    assemble_with_real(sim_dir, real / "corpus", with_dir, dataclasses.asdict(with_corpus))
    results: dict[str, Any] = {"models": {}}
    model0, _ = load_checkpoint(checkpoint)
    eps = _sim_patients(model0, bc)
    results["models"]["start_checkpoint"] = {"real": eval_real(model0, real / "eval.npz", bc),
                                             "sim": eval_sim(model0, eps)}
    for seed in bc.seeds:
        for name, cfg in (("without_real", cfg_without), ("with_real", cfg_with)):
            cfg_s = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))
            out = work / f"run_{name}_s{seed}"
            shutil.rmtree(out, ignore_errors=True)
            summ = main(cfg_s, out, steps=bc.steps, batch_size=bc.batch_size, lr=bc.lr, init_from=checkpoint,
                        progress=False)
            model, _ = load_checkpoint(out / "model.pt")
            results["models"][f"{name}_seed{seed}"] = {
                "train": {k: summ[k] for k in ("steps", "train_seconds", "device", "losses", "windows_per_s")},
                "real": eval_real(model, real / "eval.npz", bc), "sim": eval_sim(model, eps)}
            log.info("%s seed %d done (%.0f s so far)", name, seed, time.perf_counter() - t0)
            if partial is not None:
                partial.write_text(json.dumps({**results, "partial": True}, indent=1, default=str))
    man = json.loads((with_dir / "manifest.json").read_text())
    real_series = sum(1 for sh in man["shards"] for p in sh["patients"] if p.get("source") == "archive")
    results["corpus"] = {"simulated_patients": man["n_patients"] - real_series, "real_series": real_series,
                         "real_share_of_series": real_series / man["n_patients"],
                         "archive": _portable_archive(man["archive"]),
                         "build_s": t_corpus}
    results["timing_s"] = time.perf_counter() - t0
    return results


def _portable_archive(arc: dict[str, Any]) -> dict[str, Any]:
    """The corpus manifest's archive report with every file as :func:`loops.offline.repo_path` gives it
    (the recordings sit in ``--work``: no path of this machine in the benchmark JSON)."""
    from loops.offline import repo_path

    def fix(row: dict[str, Any]) -> dict[str, Any]:
        if not row.get("file"):
            return row
        name = repo_path(row["file"])
        return {**row, "file": name, **({"reason": str(row["reason"]).replace(str(row["file"]), name)}
                                         if "reason" in row else {})}

    return {**arc, "files": [fix(r) for r in arc.get("files", [])], "skipped": [fix(r) for r in arc.get("skipped", [])]}


def _means(res: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for where in ("real", "sim"):
        for m in ("forecast_r2_40ms", "forecast_r2_160ms"):
            for var in ("without_real", "with_real"):
                vals = [v[where][f"mean_{m}"] for k, v in res["models"].items() if k.startswith(var)]
                out[f"{where}_{m}_{var}"] = float(np.mean(vals)) if vals else None
            out[f"{where}_{m}_start"] = res["models"]["start_checkpoint"][where][f"mean_{m}"]
    return out


if __name__ == "__main__":  # python -m loops.bench.pretrain_real {prepare|run} ...
    import argparse

    from bfm_stim._logging import log_to_stderr

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["prepare", "run"])
    ap.add_argument("--config", default="pretrain-small")
    ap.add_argument("--checkpoint", default="bfm_stim/checkpoints/default/model.pt")
    ap.add_argument("--recordings", default="../shared/data/recordings")
    ap.add_argument("--work", default=".bench_work")
    ap.add_argument("--out", default="bench/pretrain_real.json")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--sim-patients", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--sim-corpus", default=None,
                    help="reuse this simulated corpus (built for the config's [corpus]) instead of building it")
    a = ap.parse_args()
    log_to_stderr("INFO")
    bc = RealBenchConfig(steps=a.steps, seeds=tuple(a.seeds), n_sim_patients=a.sim_patients, batch_size=a.batch_size)
    if a.stage == "prepare":
        print(prepare(a.recordings, a.work, a.config, bc))
    else:
        res = run(a.config, a.checkpoint, a.work, bc, partial=Path(a.out).with_suffix(".partial.json"),
                  sim_corpus=a.sim_corpus)
        from loops.offline import file_digest, repo_path

        res = {"config": dataclasses.asdict(bc), "pretrain_config": repo_path(a.config),
               "checkpoint": repo_path(a.checkpoint),
               "checkpoint_digest": file_digest(Path(a.checkpoint)), "summary": _means(res), **res}
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1, default=str) + "\n")
        print(json.dumps(res["summary"], indent=1))
