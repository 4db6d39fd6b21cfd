"""``bfm-stim bench ablation``: what each pretraining objective adds to the foundation model.

The pretraining loss (:mod:`bfm_stim.model.losses`) combines a multi-step forecast (MSE plus a
spectral term), masked modelling (time and whole-channel masks) and cross-patient contrastive
alignment. This benchmark pretrains the same model once per variant of the loss, each with one
objective switched off and everything else equal (corpus, training seed, steps, schedule), then measures
every variant on the surrogate benchmark's 20 evaluation patients (never pretrained on; the
patients of ``bench surrogate``, with this benchmark's own test trials: its patients are simulated
with ``amount_s`` of probes, so the test stimuli drawn after them differ):

- ``full``: the config as it is;
- ``no_masked``: ``loss.masked = false``;
- ``no_contrastive``: ``loss.contrastive = false``;
- ``no_spectral``: ``loss.spectral_weight = 0`` (forecast MSE alone);
- ``full_seed1``: the config as it is with ``train.seed = 1`` (another initialisation, batch order
  and masks on the same corpus): its paired change against ``full`` is the run-to-run training
  noise, the yardstick for the other variants' changes.

The forecast itself is not ablated: without it nothing trains the rollout, the stimulus-locked
head or the read-out that every metric reads. Each variant is scored zero-shot (30 s of rest) and
after embedding/read-in adaptation on 2 min of probes with the surrogate benchmark's setting for
it, on the surrogate benchmark's R² at 40 ms / 160 ms and stimulation-effect R².

The variants train for ``steps`` (default 1500: five runs fit in about 50 min on 2 cores),
fewer than the shipped checkpoint's 5717 GPU steps, so the figures compare objectives at an equal,
short budget; the shipped model's own figures are those of ``bench surrogate``. Each variant is one
training run (seed 0; ``full_seed1`` seed 1): the paired changes separate patient-to-patient noise,
and ``full_seed1`` shows how far one retraining moves them. ``variants`` (``--variants``) runs a
subset, the reference first. Runs are kept under ``runs_dir`` and reused when their recorded config and step
count match (the corpus is built once for all); a change to the training code is not detected,
so delete ``runs_dir`` after one.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ValidationError
from loops.stats import quartiles

__all__ = ["AblationConfig", "FULL", "QUICK", "VARIANTS", "run_ablation", "select_variants", "summarize",
           "variant_config"]

log = get_logger("bench.ablation")
REPO = Path(__file__).resolve().parents[2]
METRICS = ("forecast_r2_40ms", "forecast_r2_160ms", "stim_effect_r2")

# (name, overrides): a bare key is a loss field, ``train.FIELD`` a training setting
VARIANTS: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = (
    ("full", ()),
    ("no_masked", (("masked", False),)),
    ("no_contrastive", (("contrastive", False),)),
    ("no_spectral", (("spectral_weight", 0.0),)),
    ("full_seed1", (("train.seed", 1),)),
)


@dataclass(frozen=True)
class AblationConfig:
    """Size of the ablation; amounts in s.

    Attributes:
        config: the pretraining TOML the variants start from (a bundled config's name, or a path).
        steps: pretraining steps of every variant.
        n_patients: evaluation patients (the surrogate benchmark's first ``n_patients``).
        amount_s: probe data for the adapted score (0: zero-shot only).
        adapt_steps, adapt_lr: embedding adaptation (the surrogate benchmark's setting at 2 min).
        variants: names and loss overrides.
        workers: evaluation processes (one patient each).
        rest_s, cal_s, n_test, hidden_s, batch_size, max_channels, n_cal_windows: as the surrogate benchmark.
    """

    config: str = "pretrain-small"
    steps: int = 1500
    n_patients: int = 20
    amount_s: float = 120.0
    adapt_steps: int = 300
    adapt_lr: float = 3e-4
    variants: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = VARIANTS
    workers: int = 2
    rest_s: float = 30.0
    cal_s: float = 40.0
    n_test: int = 16
    hidden_s: float = 20.0
    batch_size: int = 8
    max_channels: int = 8
    n_cal_windows: int = 16

    def __post_init__(self) -> None:
        for name in ("steps", "n_patients", "adapt_steps", "workers"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValidationError(f"ablation.{name}", v, "an integer >= 1")
        if not (self.amount_s >= 0):
            raise ValidationError("ablation.amount_s", self.amount_s, ">= 0 s of probes (0: zero-shot only)")
        names = [n for n, _ in self.variants]
        if len(set(names)) != len(names) or not names:
            raise ValidationError("ablation.variants", names, "distinct names, at least one")


FULL = AblationConfig()
QUICK = AblationConfig(config="pretrain-tiny", steps=3, n_patients=2, amount_s=10.0, adapt_steps=2,
                       variants=VARIANTS[:2], workers=1, rest_s=8.0, cal_s=8.0, n_test=4, hidden_s=6.0,
                       batch_size=4, n_cal_windows=8)


def variant_config(base: Any, overrides: tuple[tuple[str, Any], ...], corpus_dir: Path) -> Any:
    """``base`` (a :class:`loops.pretrain.PretrainConfig`) with ``overrides`` and a shared corpus folder.

    A bare override key names a loss field, ``train.FIELD`` a training setting (e.g. ``train.seed``).
    """
    loss_known = {f.name for f in dataclasses.fields(base.loss)}
    train_known = {f"train.{f.name}" for f in dataclasses.fields(base.train)}
    loss, train = {}, {}
    for k, v in overrides:
        if k in loss_known:
            loss[k] = v
        elif k in train_known:
            train[k.split(".", 1)[1]] = v
        else:
            raise ValidationError("variant override", k, f"a loss field {sorted(loss_known)} or train.FIELD")
    return dataclasses.replace(base, loss=dataclasses.replace(base.loss, **loss),
                               train=dataclasses.replace(base.train, **train),
                               corpus=dataclasses.replace(base.corpus, dir=str(corpus_dir.resolve())))


def select_variants(names: str | list[str]) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """The :data:`VARIANTS` named (comma-separated or a list), the reference ``full`` first."""
    want = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    known = dict(VARIANTS)
    bad = [n for n in want if n not in known]
    if bad or not want:
        raise ValidationError("--variants", ",".join(want), f"names from {', '.join(known)}")
    if want[0] != VARIANTS[0][0]:
        raise ValidationError("--variants", ",".join(want), f"the reference {VARIANTS[0][0]!r} first")
    return tuple((n, known[n]) for n in dict.fromkeys(want))


def _train(name: str, cfg: Any, run: Path, steps: int, progress: bool) -> dict[str, Any]:
    """Pretrain one variant, or reuse ``run/model.pt`` when it holds this very config and step count."""
    from dataclasses import asdict

    from bfm_stim.model.checkpoint import load_checkpoint
    from loops.pretrain import main as pretrain

    want = {**cfg.to_dict(), "train": asdict(dataclasses.replace(cfg.train, steps=steps))}
    if (run / "model.pt").is_file():
        _, info = load_checkpoint(run / "model.pt")
        same = json.dumps(info["extra"].get("pretrain_config"), sort_keys=True) == json.dumps(want, sort_keys=True)
        if same and info["step"] == steps:  # compared as JSON: the checkpoint holds lists where the config has tuples
            log.info("ablation %s: reusing %s", name, run / "model.pt")
            return {"reused": True, "train_seconds": info["extra"].get("train_seconds"), "final_losses": None}
    summary = pretrain(cfg, run, steps=steps, progress=progress)
    return {"reused": False, "train_seconds": summary["train_seconds"], "final_losses": summary["losses"]}


def _eval_patient(job: dict[str, Any]) -> dict[str, Any]:
    """Zero-shot and adapted metrics of every variant on one evaluation patient."""
    from bfm_stim.model.adapt import adapt, infer_embedding
    from bfm_stim.model.checkpoint import load_checkpoint
    from loops.bench.data import make_eval_patient
    from loops.bench.surrogate import _eval_bfm, _forecaster

    ac: AblationConfig = job["ac"]
    i = job["i"]
    torch.set_num_threads(1)
    models = {name: load_checkpoint(path)[0] for name, path in job["checkpoints"].items()}
    cfg = next(iter(models.values())).config
    ep = make_eval_patient(job["family"], job["seed"], fs=cfg.fs, patch_len=cfg.patch_len,
                           ctx_patches=cfg.max_patches - cfg.horizon_patches, hor_patches=cfg.horizon_patches,
                           rest_s=ac.rest_s, probe_s=ac.amount_s, cal_s=ac.cal_s, n_test=ac.n_test,
                           hidden_s=ac.hidden_s)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for name, model in models.items():
        torch.manual_seed(1000 + i)
        e0 = infer_embedding(model, ep.series(0).data, ep.session.positions)
        zs, _ = _eval_bfm(model, e0, ep, cfg.fs, ac.n_cal_windows, _forecaster(cfg, ep.series(0)))
        rows[name] = {"zero_shot": {k: float(zs[k]) for k in METRICS}}
        if ac.amount_s > 0:
            res = adapt(model, ep.series(ac.amount_s), mode="embedding", steps=ac.adapt_steps, lr=ac.adapt_lr, seed=i,
                        patient_init=e0, batch_size=ac.batch_size, max_channels=ac.max_channels)
            met, _ = _eval_bfm(res.model, res.embedding, ep, cfg.fs, ac.n_cal_windows, res.forecaster)
            rows[name]["embedding"] = {k: float(met[k]) for k in METRICS}
    return {"i": i, "family": job["family"], "seed": job["seed"], "rows": rows}


def run_ablation(quick: bool = False, *, config: AblationConfig | None = None, runs_dir: str | Path = "runs/ablation",
                 progress: bool = True, variants: str | list[str] | None = None) -> dict[str, Any]:
    """Pretrain every variant (or reuse its run), evaluate all on the eval patients; JSON-able results.

    ``variants``: only these (see :func:`select_variants`) instead of the config's.
    """
    import simulators

    from loops.bench.surrogate import FAMILIES
    from loops.config_files import config_path
    from loops.pretrain import load_config

    ac = config or (QUICK if quick else FULL)
    if variants is not None:
        ac = dataclasses.replace(ac, variants=select_variants(variants))
    base_path = config_path(ac.config, what="ablation config", base=REPO)  # a bundled name, or a file
    base = load_config(base_path)
    root = Path(runs_dir)
    # Eval-cohort seeds: disjoint from the pretraining cohort's by construction (simulators.registry.COHORTS).
    seeds = simulators.cohort("eval", ac.n_patients)
    t0 = time.perf_counter()
    training, checkpoints = {}, {}
    prev = torch.get_num_threads()
    try:
        for name, over in ac.variants:
            cfg = variant_config(base, over, root / "corpus")
            training[name] = _train(name, cfg, root / name, ac.steps, progress)
            checkpoints[name] = str(root / name / "model.pt")
    finally:
        torch.set_num_threads(prev)
    t_train = time.perf_counter() - t0
    jobs = [dict(i=i, family=FAMILIES[i % len(FAMILIES)], seed=int(s), ac=ac, checkpoints=checkpoints)
            for i, s in enumerate(seeds)]
    from loops._pool import map_jobs

    parts = map_jobs(_eval_patient, jobs, ac.workers, desc="ablation: eval patients", progress=progress)
    from loops.offline import repo_path

    return {"config": {**dataclasses.asdict(ac), "config": repo_path(base_path)}, "base_config": repo_path(base_path),
            "reference": ac.variants[0][0],
            "patients": [{"i": p["i"], "family": p["family"], "seed": p["seed"]} for p in parts],
            "training": training, **summarize(parts, [n for n, _ in ac.variants]), "per_patient": parts,
            "timing_s": {"train": t_train, "total": time.perf_counter() - t0}}


def summarize(parts: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Per variant and mode, the median and IQR over patients, and the paired change against ``names[0]``.

    ``paired_change_vs_reference``: per patient, the variant's metric minus the reference's on the
    same patient and test trials; median, IQR and ``n_better`` (patients where the variant is higher)
    of ``n``, so a change can be told from patient-to-patient noise.
    """
    modes = list(parts[0]["rows"][names[0]])
    results = {name: {mode: {k: quartiles([p["rows"][name][mode][k] for p in parts]) for k in METRICS} for mode in modes}
               for name in names}
    ref = names[0]
    delta: dict[str, Any] = {}
    for name in names[1:]:
        delta[name] = {}
        for mode in modes:
            delta[name][mode] = {}
            for k in METRICS:
                d = [p["rows"][name][mode][k] - p["rows"][ref][mode][k] for p in parts]
                delta[name][mode][k] = {**quartiles(d), "n_better": int(sum(x > 0 for x in d)), "n": len(d)}
    return {"results": results, "paired_change_vs_reference": delta}
