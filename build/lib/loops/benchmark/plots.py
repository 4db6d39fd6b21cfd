"""The report's figures (PNG, matplotlib Agg): regret curves with bootstrap bands, ECDF, win rates, safety."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["plot_regret", "plot_ecdf", "plot_win_rate", "plot_safety"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(opts: Sequence[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(opts) <= 10 else "tab20"]
    return {o: cmap(i % cmap.N) for i, o in enumerate(opts)}


def plot_regret(bands: dict[str, dict[str, dict[str, list[float]]]], thresholds: Sequence[float], path: Path) -> Path:
    """One panel per family: median gap-normalized regret of the recommendation per trial, bootstrap band.

    ``bands[family][optimizer]`` = :func:`loops.benchmark.metrics.bootstrap_band` output.
    """
    plt = _plt()
    fams = list(bands)
    opts = list(dict.fromkeys(o for f in fams for o in bands[f]))
    col = _colors(opts)
    fig, axes = plt.subplots(1, len(fams), figsize=(5.2 * len(fams), 4), squeeze=False, sharey=True)
    for ax, fam in zip(axes[0], fams):
        for o, b in bands[fam].items():
            m = np.maximum(np.asarray(b["median"], float), 1e-3)
            x = np.arange(1, len(m) + 1)
            ax.plot(x, m, color=col[o], label=o, lw=1.5)
            ax.fill_between(x, np.maximum(np.asarray(b["lo"], float), 1e-3), np.maximum(np.asarray(b["hi"], float), 1e-3),
                            color=col[o], alpha=0.15, lw=0)
        for t in thresholds:
            ax.axhline(t, color="0.6", ls=":", lw=0.8)
        ax.set(yscale="log", xlabel="trial", title=fam)
    axes[0, 0].set_ylabel("regret (c - c_opt)/(c_off - c_opt), median, 95% CI")
    axes[0, -1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_ecdf(curves: dict[str, list[float]], budget: int, thresholds: Sequence[float], path: Path) -> Path:
    """ECDF of trials to target pooled over (patient, seed, threshold); the budget marked."""
    plt = _plt()
    col = _colors(list(curves))
    fig, ax = plt.subplots(figsize=(6, 4))
    for o, y in curves.items():
        ax.step(np.arange(1, len(y) + 1), y, where="post", color=col[o], label=o)
    ax.axvline(budget, color="k", ls="--", lw=1)
    ax.text(budget, 0.02, " budget", fontsize=8, ha="right", rotation=90)
    ax.set(xscale="log", ylim=(0, 1), xlabel="trials", ylabel="fraction of (run, target) pairs solved",
           title=f"ECDF, targets {', '.join(f'{t:g}' for t in thresholds)}")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_win_rate(win: dict[str, Any], path: Path) -> Path:
    """Heatmap: row beats column on this fraction of (patient, seed) pairs."""
    plt = _plt()
    opts = win["optimizers"]
    M = np.array([[np.nan if win["matrix"][a][b] is None else win["matrix"][a][b] for b in opts] for a in opts])
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(opts), 0.8 + 0.5 * len(opts)))
    im = ax.imshow(M, vmin=0, vmax=1, cmap="RdBu")
    for i in range(len(opts)):
        for j in range(len(opts)):
            if np.isfinite(M[i, j]):
                ax.text(j, i, f"{M[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(opts)), opts, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(opts)), opts, fontsize=8)
    ax.set_title("win rate (row beats column)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_safety(summary: dict[str, Any], path: Path) -> Path:
    """Side-effect trials and hard violations per optimizer; median seconds per ask."""
    plt = _plt()
    opts = list(summary)
    x = np.arange(len(opts))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    a1.bar(x - 0.2, [summary[o]["side_effect_trials_total"] for o in opts], 0.4, label="side-effect trials")
    a1.bar(x + 0.2, [summary[o]["hard_violations"] for o in opts], 0.4, label="hard violations", color="C3")
    a1.set_xticks(x, opts, rotation=45, ha="right", fontsize=8)
    a1.set(ylabel="trials (all runs)")
    a1.legend(fontsize=7)
    a2.bar(x, [max(summary[o]["s_per_ask_median"], 1e-5) for o in opts], color="C2")
    a2.set_xticks(x, opts, rotation=45, ha="right", fontsize=8)
    a2.set(yscale="log", ylabel="seconds per ask (median)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
