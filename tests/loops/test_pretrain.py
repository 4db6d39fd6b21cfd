"""Pretraining driver: tiny run, checkpoint/resume, DDP on two CPU processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bfm_stim.exceptions import CheckpointError, ConfigError
from bfm_stim.model import load_checkpoint, load_manifest
from bfm_stim.surrogate import default_checkpoint
from loops.pretrain import load_config, main, weights_digest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "loops" / "configs" / "pretrain-tiny.toml"


def _initial_model():
    """The model the driver starts from: seeded with ``train.seed`` before it is built."""
    from bfm_stim.model import BrainFoundationModel

    cfg = load_config(TINY)
    torch.manual_seed(cfg.train.seed)
    return BrainFoundationModel(cfg.model)


def _relative_change(model, start) -> float:
    """||w - w0|| / ||w0|| over every parameter."""
    w = torch.cat([p.detach().flatten() for p in model.parameters()])
    w0 = torch.cat([p.detach().flatten() for p in start.parameters()])
    return float((w - w0).norm() / w0.norm())


def _corpus_loss(model, corpus, n_batches: int = 6) -> float:
    """Mean total loss of ``model`` on fixed windows of ``corpus`` (seeded stream and masks, eval mode)."""
    from bfm_stim.model import CorpusStream, LossModule

    cfg = load_config(TINY)
    m = cfg.model
    stream = iter(CorpusStream(corpus, batch_size=16, n_ctx=cfg.train.ctx_patches, n_hor=m.horizon_patches,
                               patch_len=m.patch_len, seed=123, forecaster_lags=m.ar_lags, fs=m.fs))
    gen = torch.Generator().manual_seed(0)
    model.eval()
    with torch.no_grad():
        unit = LossModule(model, cfg.loss)
        return sum(float(unit(next(stream), gen)["total"]) for _ in range(n_batches)) / n_batches


def test_tiny_run_writes_corpus_checkpoint_and_resumes(tmp_path):
    out = tmp_path / "run"
    s1 = main(TINY, out, steps=3, progress=False)
    man = load_manifest(out / "corpus")
    assert man["n_patients"] == 8 and len(man["shards"]) == 2
    assert {p["regime"] for sh in man["shards"] for p in sh["patients"]} == {"healthy", "pathological"}
    _, info = load_checkpoint(out / "checkpoints" / "last.pt")
    assert info["step"] == 3 and s1["start_step"] == 0
    s2 = main(TINY, out, resume=True, steps=5, progress=False)
    assert s2["start_step"] == 3
    m, info = load_checkpoint(out / "checkpoints" / "last.pt")
    assert info["step"] == 5 and info["extra"]["pretrain_config"]["model"]["d_model"] == 32
    assert all(torch.isfinite(torch.tensor(v)) for v in s2["losses"].values())
    # five steps moved the weights a little from their seeded start (another init is ~1.1 away) and the
    # loss on fixed windows of the corpus fell (2.47 -> 2.20 when written)
    start = _initial_model()
    assert 1e-3 < _relative_change(m, start) < 0.2
    before, after = _corpus_loss(start, out / "corpus"), _corpus_loss(m, out / "corpus")
    assert after < 0.95 * before, (before, after)


def test_init_from_continues_another_runs_weights(tmp_path):
    src_run = tmp_path / "src"
    main(TINY, src_run, steps=3, progress=False)
    src, src_info = load_checkpoint(src_run / "model.pt")
    # a near-zero learning rate: the continued run must hold the source's weights, not a fresh init
    s = main(TINY, tmp_path / "cont", steps=2, lr=1e-12, init_from=src_run / "model.pt", progress=False)
    assert s["start_step"] == 0 and s["steps"] == 2
    cont, info = load_checkpoint(tmp_path / "cont" / "model.pt")
    for (k, a), b in zip(cont.state_dict().items(), src.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
    init = info["extra"]["init_from"]
    assert init["digest"] == weights_digest(src) and init["step"] == src_info["step"] == 3
    assert "--init-from" in info["extra"]["command"] and "--lr 1e-12" in info["extra"]["command"]
    assert info["extra"]["pretrain_config"]["train"]["lr"] == 1e-12
    from loops.ship import _commands  # the model card's exact commands: both stages
    stage1, stage2, digest = _commands(info["extra"])
    assert stage1.startswith(f"bfm-stim pretrain --config {TINY} --steps 3") and "--init-from" not in stage1
    assert "--init-from runs/pretrain-stage1/model.pt" in stage2 and str(src_run) not in stage2
    assert init["digest"] in digest
    # a resumed continued run keeps its origin, its learning rate and its command
    main(TINY, tmp_path / "cont", resume=True, steps=3, progress=False)
    res = load_checkpoint(tmp_path / "cont" / "model.pt")[1]["extra"]
    assert res["init_from"] == init and res["pretrain_config"]["train"]["lr"] == 1e-12
    assert res["command"] == info["extra"]["command"] and "--init-from runs/pretrain-stage1" in _commands(res)[1]
    # the torchrun entry point (`python -m loops.pretrain`) passes both options on
    r = subprocess.run([sys.executable, "-m", "loops.pretrain", str(TINY), str(tmp_path / "entry"), "--steps", "1",
                        "--init-from", str(src_run / "model.pt"), "--lr", "1e-12", "--no-progress"],
                       cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    entry = load_checkpoint(tmp_path / "entry" / "model.pt")[1]["extra"]
    assert entry["init_from"]["digest"] == init["digest"] and entry["pretrain_config"]["train"]["lr"] == 1e-12
    with pytest.raises(ConfigError, match="--init-from"):
        main(TINY, tmp_path / "cont", resume=True, init_from=src_run / "model.pt", progress=False)
    with pytest.raises(CheckpointError, match="differs"):  # the shipped model has another config
        main(TINY, tmp_path / "cont2", steps=1, init_from=default_checkpoint(), progress=False)


def test_small_config_is_1_to_3_million_parameters():
    from bfm_stim.model import BrainFoundationModel

    cfg = load_config(TINY.with_name("pretrain-small.toml"))
    n = BrainFoundationModel(cfg.model).n_parameters()
    assert 1_000_000 <= n <= 3_000_000, n


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.read_text().replace("[train]", "[train]\nbogus = 1"))
    with pytest.raises(ConfigError, match="bogus"):
        load_config(bad)
    bad.write_text(TINY.read_text().replace("ctx_patches = 8", "ctx_patches = 15"))
    with pytest.raises(ConfigError, match="max_patches"):
        load_config(bad)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(170)
def test_ddp_two_processes_hold_identical_weights(tmp_path):
    # Explicit loopback rendezvous on a free port (no --standalone port races), a rendezvous
    # timeout, one thread per process (2 gloo ranks on 2 shared cores).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
           "MASTER_ADDR": "127.0.0.1", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1"}
    port = _free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-conf=timeout=60,join_timeout=60",
           f"--master-port={port}", "--max-restarts=0",
           "-m", "loops.pretrain", str(TINY), str(tmp_path / "ddp"), "--steps", "3", "--no-progress"]
    env["MASTER_PORT"] = str(port)
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=160)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world"] == 2 and len(summary["rank_digests"]) == 2
    assert summary["rank_digests"][0] == summary["rank_digests"][1]
    # and training moved the weights away from their (seeded, shared) initialisation, by a few steps' worth
    model, info = load_checkpoint(tmp_path / "ddp" / "model.pt")
    assert info["step"] == 3 and weights_digest(model) == summary["rank_digests"][0]
    assert 1e-3 < _relative_change(model, _initial_model()) < 0.2


def test_prefetch_thread_stops_when_the_stream_closes():
    """The batch thread is joined on close, not left drawing batches until the interpreter kills it."""
    import itertools
    import threading

    from loops.pretrain import _prefetch

    before = set(threading.enumerate())
    stream = _prefetch(itertools.count(), depth=2)
    assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
    (worker,) = set(threading.enumerate()) - before
    assert worker.is_alive()
    stream.close()
    assert not worker.is_alive()

    def broken():
        yield 1
        raise OSError("shard unreadable")

    stream = _prefetch(broken())
    assert next(stream) == 1
    with pytest.raises(OSError, match="shard unreadable"):
        next(stream)


def test_train_only_adds_biomarker_heads_to_a_frozen_trunk(tmp_path):
    """A trunk trained without heads, then heads trained on it: every trunk weight stays bit-identical,
    the heads learn (their last layer leaves its zero init), the model card commands name both stages."""
    from dataclasses import replace

    src_run = tmp_path / "trunk"
    main(TINY, src_run, steps=2, progress=False)
    trunk, _ = load_checkpoint(src_run / "model.pt")
    cfg = load_config(TINY)
    heads = replace(cfg, model=replace(cfg.model, biomarker_hidden=16),
                    train=replace(cfg.train, train_only=("biomarker",)))
    main(heads, tmp_path / "heads", steps=3, init_from=src_run / "model.pt", progress=False)
    m, info = load_checkpoint(tmp_path / "heads" / "model.pt")
    got = m.state_dict()
    for k, v in trunk.state_dict().items():
        assert torch.equal(got[k], v), k
    assert m.biomarker is not None and m.biomarker.out[-1].weight.abs().sum() > 0
    assert info["extra"]["init_from"]["train_only"] == ["biomarker"]
    # a config that differs elsewhere than the heads is refused, naming the difference
    other = replace(heads, model=replace(heads.model, d_latent=24))
    with pytest.raises(ConfigError, match="d_latent"):
        main(other, tmp_path / "bad", steps=1, init_from=src_run / "model.pt", progress=False)
    with pytest.raises(ConfigError, match="train_only"):
        main(replace(cfg, train=replace(cfg.train, train_only=("biomarker",))), tmp_path / "bad2", steps=1,
             progress=False)


def test_pretraining_refuses_the_held_out_family():
    """The registry's held-out family is the out-of-distribution test bed: no corpus may contain it."""
    from bfm_stim.exceptions import ValidationError
    from loops.pretrain_corpus import CorpusConfig
    from simulators.registry import held_out_ids

    held = held_out_ids()
    assert held, "one family must be held out of pretraining"
    with pytest.raises(ValidationError, match="held out"):
        CorpusConfig(source="simulators", families=("bg-beta-v0", held[0]))
    CorpusConfig(source="simulators", families=("bg-beta-v0",))
