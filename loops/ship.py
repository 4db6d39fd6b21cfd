"""Package a pretraining run as the shipped checkpoint (``bfm_stim/checkpoints/default/``).

``ship(run_dir)`` loads ``run_dir/model.pt``, fits the conformal calibration scales on held-out
pretraining-cohort patients that the corpus never used, and writes ``model.pt`` (weights, config,
calibration; no optimizer state), ``config.json`` (the model config the loading code must accept)
and ``MODEL_CARD.md`` (command, seeds, data, objectives, timings and benchmark figures).

    python -m loops.ship runs/pretrain-small [--bench bench/surrogate.json]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bfm_stim._logging import get_logger
from bfm_stim.model.adapt import infer_embedding
from bfm_stim.model.checkpoint import load_checkpoint, save_checkpoint
from bfm_stim.surrogate import Surrogate

__all__ = ["ship", "calibrate_on_cohort", "DEFAULT_DIR"]

log = get_logger("ship")
DEFAULT_DIR = Path(__file__).resolve().parents[1] / "bfm_stim" / "checkpoints" / "default"


def calibrate_on_cohort(model: Any, *, n_patients: int = 4, offset: int = 5000, windows: int = 16,
                        rest_s: float = 20.0, probe_s: float = 40.0) -> dict[str, float]:
    """Conformal scales from held-out pretraining-cohort patients (seeds from ``offset``, unused by the corpus).

    The per-patient scales are pooled by their median.
    """
    import simulators

    from bfm_stim.model.linear import fit_forecaster
    from loops.adapt import calibrate_surrogate
    from loops.pretrain_corpus import CorpusConfig, iter_corpus

    cfg = model.config
    fams = [pid for pid, _ in simulators.list_patients()]
    scales: dict[str, list[float]] = {"signal_scale": [], "latent_scale": []}
    if cfg.response_hidden:
        scales["response_scale"] = []
    if cfg.biomarker_hidden:
        scales["biomarker_scale"] = []
    cc = CorpusConfig(source="simulators", n_patients=n_patients, rest_s=rest_s, n_trials=int(probe_s // 4), seed=offset)
    seeds = simulators.cohort("pretrain", n_patients, offset=offset)
    for i, s in enumerate(_series_for(cc, seeds, fams, cfg.fs)):
        emb = infer_embedding(model, s.data[:, : s.rest_samples], s.positions)
        fc = (fit_forecaster(s.data[:, : s.rest_samples], lags=cfg.ar_lags, horizon=cfg.horizon_patches * cfg.patch_len)
              if cfg.ar_lags else None)  # from the rest only: the probes are the calibration data
        sur = Surrogate(model, positions=s.positions, patient=emb, forecaster=fc)
        cal = calibrate_surrogate(sur, s, start=s.rest_samples, n=windows, seed=i)
        for k in scales:
            scales[k].append(cal[k])
    return {k: float(np.median(v)) for k, v in scales.items()} | {"level": 0.9, "n_patients": n_patients}


def _series_for(cc: Any, seeds: list[int], fams: list[str], fs: float):
    """Corpus-style series (rest, then probes) for explicit seeds."""
    import simulators

    from loops import pretrain_corpus as pc

    orig = simulators.cohort
    try:  # reuse the corpus generator with these seeds
        simulators.cohort = lambda name, n, offset=0: list(seeds) + orig(name, max(n - len(seeds), 0), offset=seeds[-1] + 1)
        yield from pc._simulated(cc, fs)
    finally:
        simulators.cohort = orig


def _commands(extra: dict[str, Any]) -> list[str]:
    """The pretraining command(s) behind a checkpoint: a continued run (``--init-from``) is two stages."""
    cmd = extra.get("command", "bfm-stim pretrain --config pretrain-small")
    init = extra.get("init_from")
    if not init:
        return [cmd + " --out runs/pretrain-small"]
    stage1 = "runs/pretrain-stage1"
    return [f"{init.get('command') or '(source command not recorded)'} --out {stage1}",
            cmd.replace(f"--init-from {init['path']}", f"--init-from {stage1}/model.pt") + " --out runs/pretrain-small",
            f"# stage 1 ended at step {init['step']}, weights sha256 {init['digest']}"]


def _portable(record: Any) -> Any:
    """A run's record (dicts, lists, strings) with every absolute path, alone or as a word of a command,
    as :func:`loops.offline.repo_path` gives it: the shipped files hold no path of the machine the run
    was made on."""
    from loops.offline import repo_path

    if isinstance(record, dict):
        return {k: _portable(v) for k, v in record.items()}
    if isinstance(record, (list, tuple)):
        return type(record)(_portable(v) for v in record)
    if isinstance(record, str):  # words split on single spaces, so the rest of the text stays as it was
        return " ".join(repo_path(w) if len(Path(w).parts) > 2 and Path(w).is_absolute() else w
                        for w in record.split(" "))
    return record


def _card(info: dict[str, Any], cal: dict[str, float], bench: dict[str, Any] | None, timings: dict[str, Any]) -> str:
    pc = info["extra"].get("pretrain_config", {})
    lines = ["# bfm-stim default checkpoint", "",
             "Brain foundation model (BFM) pretrained on simulated patients; loaded by "
             "`Surrogate.from_checkpoint()` (no path) with `torch.load(weights_only=True)`.", "",
             "## Architecture", "",
             f"{info.get('n_parameters', '')} Forecast of the horizon = read-out of the rolled-out latents "
             f"+ the stimulus-locked head ({info['model_config'].get('n_harmonics', 0)} harmonics of the stimulation "
             "rate plus onset step and transients, low rank in time x space, spatial pattern from each channel's "
             "offset to the contact) + the per-patient linear forecaster of ongoing activity "
             f"({info['model_config'].get('ar_lags', 0)} lags, closed form from the patient's stimulation-off data, "
             "refitted for every new patient)."
             + (f" Biomarker heads ({len(info['model_config'].get('biomarker_bands') or [])} bands: "
                + ", ".join(f"{lo:g}-{hi:g} Hz" for lo, hi in info["model_config"].get("biomarker_bands") or [])
                + ") predict the log band power of the response window per channel, which band-power objectives "
                "read (`bfm_stim/model/biomarker.py`)."
                if info["model_config"].get("biomarker_hidden") else "")
             + " Model config: `" + json.dumps(info["model_config"]) + "`", "",
             "## Exact command", "", "```", *_commands(info["extra"]),
             "python -m loops.ship runs/pretrain-small --bench bench/surrogate.json", "```", "",
             f"Device: {info['extra'].get('device', 'cpu')}; training {info['extra'].get('train_seconds', float('nan')):.0f} s. "
             + info["extra"].get("note", ""), "",
             f"Steps trained: {info['step']}. Seeds: corpus seed {pc.get('corpus', {}).get('seed')}, "
             f"training seed {pc.get('train', {}).get('seed')}; patients `simulators.cohort('pretrain', n)` "
             "(seeds 0..), cycling through every registered family; seeds the simulator cannot build are skipped.", "",
             "## Data", "", f"Corpus: `{json.dumps(pc.get('corpus', {}))}`", "",
             "## Objectives", "", f"`{json.dumps(pc.get('loss', {}))}`", "",
             "## Training", "", f"`{json.dumps(pc.get('train', {}))}`", "",
             "## Timings", "", f"`{json.dumps(timings)}`", "",
             "## Calibration", "", f"Conformal scales (90 %), held-out pretraining-cohort patients: `{json.dumps(cal)}`", ""]
    return "\n".join(lines + (_bench_section(bench) if bench else [])) + "\n"


BENCH_HEADING = "## Benchmark (`bfm-stim bench surrogate`)"


def _trio(per: dict[str, Any], method: str, amount: str) -> str:
    """``"R² 40 ms / 160 ms / stim-effect"`` medians of one method and amount (``—`` where missing)."""
    v = per.get(method, {}).get(amount, {})
    return " / ".join("—" if v.get(k, {}).get("median") is None else f"{v[k]['median']:.2f}"
                      for k in ("forecast_r2_40ms", "forecast_r2_160ms", "stim_effect_r2"))


def _bench_section(bench: dict[str, Any]) -> list[str]:
    """The model card's benchmark section, from ``bfm-stim bench surrogate`` JSON."""
    lines = [BENCH_HEADING, "", f"Config: `{json.dumps(bench.get('config'))}`", "",
             f"Targets: `{json.dumps(bench.get('targets'))}`", "", f"Throughput: `{json.dumps(bench.get('throughput'))}`", "",
             "Missed targets (reported as measured): "
             + (", ".join(k for k, ok in bench.get("targets", {}).get("met", {}).items() if not ok) or "none") + ".", "",
             "Medians over the evaluation patients (the number per cell is in the JSON). `state_oracle` is the ceiling "
             "of every metric: the mean of independent noise continuations of each test trial from the simulator's true "
             "state at onset, the best forecast a model of the observations can make (up to a faint leak of "
             "post-onset data into the contexts by the resampling filter; see `loops.bench.data.state_oracle`).", "",
             "| method | data (s) | R² 40 ms | R² 160 ms | stim-effect R² | held-out stim R² | z→hidden R² | coverage 90 % |",
             "|---|---|---|---|---|---|---|---|"]
    for m, per in bench["results"].items():
        for a, v in per.items():
            f = lambda k: "—" if v[k]["median"] is None else f"{v[k]['median']:.3f}"  # noqa: E731
            lines.append(f"| {m} | {a} | {f('forecast_r2_40ms')} | {f('forecast_r2_160ms')} | {f('stim_effect_r2')} | "
                         f"{f('stim_effect_r2_heldout')} | {f('latent_hidden_r2')} | {f('coverage_90')} |")
    fam = bench.get("results_by_family")
    if fam:
        a = f"{bench['targets']['amount_s']:g}"
        best = bench["targets"]["best_pretrained"]
        lines += ["", f"Per family (medians; R² 40 ms / 160 ms / stim-effect): zero-shot; {best} at {a} s; ceiling (state oracle).", ""]
        for f_, per in fam.items():
            n = per.get("zero_shot", {}).get("0", {}).get("forecast_r2_40ms", {}).get("n")
            lines.append(f"- {f_} ({n} patients): {_trio(per, 'zero_shot', '0')}; {_trio(per, best, a)}; "
                         f"{_trio(per, 'state_oracle', '0')}")
    return lines


