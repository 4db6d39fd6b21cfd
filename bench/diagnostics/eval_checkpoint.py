"""Validation-patient comparison of a checkpoint: zero-shot, and the bench's 2-min picks.

    .venv/bin/python notes/eval_checkpoint.py CHECKPOINT OUT.json

The 8 validation patients and 2 min of probes of `bfm-stim bench adapt-tuning`, with only the
surrogate benchmark's two pretrained settings (fine-tune 300@1e-4, embedding 300@3e-4).
"""
import dataclasses, json, sys
from loops.bench.adapt_tuning import FULL, run_adapt_tuning
if __name__ == "__main__":
    ck, out = sys.argv[1], sys.argv[2]
    tc = dataclasses.replace(FULL, grids=(("pretrained_finetune", ((300, 1e-4),)), ("pretrained_embedding", ((300, 3e-4),))))
    res = run_adapt_tuning(checkpoint=ck, config=tc, progress=False)
    json.dump(res, open(out, "w"), indent=1)
    for m, d in res["medians"].items():
        for k, v in d.items():
            print(m, k, {kk: round(vv, 3) for kk, vv in v.items()})
    print("seconds", res["timing_s"])
