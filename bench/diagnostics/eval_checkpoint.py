"""A checkpoint on the adapt-tuning validation patients: zero-shot and the benchmark's 2-min settings.

Backs the continued-pretraining comparison (``bench/diagnostics/continued_pretraining.json``,
``two_min_probes_8_validation_patients``): continuing the shipped weights for 6477 more steps scored
0.61 / 0.48 / 0.66 fine-tuned (R² 40 ms / 160 ms / stim-effect; shipped 0.61 / 0.47 / 0.66) and
0.62 / 0.45 / 0.61 embedding-adapted (shipped 0.60 / 0.46 / 0.63, the rows of
``bench/adapt_tuning.json``), so it was not shipped. Rerun from the repository root::

    bfm-stim pretrain --config pretrain-small --init-from bfm_stim/checkpoints/default/model.pt \\
        --lr 5e-4 --steps 1000000 --minutes 40 --out runs/cont
    python bench/diagnostics/eval_checkpoint.py runs/cont/model.pt continued.json

(The committed run replayed its source's data and mask stream from the start; ``--init-from`` now
continues it instead, so a rerun trains on different windows.)

The 8 validation patients and 2 min of probes of ``bfm-stim bench adapt-tuning``, with only the
surrogate benchmark's two pretrained settings (fine-tuning 300 steps at 1e-4, embedding adaptation
300 steps at 3e-4), unanchored as when the figure was measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="a checkpoint on the adapt-tuning validation patients (2 min of probes)")
    ap.add_argument("checkpoint", help="checkpoint to score")
    ap.add_argument("out", help="JSON file to write (the layout of `bfm-stim bench adapt-tuning`)")
    a = ap.parse_args(argv)

    from loops.bench.adapt_tuning import FULL, run_adapt_tuning

    tc = dataclasses.replace(FULL, grids=(("pretrained_finetune", ((300, 1e-4),)),
                                          ("pretrained_embedding", ((300, 3e-4),))))
    res = run_adapt_tuning(checkpoint=a.checkpoint, config=tc, progress=False)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    for m, d in res["medians"].items():
        for k, v in d.items():
            print(m, k, {kk: round(vv, 3) for kk, vv in v.items()})
    print("seconds", res["timing_s"])


if __name__ == "__main__":
    main()
