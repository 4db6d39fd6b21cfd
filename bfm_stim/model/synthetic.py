"""Synthetic patients for pretraining smoke runs and tests: damped stochastic oscillators in channels.

The pretraining corpus' ``source = "synthetic"`` and the test suite's tiny checkpoint both draw their
patients here, so the two never drift apart. Not a neural-mass model: the simulated patient families
live in :mod:`simulators`.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from scipy.signal import lfilter

from bfm_stim.model.data import PatientSeries
from bfm_stim.space import StimulusSpace
from bfm_stim.stimulus import Contact, Stimulus
from bfm_stim.stim_features import features_of

__all__ = ["synthetic_series", "random_probe"]


def random_probe(space: StimulusSpace | None, rng: np.random.Generator, sensory: bool, dur: float) -> Stimulus:
    """A random safe probe of ``dur`` s: a sensory train, or an electrical one drawn uniformly in ``space``.

    Electrical draws are projected onto the safe set (``space.project_safe``); without a space the
    probe is sensory.
    """
    if sensory or space is None:
        return Stimulus.sensory(modality=str(rng.choice(["visual_flicker", "auditory_clicks"])),
                                frequency_hz=float(rng.uniform(2.0, 60.0)), level=float(rng.uniform(0.2, 1.0)),
                                duration_s=dur)
    stim = space.from_unit(rng.random((1, space.dim)))[0]
    return space.project_safe(stim.with_(duration_s=dur) if hasattr(stim, "with_") else stim)


def synthetic_series(n_patients: int, *, seed: int = 0, rest_s: float = 20.0, n_trials: int = 16,
                     trial_pre_s: float = 1.0, trial_post_s: float = 2.0, sensory_frac: float = 0.3,
                     fs: float = 250.0) -> Iterator[PatientSeries]:
    """Synthetic patients as :class:`~bfm_stim.model.data.PatientSeries` (the corpus' synthetic source).

    The defaults are those of the pretraining corpus config (``[corpus] source = "synthetic"``).

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
            segs += [(random_probe(space, rng, rng.random() < sensory_frac, 1.0), 1.0), (None, trial_pre_s + trial_post_s)]
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
