"""Pretraining of the brain foundation model: corpus building and the (data-parallel) training driver.

``main(config_path, out_dir)`` builds the corpus once (sharded ``.npz`` + ``manifest.json`` under
``out_dir/corpus``, reused when its config is unchanged), trains with progress bars, checkpoints
every ``checkpoint_every`` steps to ``out_dir/checkpoints/last.pt`` and resumes from it with
``resume=True``. Under ``torchrun`` it runs DDP (gloo on CPU, NCCL on GPU); rank 0 builds the
corpus and writes checkpoints.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ConfigError, ValidationError
from bfm_stim.model.bfm import BrainFoundationModel
from bfm_stim.model.checkpoint import load_checkpoint, save_checkpoint
from bfm_stim.model.config import ModelConfig
from bfm_stim.model.data import CorpusStream, load_manifest
from bfm_stim.model.losses import LossConfig, LossModule
from bfm_stim.stim_features import FEATURE_NAMES
from loops.config_files import config_path
from loops.pretrain_corpus import CorpusConfig, write_corpus

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["TrainConfig", "PretrainConfig", "load_config", "build_corpus", "weights_digest", "main"]

log = get_logger("pretrain")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        steps: optimiser steps in total (a resumed run continues up to this).
        batch_size: windows per step and rank.
        ctx_patches: context patches per window (the horizon is the model's ``horizon_patches``).
        lr: peak learning rate (linear warm-up over ``warmup`` steps, cosine decay to 10%).
        weight_decay: AdamW weight decay.
        grad_clip: gradient-norm clip.
        checkpoint_every: steps between checkpoints.
        seed: random seed (model init, data stream).
        threads: torch intra-op threads (0: leave torch's default).
        shards_in_memory: corpus shards mixed at a time per rank.
        max_channels: random channel subset per training window (0: all channels).
        train_only: names of the model's submodules to train (e.g. ``["biomarker"]``); every other
            weight is frozen and runs in eval mode (no dropout). With ``--init-from`` a checkpoint
            without these modules (a trunk trained before they existed) is accepted: they start fresh.
    """

    steps: int = 200
    batch_size: int = 16
    ctx_patches: int = 12
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 20
    grad_clip: float = 1.0
    checkpoint_every: int = 50
    seed: int = 0
    threads: int = 0
    shards_in_memory: int = 2
    max_channels: int = 0
    train_only: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "train_only", tuple(self.train_only))
        if not all(isinstance(n, str) and n for n in self.train_only):
            raise ValidationError("train.train_only", list(self.train_only), "a list of submodule names, e.g. ['biomarker']")
        for name in ("steps", "batch_size", "ctx_patches", "checkpoint_every", "shards_in_memory"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValidationError(f"train.{name}", v, "a positive integer")
        if not isinstance(self.max_channels, int) or self.max_channels < 0:
            raise ValidationError("train.max_channels", self.max_channels, "an integer >= 0 (0: all channels)")
        if not (self.lr > 0) or self.weight_decay < 0 or self.grad_clip <= 0 or self.warmup < 0 or self.threads < 0:
            raise ConfigError(f"train: need lr > 0, weight_decay >= 0, grad_clip > 0, warmup >= 0, threads >= 0; "
                              f"got {self.lr=}, {self.weight_decay=}, {self.grad_clip=}, {self.warmup=}, {self.threads=}")


def _build(cls: type, d: Mapping[str, Any], section: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"[{section}] has unknown keys {unknown}; allowed: {sorted(known)}")
    return cls(**d)


@dataclass(frozen=True)
class PretrainConfig:
    """A whole pretraining run: ``[corpus]``, ``[model]``, ``[loss]``, ``[train]`` of the TOML file."""

    corpus: CorpusConfig
    model: ModelConfig
    loss: LossConfig
    train: TrainConfig

    def __post_init__(self) -> None:
        need = self.train.ctx_patches + self.model.horizon_patches
        if need > self.model.max_patches:
            raise ConfigError(f"train.ctx_patches + model.horizon_patches = {need} exceeds model.max_patches="
                              f"{self.model.max_patches}")

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict
        return {"corpus": asdict(self.corpus), "model": self.model.to_dict(), "loss": self.loss.to_dict(),
                "train": asdict(self.train)}


def load_config(path: str | Path) -> PretrainConfig:
    """Parse a pretraining TOML file, or a bundled config by name (``"pretrain-small"``); the stimulus
    feature width comes from :mod:`bfm_stim.stim_features`."""
    path = config_path(path, what="pretraining config")
    if not path.is_file():
        raise ConfigError(f"no pretraining config at {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from err
    extra = sorted(set(raw) - {"corpus", "model", "loss", "train"})
    if extra:
        raise ConfigError(f"{path}: unknown sections {extra}; allowed: corpus, model, loss, train")
    corpus = _build(CorpusConfig, raw.get("corpus", {}), "corpus")
    mdict = dict(raw.get("model", {}))
    mdict.update(n_stim_features=len(FEATURE_NAMES), stim_feature_names=tuple(FEATURE_NAMES),
                 n_train_patients=corpus.n_patients)
    model = ModelConfig.from_dict(mdict)
    return PretrainConfig(corpus, model, LossConfig.from_dict(raw.get("loss", {})),
                          _build(TrainConfig, raw.get("train", {}), "train"))


def build_corpus(cfg: PretrainConfig, corpus_dir: Path, *, progress: bool = True) -> Path:
    """Generate (or reuse, when the stored config matches) the sharded corpus; returns its manifest."""
    from dataclasses import asdict
    # JSON round trip so tuples compare equal to the lists read back from the manifest
    info = json.loads(json.dumps({"fs": cfg.model.fs, "feature_names": list(FEATURE_NAMES),
                                  "corpus_config": asdict(cfg.corpus)}))
    try:
        m = load_manifest(corpus_dir)
        if m.get("corpus_config") == info["corpus_config"] and m.get("fs") == cfg.model.fs \
                and m.get("feature_names") == info["feature_names"]:
            log.info("reusing corpus at %s (%d patients)", corpus_dir, m["n_patients"])
            return corpus_dir / "manifest.json"
    except Exception:  # absent or stale: rebuild
        pass
    window = (cfg.train.ctx_patches + cfg.model.horizon_patches) * cfg.model.patch_len  # shortest usable series
    return write_corpus(cfg.corpus, corpus_dir, fs=cfg.model.fs, info=info, progress=progress, min_samples=window)


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer, in order: equal digests mean identical weights."""
    import hashlib
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _trainable(model: torch.nn.Module, only: tuple[str, ...]) -> list[torch.nn.Parameter]:
    """The parameters to optimise: all, or those of the named submodules (the rest frozen)."""
    if not only:
        return list(model.parameters())
    names = dict(model.named_children())
    missing = [n for n in only if names.get(n) is None]
    if missing:
        raise ConfigError(f"train.train_only names {missing}, which this model does not have; "
                          f"its submodules: {sorted(k for k, v in names.items() if v is not None)}")
    for p in model.parameters():
        p.requires_grad_(False)
    out = [p for n in only for p in names[n].parameters()]
    for p in out:
        p.requires_grad_(True)
    return out


def _init_partial(model: torch.nn.Module, path: str | Path, only: tuple[str, ...], dev: torch.device) -> dict[str, Any]:
    """Load ``path``'s weights into ``model``, which may add the submodules ``only`` (trained fresh).

    The source's model config must equal ``model``'s except for the settings of those submodules.

    Raises:
        ConfigError: the configs differ elsewhere, or the checkpoint has weights the model lacks.
    """
    src_model, info = load_checkpoint(path, map_location=dev)
    a, b = src_model.config.to_dict(), model.config.to_dict()
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and not any(k.startswith(n) for n in only))
    if diff:
        raise ConfigError(f"--init-from {path}: model config differs in {diff} (only the settings of {list(only)} may)")
    res = model.load_state_dict(src_model.state_dict(), strict=False)
    bad = [k for k in res.missing_keys if not any(k.startswith(n + ".") for n in only)]
    if bad or res.unexpected_keys:
        raise ConfigError(f"--init-from {path}: weights missing {bad[:5]} / unexpected {list(res.unexpected_keys)[:5]}")
    return info


def _lr(step: int, t: TrainConfig, time_frac: float = 0.0) -> float:
    """Warm-up, then cosine decay to 10 % over the steps (or over the time budget, whichever runs out first)."""
    if step < t.warmup:
        return t.lr * (step + 1) / t.warmup
    frac = max((step - t.warmup) / max(1, t.steps - t.warmup), time_frac)
    return t.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def _prefetch(it: Any, depth: int = 6) -> Any:
    """Draw batches in a background thread (numpy releases the GIL), so sampling overlaps the step.

    Closing the generator (``.close()``, or its collection) stops and joins the thread: a daemon
    thread still drawing batches in numpy/torch code when the interpreter exits can be killed
    mid-call, which aborts the process ("terminate called without an active exception").
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for b in it:
                if not put(b):
                    return
        except BaseException as err:  # noqa: BLE001 - re-raised in the consumer
            put(err)

    th = threading.Thread(target=work, name="pretrain-prefetch", daemon=True)
    th.start()
    try:
        while True:
            b = q.get()
            if isinstance(b, BaseException):
                raise b
            yield b
    finally:
        stop.set()
        th.join(timeout=60.0)


def _dist_setup() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    dev = torch.device("cpu")
    if world > 1:
        import torch.distributed as dist
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            from datetime import timedelta
            dist.init_process_group(backend, timeout=timedelta(seconds=120))
        if torch.cuda.is_available():
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(dev)
    elif torch.cuda.is_available():
        dev = torch.device("cuda")
    return rank, world, dev


def main(config_path: str | Path | PretrainConfig, out_dir: str | Path, *, resume: bool = False, steps: int | None = None,
         progress: bool = True, minutes: float | None = None, batch_size: int | None = None,
         init_from: str | Path | None = None, lr: float | None = None) -> dict[str, Any]:
    """Pretrain the BFM.

    Args:
        config_path: TOML file with ``[corpus]``, ``[model]``, ``[loss]``, ``[train]``, or a parsed
            :class:`PretrainConfig` (e.g. an objective ablation's variant of one).
        out_dir: run directory (``corpus/``, ``checkpoints/last.pt``, ``model.pt``, ``summary.json``).
        resume: continue from ``out_dir/checkpoints/last.pt``.
        steps: override ``train.steps``.
        progress: show tqdm progress (rank 0 only).
        minutes: training time budget (corpus excluded); the learning-rate schedule follows the
            elapsed fraction of it and training stops when it is spent (for a fixed-length run
            on faster hardware; the summary records the steps done).
        batch_size: override ``train.batch_size``.
        init_from: start from this checkpoint's weights (same model config; fresh optimiser and
            schedule from step 0): continued pretraining, e.g. a warm restart at a lower ``lr`` on
            the same corpus, or on a corpus with your own recordings added. The checkpoint
            records the source's path and weight digest.
        lr: override ``train.lr`` (the peak of the schedule).

    Returns: summary dict (steps, final losses, parameter count, checkpoint path, windows/s).
    """
    cfg = config_path if isinstance(config_path, PretrainConfig) else load_config(config_path)
    over = {k: v for k, v in (("steps", steps), ("batch_size", batch_size), ("lr", lr)) if v is not None}
    if resume and init_from is not None:
        raise ConfigError("pretrain: --resume continues this run's own checkpoint; --init-from starts a new run "
                          "from another one. Give one of them.")
    t = _build(TrainConfig, {**cfg.to_dict()["train"], **over}, "train") if over else cfg.train
    out = Path(out_dir)
    rank, world, dev = _dist_setup()
    if t.threads:
        torch.set_num_threads(t.threads)
    import torch.distributed as dist
    corpus_dir = Path(cfg.corpus.dir) if Path(cfg.corpus.dir).is_absolute() else out / cfg.corpus.dir
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        build_corpus(cfg, corpus_dir, progress=progress)
    if world > 1:
        dist.barrier()

    torch.manual_seed(t.seed)
    model = BrainFoundationModel(cfg.model).to(dev)
    trainable = _trainable(model, t.train_only)
    opt = torch.optim.AdamW(trainable, lr=t.lr, weight_decay=t.weight_decay)
    ckpt_path = out / "checkpoints" / "last.pt"
    start = 0
    init_info: dict[str, Any] | None = None  # where a continued pretraining run started (--init-from)
    prior_command: str | None = None
    if resume:
        _, info = load_checkpoint(ckpt_path, model=model, optimizer=opt, map_location=dev)
        start = int(info["step"])
        init_info = info["extra"].get("init_from")
        prior_command = info["extra"].get("command")
        rec = info["extra"].get("pretrain_config", {}).get("train")
        if rec:  # the run's own settings (its --lr, --steps, --batch-size), unless given again now
            t = _build(TrainConfig, {**rec, **over}, "train")
        log.info("resumed from %s at step %d", ckpt_path, start)
    if init_from is not None and t.train_only:
        src = _init_partial(model, init_from, t.train_only, dev)
        init_info = {"path": str(init_from), "step": int(src["step"]), "digest": weights_digest(model),
                     "command": src["extra"].get("command"), "train_only": list(t.train_only)}
        log.info("initialised from %s (its step %d); training only %s", init_from, init_info["step"], list(t.train_only))
    elif init_from is not None:
        _, src = load_checkpoint(init_from, model=model, map_location=dev)  # config mismatch: CheckpointError
        init_info = {"path": str(init_from), "step": int(src["step"]), "digest": weights_digest(model),
                     "command": src["extra"].get("command")}
        log.info("initialised from %s (its step %d)", init_from, init_info["step"])
    # A continued run draws the windows and masks that follow its source's, not a replay of them.
    offset = start + (int(init_info["step"]) if init_info else 0)
    unit = LossModule(model, cfg.loss)
    net: torch.nn.Module = unit
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        net = DDP(unit, find_unused_parameters=True)  # also broadcasts rank 0's weights
    stream = _prefetch(CorpusStream(corpus_dir, batch_size=t.batch_size, n_ctx=t.ctx_patches,
                               n_hor=cfg.model.horizon_patches, patch_len=cfg.model.patch_len,
                               seed=t.seed + 7919 * offset, rank=rank, world=world,
                               shards_in_memory=t.shards_in_memory, max_channels=t.max_channels,
                               batches_per_visit=20 * max(1, t.batch_size // 16),
                               forecaster_lags=cfg.model.ar_lags, fs=cfg.model.fs),
                     depth=64 if dev.type == "cuda" else 6)  # a GPU outruns shard loading: buffer more
    gen = torch.Generator(device=dev).manual_seed(t.seed * 1000 + rank + 31 * offset)
    from tqdm import tqdm
    bar = tqdm(total=t.steps, initial=start, desc=f"pretrain (x{world})", unit="step",
               disable=not progress or rank != 0, dynamic_ncols=True)
    losses: dict[str, float] = {}
    t0, n_win = time.perf_counter(), 0
    from dataclasses import asdict
    source = "(a config object; see pretrain_config)" if isinstance(config_path, PretrainConfig) else config_path
    command = " ".join([f"bfm-stim pretrain --config {source}"]
                       + [f"--{k} {v:g}" if isinstance(v, float) else f"--{k} {v}"
                          for k, v in (("steps", steps), ("minutes", minutes), ("batch-size", batch_size),
                                       ("lr", lr), ("init-from", init_from)) if v is not None])
    if prior_command:  # a resumed run is still the run its first command started
        command = prior_command
    extra = {"pretrain_config": {**cfg.to_dict(), "train": asdict(t)}, "world": world, "minutes": minutes,
             "device": str(dev), "command": command, "init_from": init_info}  # the train section as run (command-line overrides applied)
    model.train(not t.train_only)  # a frozen trunk runs as at inference (no dropout)
    budget = None if minutes is None else 60.0 * float(minutes)
    done = start
    try:
        for step in range(start, t.steps):
            elapsed = time.perf_counter() - t0
            if budget is not None and elapsed >= budget:
                break
            for g in opt.param_groups:
                g["lr"] = _lr(step, t, 0.0 if budget is None else elapsed / budget)
            batch = next(stream).to(dev)
            out_l = net(batch, gen)
            opt.zero_grad(set_to_none=True)
            out_l["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            opt.step()
            n_win += t.batch_size * world
            losses = {k: float(v.detach()) for k, v in out_l.items()}
            rate = n_win / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(loss=f"{losses['total']:.3f}", win_s=f"{rate:.0f}")
            bar.update(1)
            if not math.isfinite(losses["total"]):
                raise ConfigError(f"training diverged at step {step}: losses {losses}; lower train.lr")
            done = step + 1
            if rank == 0 and done % t.checkpoint_every == 0:  # a log line per checkpoint (tqdm may be off)
                eta = (budget - (time.perf_counter() - t0)) if budget is not None else (t.steps - done) * (
                    (time.perf_counter() - t0) / max(done - start, 1))
                log.info("step %d: %s | %.0f windows/s | ETA %.0f s", done,
                         " ".join(f"{k} {v:.3f}" for k, v in losses.items()), rate, max(eta, 0.0))
            if rank == 0 and ((step + 1) % t.checkpoint_every == 0 or step + 1 == t.steps):
                save_checkpoint(ckpt_path, model, optimizer=opt, step=step + 1, extra=extra)
    finally:
        stream.close()  # stop and join the batch thread before anything else ends
    bar.close()
    if rank == 0 and done % t.checkpoint_every and done != t.steps:
        save_checkpoint(ckpt_path, model, optimizer=opt, step=done, extra=extra)
    extra["train_seconds"] = time.perf_counter() - t0
    extra["steps_done"] = done
    summary = {"steps": done, "steps_planned": t.steps, "train_seconds": extra["train_seconds"],
               "batch_size": t.batch_size, "device": str(dev), "start_step": start, "losses": losses, "n_parameters": model.n_parameters(),
               "world": world, "windows_per_s": n_win / max(time.perf_counter() - t0, 1e-9),
               "checkpoint": str(ckpt_path)}
    digest = weights_digest(model)
    if world > 1:
        digests: list[Any] = [None] * world
        dist.all_gather_object(digests, digest)
        summary["rank_digests"] = digests  # identical when the ranks stayed in sync
    else:
        summary["rank_digests"] = [digest]
    if rank == 0:
        save_checkpoint(out / "model.pt", model, step=done, extra=extra)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if world > 1:
        dist.barrier()
    return summary


if __name__ == "__main__":  # torchrun entry: python -m loops.pretrain CONFIG OUT [--resume] [--steps N]
    import argparse
    ap = argparse.ArgumentParser(description="Pretrain the bfm-stim brain foundation model")
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--init-from", default=None)
    ap.add_argument("--lr", type=float, default=None)
    a = ap.parse_args()
    res = main(a.config, a.out, resume=a.resume, steps=a.steps, progress=not a.no_progress, minutes=a.minutes,
               batch_size=a.batch_size, init_from=a.init_from, lr=a.lr)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(res, indent=1))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import logging

        import torch.distributed as dist
        dist.destroy_process_group()
        # Everything is written and the group is gone; leave without the interpreter's teardown. In
        # about 1 run in 30 on 2 CPU cores a rank aborted there ("terminate called without an active
        # exception", SIGABRT with no Python frame left: a C++ thread still joinable as static
        # objects are destroyed), and torchrun then reports the whole run as failed.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(0)
