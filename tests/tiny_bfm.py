"""Test data of the BFM tests, built from the core library alone: synthetic patients and a tiny checkpoint.

Importable as ``tiny_bfm`` from any test module (``tests/`` is on ``sys.path`` as the folder of the
suite's root ``conftest.py``). ``synthetic_series`` draws the same patients as the pretraining
corpus' ``source = "synthetic"`` (damped stochastic oscillators mixed into channels; probes entrain or
suppress them), so core-library tests need no application code; ``train_tiny`` trains the model of
``pretrain-tiny.toml`` for a few steps on eight of them, as ``bfm-stim pretrain`` would (same
optimiser, schedule and losses), and writes ``model.pt``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np

# The [model] section of pretrain-tiny.toml: a ~50k-parameter BFM with every head (seconds on CPU).
TINY_MODEL = dict(fs=250.0, patch_len=25, d_model=32, d_latent=16, d_channel=16, n_virtual=4, d_patient=8,
                  n_layers=1, n_heads=2, n_fourier=8, dyn_hidden=32, n_ensemble=2, max_patches=16,
                  horizon_patches=4, dropout=0.0, ar_lags=50, n_harmonics=3, stim_rank=4, response_hidden=32)
# Its [train] section (8 patients, 8 context patches per window).
TINY_TRAIN = dict(batch_size=8, ctx_patches=8, lr=2e-3, weight_decay=0.01, warmup=2, grad_clip=1.0, seed=0)
# Its [corpus] section: 8 synthetic patients, 8 s of rest and 6 probes each.
TINY_PATIENTS = 8
TINY_CORPUS = dict(rest_s=8.0, n_trials=6, trial_pre_s=0.5, trial_post_s=1.5)


def synthetic_series(n_patients: int, *, seed: int = 0, rest_s: float = 20.0, n_trials: int = 16,
                     trial_pre_s: float = 1.0, trial_post_s: float = 2.0, sensory_frac: float = 0.3,
                     fs: float = 250.0) -> Iterator:
    """Synthetic patients as :class:`~bfm_stim.model.data.PatientSeries` (the corpus' synthetic source).

    The defaults are the corpus config's (``loops.pretrain_corpus.CorpusConfig``); with the same
    settings and seed the series are identical to the corpus'.

    Patient ``i``: family ``i % 2`` (a 20 Hz or 10 Hz oscillator beside a 6 Hz one), pathological when
    ``(i // 2) % 2`` (a three times stronger first oscillator); ``rest_s`` s of rest, then ``n_trials``
    probes of 1 s, each followed by ``trial_pre_s + trial_post_s`` s off. Electrical probes above 80 Hz
    suppress the first oscillator by ``1 / (1 + amplitude_mA)``; sensory ones entrain the second.

    Args:
        n_patients: Patients to draw.
        seed: Seed of everything drawn.
        rest_s, trial_pre_s, trial_post_s: Durations, s.
        n_trials: Probes per patient.
        sensory_frac: Fraction of sensory probes.
        fs: Sampling rate, Hz.
    """
    from scipy.signal import lfilter

    from bfm_stim.model.data import PatientSeries
    from bfm_stim.space import Contact, Stimulus, StimulusSpace
    from bfm_stim.stim_features import features_of

    off = features_of([Stimulus.off()], {})[0].numpy()
    rng = np.random.default_rng(seed)
    for i in range(n_patients):
        fam, patho = i % 2, (i // 2) % 2
        n_ch = int(rng.integers(4, 9))
        pos = rng.normal(0, 0.02, (n_ch, 3))
        f0 = np.array([20.0 if fam == 0 else 10.0, 6.0]) * rng.uniform(0.9, 1.1, 2)
        gain = np.array([1.0 if patho else 0.3, 0.5])
        mix = rng.normal(size=(n_ch, 2))
        contacts = {f"c{k}": Contact(f"c{k}", tuple(float(v) for v in rng.normal(0, 5, 3))) for k in range(4)}
        space = StimulusSpace.electrical(list(contacts.values()))
        segs: list[tuple[object, float]] = [(None, rest_s)]
        for _ in range(n_trials):
            segs += [(_probe(space, rng, rng.random() < sensory_frac, 1.0), 1.0), (None, trial_pre_s + trial_post_s)]
        table, ids, chunks = [np.zeros(len(off), np.float32)], [], []
        zi = np.zeros((2, 1), complex)
        for stim, dur in segs:
            n = int(round(dur * fs))
            drive_f, supp = None, 1.0
            if stim is not None:
                table.append(features_of([stim], contacts)[0].numpy())
                if stim.kind == "electrical":
                    supp = 1.0 / (1.0 + stim.amplitude_ma * (stim.frequency_hz > 80))
                else:
                    drive_f = stim.frequency_hz
            x = np.zeros((2, n))
            for k in range(2):
                pole = 0.98 * np.exp(2j * np.pi * f0[k] / fs)
                amp = gain[k] * (supp if k == 0 else 1.0)
                noise = amp * (rng.normal(size=n) + 1j * rng.normal(size=n))
                y, zi[k] = lfilter([1.0], [1.0, -pole], noise, zi=zi[k])
                x[k] = y.real
            if drive_f is not None:
                x[1] += 2.0 * stim.level * np.sin(2 * np.pi * drive_f * np.arange(n) / fs)
            chunks.append((mix @ x + rng.normal(0, 0.2, (n_ch, n))) * 10.0)
            ids.append(np.full(n, len(table) - 1 if stim is not None else 0, np.int32))
        meta = {"id": f"synthetic-{fam}", "family": f"synthetic-{fam}", "seed": i,
                "regime": "pathological" if patho else "healthy"}
        yield PatientSeries(np.concatenate(chunks, axis=1).astype(np.float32), pos.astype(np.float32),
                            np.concatenate(ids).astype(np.int32), np.stack(table).astype(np.float32),
                            int(rest_s * fs), i, fam * 2 + patho, meta)


def _probe(space, rng: np.random.Generator, sensory: bool, dur: float):
    from bfm_stim.space import Stimulus

    if sensory:
        return Stimulus.sensory(modality=str(rng.choice(["visual_flicker", "auditory_clicks"])),
                                frequency_hz=float(rng.uniform(2.0, 60.0)), level=float(rng.uniform(0.2, 1.0)),
                                duration_s=dur)
    stim = space.from_unit(rng.random((1, space.dim)))[0]
    return space.project_safe(stim.with_(duration_s=dur) if hasattr(stim, "with_") else stim)


def tiny_config():
    """The tiny model's :class:`~bfm_stim.model.ModelConfig` (every stimulus feature, 8 training patients)."""
    from bfm_stim.model import ModelConfig
    from bfm_stim.stim_features import FEATURE_NAMES

    return ModelConfig.from_dict({**TINY_MODEL, "n_stim_features": len(FEATURE_NAMES),
                                  "stim_feature_names": tuple(FEATURE_NAMES), "n_train_patients": TINY_PATIENTS})


def train_tiny(out_dir: str | Path, *, steps: int = 4) -> Path:
    """Train the tiny BFM ``steps`` steps on the synthetic patients; write and return ``out_dir/model.pt``.

    AdamW with a linear warm-up then cosine decay to 10 %, gradient clipping, every loss on
    (forecast, masked, contrastive): the pretraining driver's recipe at ``pretrain-tiny.toml``'s settings.
    """
    import torch

    from bfm_stim.model import BrainFoundationModel, LossConfig, sample_batch, save_checkpoint
    from bfm_stim.model.losses import LossModule

    cfg, t = tiny_config(), TINY_TRAIN
    series = [s.with_forecaster(cfg.ar_lags, cfg.horizon_patches * cfg.patch_len, cfg.fs)
              for s in synthetic_series(TINY_PATIENTS, seed=0, **TINY_CORPUS)]
    torch.manual_seed(t["seed"])
    model = BrainFoundationModel(cfg)
    unit = LossModule(model, LossConfig(forecast=True, masked=True, contrastive=True))
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
    rng, gen = np.random.default_rng([t["seed"], 0]), torch.Generator().manual_seed(t["seed"] * 1000)
    model.train()
    for step in range(steps):
        frac = max(0, step - t["warmup"]) / max(1, steps - t["warmup"])
        lr = t["lr"] * ((step + 1) / t["warmup"] if step < t["warmup"]
                        else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
        for g in opt.param_groups:
            g["lr"] = lr
        batch = sample_batch(series, t["batch_size"], n_ctx=t["ctx_patches"], n_hor=cfg.horizon_patches,
                             patch_len=cfg.patch_len, rng=rng)
        loss = unit(batch, gen)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
        opt.step()
    model.eval()
    return save_checkpoint(Path(out_dir) / "model.pt", model, step=steps, extra={"source": "tests/tiny_bfm.py"})