def refresh_card_benchmark(dest: str | Path, bench_json: str | Path) -> Path:
    """Replace the benchmark section of ``dest/MODEL_CARD.md`` with ``bench_json``'s figures (weights untouched)."""
    card = Path(dest) / "MODEL_CARD.md"
    text = card.read_text()
    head = text.split(BENCH_HEADING)[0].rstrip("\n") + "\n\n"
    card.write_text(head + "\n".join(_bench_section(json.loads(Path(bench_json).read_text()))) + "\n")
    return card


def ship(run_dir: str | Path, dest: str | Path = DEFAULT_DIR, *, bench_json: str | Path | None = None,
         timings: dict[str, Any] | None = None, calibrate: bool = True) -> Path:
    """Write the shipped checkpoint directory from a pretraining run; returns ``dest``."""
    run = Path(run_dir)
    model, info = load_checkpoint(run / "model.pt")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    old = dest / "model.pt"
    cal = calibrate_on_cohort(model) if calibrate else (
        load_checkpoint(old)[1]["extra"].get("calibration", {}) if old.exists() else {})
    extra = _portable(dict(info["extra"], calibration=cal))
    save_checkpoint(dest / "model.pt", model, step=info["step"], extra=extra)
    (dest / "config.json").write_text(json.dumps(model.config.to_dict(), indent=1) + "\n")
    bench = json.loads(Path(bench_json).read_text()) if bench_json else None
    info = dict(info, extra=extra, n_parameters=f"{model.n_parameters():,} parameters.")
    (dest / "MODEL_CARD.md").write_text(_card(info, cal, bench, timings or {}))
    return dest


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="package a pretraining run as the shipped checkpoint")
    ap.add_argument("run", nargs="?", help="pretraining run directory (not needed with --card-only)")
    ap.add_argument("--card-only", action="store_true",
                    help="only rewrite the model card's benchmark section from --bench (weights untouched)")
    ap.add_argument("--dest", default=str(DEFAULT_DIR))
    ap.add_argument("--bench", default=None)
    ap.add_argument("--timings", default=None, help="JSON dict of measured timings for the model card")
    ap.add_argument("--no-calibrate", action="store_true")
    a = ap.parse_args()
    if a.card_only:
        if not a.bench:
            ap.error("--card-only needs --bench PATH")
        print(refresh_card_benchmark(a.dest, a.bench))
        raise SystemExit(0)
    if not a.run:
        ap.error("give the pretraining run directory (or --card-only --bench PATH)")
    torch.set_num_threads(2)
    ship(a.run, a.dest, bench_json=a.bench, timings=json.loads(a.timings) if a.timings else None,
         calibrate=not a.no_calibrate)
