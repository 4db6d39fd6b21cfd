"""Zero-shot forecast metrics of a checkpoint on pretraining-cohort patients and on validation patients.

Backs two figures: the continued-pretraining comparison and the check that the model does not
overfit its pretraining patients (``bench/diagnostics/continued_pretraining.json``: zero-shot on the
corpus's first 8 patients, simulated afresh, 0.57 / 0.41 / 0.62 against 0.63 / 0.49 / 0.64 on
8 new ones), and the CPU reproduction of the shipped recipe
(``bench/diagnostics/cpu_reproduction.json``: 16 validation patients). Rerun from the repository
root, e.g. for the shipped checkpoint on 16 validation patients::

    python bench/diagnostics/diag_zero_shot.py bfm_stim/checkpoints/default/model.pt validation \\
        zero_shot.json --n-val 16

The pretraining patients are the corpus's first 8 (same family rotation and seeds, skipping seeds
the simulator cannot build), simulated afresh with the benchmark's protocol; the validation patients
are the adapt-tuning sweep's (evaluation-cohort seeds after the surrogate benchmark's). Metrics:
R² at 40 ms and 160 ms and stimulation-effect R², from 30 s of rest and no probes.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

METRICS = ("forecast_r2_40ms", "forecast_r2_160ms", "stim_effect_r2")


def pretraining_patients(n: int = 8) -> list[tuple[str, int]]:
    """The corpus's first ``n`` patients: ``(family, seed)``, families in registry order."""
    import simulators

    fams = [pid for pid, _ in simulators.list_patients()]
    out: list[tuple[str, int]] = []
    seeds = iter(simulators.cohort("pretrain", 5 * n))
    for i in range(n):
        fam = fams[i % len(fams)]
        while True:
            s = int(next(seeds))
            try:
                simulators.make(fam, seed=s)
                break
            except Exception:  # the corpus skips the seeds a family cannot build; so does this
                pass
        out.append((fam, s))
    return out


def zero_shot(model: Any, patients: list[tuple[str, int]], label: str) -> dict[str, Any]:
    """Zero-shot metrics of ``model`` on ``patients``: per-patient rows and their medians."""
    import torch

    import simulators
    from bfm_stim.model.adapt import infer_embedding
    from loops.bench.adapt_tuning import FULL as TC
    from loops.bench.data import make_eval_patient
    from loops.bench.surrogate import _eval_bfm, _forecaster

    cfg = model.config
    make = simulators.make
    # make_eval_patient refuses seeds outside the evaluation cohort; the pretraining patients are not in it
    simulators.make = lambda id, seed=0, *, cohort=None, **kw: make(id, seed, **kw)
    try:
        rows = []
        for i, (fam, seed) in enumerate(patients):
            ep = make_eval_patient(fam, seed, fs=cfg.fs, patch_len=cfg.patch_len,
                                   ctx_patches=cfg.max_patches - cfg.horizon_patches,
                                   hor_patches=cfg.horizon_patches, rest_s=TC.rest_s, probe_s=0.0, cal_s=TC.cal_s,
                                   n_test=TC.n_test, hidden_s=TC.hidden_s)
            torch.manual_seed(1000 + i)
            e0 = infer_embedding(model, ep.series(0).data, ep.session.positions)
            m, _ = _eval_bfm(model, e0, ep, cfg.fs, TC.n_cal_windows, _forecaster(cfg, ep.series(0)))
            rows.append({k: float(m[k]) for k in METRICS} | {"family": fam, "seed": seed})
            print(label, rows[-1], flush=True)
    finally:
        simulators.make = make
    return {"rows": rows, "median": {k: float(np.median([r[k] for r in rows])) for k in METRICS}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="zero-shot metrics on pretraining-cohort and validation patients")
    ap.add_argument("checkpoint", nargs="?", default=None, help="checkpoint to score (default: the shipped one)")
    ap.add_argument("which", nargs="?", default="both", choices=("pretrain", "validation", "both"),
                    help="patients to score (default both)")
    ap.add_argument("out", nargs="?", default="diag.json", help="JSON file to write (default diag.json)")
    ap.add_argument("--n-val", type=int, default=8, help="validation patients (default 8; 16 in cpu_reproduction.json)")
    a = ap.parse_args(argv)

    import torch

    from bfm_stim.model.checkpoint import load_checkpoint
    from bfm_stim.surrogate import default_checkpoint
    from loops.bench.adapt_tuning import validation_seeds
    from loops.bench.surrogate import FAMILIES

    torch.set_num_threads(2)
    model, _ = load_checkpoint(a.checkpoint or default_checkpoint())
    groups = {"pretrain": pretraining_patients,
              "validation": lambda: [(FAMILIES[(21 + k) % len(FAMILIES)], s)
                                     for k, s in enumerate(validation_seeds(a.n_val))]}
    out = {}
    for name, patients in groups.items():
        if a.which in ("both", name):
            out[name] = zero_shot(model, patients(), name)
            print(name, "MEDIAN", out[name]["median"], flush=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
