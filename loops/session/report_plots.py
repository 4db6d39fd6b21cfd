"""The figures of the session report (matplotlib, Agg); each returns a figure or ``None`` when the
session holds nothing to show. :mod:`loops.session.report` lays them out.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from loops.session.store import TrialView  # noqa: E402

__all__ = ["cost_figure", "trust_figure", "latent_figure", "spectra_figure", "parameters_figure", "timeline_figure",
           "continuous_figure", "COLORS"]

COLORS = {"completed": "#1f77b4", "best": "#2ca02c", "interrupted": "#ff7f0e", "rejected": "#d62728",
          "sent": "#7f7f7f", "fault": "#9467bd", "stop": "#8c564b", "target": "#d62728"}
plt.rcParams.update({"font.size": 10, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
                     "grid.alpha": 0.3, "legend.frameon": False, "figure.dpi": 100})


def _cost(v: TrialView) -> float | None:
    ok = v.status == "completed" and isinstance(v.cost, (int, float)) and math.isfinite(v.cost)
    return float(v.cost) if ok else None


def cost_figure(views: Sequence[TrialView]) -> Figure | None:
    """Cost per completed trial with the best so far; interrupted and rejected trials marked on a rug."""
    done = [(v.trial, c) for v in views if (c := _cost(v)) is not None]
    if not views:
        return None
    fig, ax = plt.subplots(figsize=(11, 3.8), layout="constrained")
    if done:
        k, c = map(np.asarray, zip(*done))
        ax.plot(k, c, "o", color=COLORS["completed"], ms=4, alpha=0.8, label="cost (completed trial)")
        ax.step(k, np.minimum.accumulate(c), where="post", color=COLORS["best"], lw=2, label="best so far")
        probes = [v.trial for v in views if v.probe and _cost(v) is not None]
        if probes:
            pc = [c[list(k).index(p)] for p in probes]
            ax.plot(probes, pc, "s", mfc="none", color="k", ms=7, label="probe")
        lo, hi = float(np.min(c)), float(np.max(c))
    else:
        lo, hi = 0.0, 1.0
    pad = 0.08 * (hi - lo or 1.0)
    rug = hi + pad
    for status, marker in (("interrupted", "v"), ("rejected", "x"), ("sent", "v")):
        ks = [v.trial for v in views if v.status == status]
        if ks:
            label = status if status != "sent" else "sent, never finished"
            ax.plot(ks, [rug] * len(ks), marker, color=COLORS[status], ms=8, mew=2, ls="none", label=label)
    ax.set_ylim(lo - pad, hi + 2.5 * pad)
    ax.set_xlabel("trial")
    ax.set_ylabel("cost")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def trust_figure(views: Sequence[TrialView]) -> Figure | None:
    """The surrogate method's trust in its model after each completed trial (``outcome`` ``trust``), its
    weight in the proposals and who led each proposal; ``None`` without a model (or another optimizer)."""
    from loops.model_trust import draw_trust

    recs = [{"trial": v.trial, **v.extra} for v in views if _cost(v) is not None]
    fig, ax = plt.subplots(figsize=(11, 3.2), layout="constrained")
    if not draw_trust(ax, recs):
        plt.close(fig)
        return None
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def latent_figure(views: Sequence[TrialView], target: Sequence[float] | None) -> Figure | None:
    """2-D PCA of the trial latents (outcome ``latent``) with the target, and the distance to it."""
    pts = [(v.trial, np.asarray(v.extra["latent"], float)) for v in views
           if v.status == "completed" and isinstance(v.extra.get("latent"), list)]
    pts = [(k, z) for k, z in pts if z.ndim == 1 and z.size >= 1 and np.isfinite(z).all()]
    if len(pts) < 2 or len({z.size for _, z in pts}) != 1:
        return None
    ks = np.array([k for k, _ in pts])
    Z = np.stack([z for _, z in pts])
    tgt = None if target is None else np.asarray(target, float)
    if tgt is not None and (tgt.shape != (Z.shape[1],) or not np.isfinite(tgt).all()):
        tgt = None
    both = Z if tgt is None else np.vstack([Z, tgt])
    mean = both.mean(axis=0)
    _, s, vt = np.linalg.svd(both - mean, full_matrices=False)
    comp = vt[:2] if vt.shape[0] >= 2 else np.vstack([vt, np.zeros_like(vt)])
    P = (Z - mean) @ comp.T
    var = s ** 2 / max(float(np.sum(s ** 2)), 1e-300)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained", width_ratios=(1.1, 1))
    many = len(pts) > 30
    ax.plot(P[:, 0], P[:, 1], "-", color="0.75", lw=0.5 if many else 1, alpha=0.35 if many else 1, zorder=1)
    sc = ax.scatter(P[:, 0], P[:, 1], c=ks, cmap="viridis", s=28, zorder=2)
    fig.colorbar(sc, ax=ax, label="trial")
    if tgt is not None:
        pt = (tgt - mean) @ comp.T
        ax.plot(pt[0], pt[1], "*", color=COLORS["target"], ms=18, mec="k", zorder=3, label="target")
        ax.legend(loc="best")
        dist = np.linalg.norm(Z - tgt, axis=1)
        ax2.plot(ks, dist, "o-", color=COLORS["completed"], ms=3 if many else 4, lw=0.5 if many else 1.2,
                 alpha=0.7 if many else 1)
        ax2.step(ks, np.minimum.accumulate(dist), where="post", color=COLORS["best"], lw=2, label="closest so far")
        ax2.set_ylabel("‖z − target‖")
        ax2.legend(loc="best")
    else:
        ax2.plot(ks, np.linalg.norm(Z - Z[0], axis=1), "o-", ms=4)
        ax2.set_ylabel("‖z − z(first trial)‖ (no target latent)")
    ax2.set_xlabel("trial")
    ax2.set_title("Distance in latent space")
    ax.set_xlabel(f"PC1 ({100 * var[0]:.0f} %)")
    ax.set_ylabel(f"PC2 ({100 * var[1]:.0f} %)" if var.size > 1 else "PC2")
    ax.set_title(f"Latent trajectory ({Z.shape[1]}-D, PCA)")
    return fig


def spectra_figure(curves: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], *,
                   band: tuple[float, float] | None = (13.0, 30.0), unit: str = "µV") -> Figure | None:
    """Power spectra ``(label, f (Hz), median PSD, (2, nf) quartiles)`` over channels, log scale."""
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(11, 3.8), layout="constrained")
    palette = ["#4d4d4d", COLORS["completed"], "#e377c2", "#17becf", "#bcbd22"]
    for i, (label, f, med, q) in enumerate(curves):
        col = palette[i % len(palette)]
        ax.semilogy(f, med, color=col, lw=1.8, label=label)
        if i < 2:  # quartile bands of before and after only: more would blur the page
            ax.fill_between(f, q[0], q[1], color=col, alpha=0.15, lw=0)
    if band:
        ax.axvspan(*band, color="0.85", alpha=0.5, lw=0, label=f"{band[0]:g}–{band[1]:g} Hz")
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel(f"PSD ({unit}²/Hz)")
    ax.set_title("median over channels; shaded: quartiles of before and after", fontsize=10, loc="left", color="0.35")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xlim(0, max(float(c[1][-1]) for c in curves))
    return fig


def _log_hz_axis(ax: Any, freqs: Sequence[Any]) -> None:
    """Log frequency axis with plain tick labels (1, 2, 5, 10, 20, … Hz)."""
    from matplotlib.ticker import NullFormatter

    f = [float(x) for x in freqs if isinstance(x, (int, float)) and x > 0]
    ax.set_xscale("log")
    if f:
        lo, hi = min(f), max(f)
        grid = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if hi / lo <= 15 else (1, 3, 10, 30, 100, 300, 1000)
        ticks = [t for t in grid if lo / 1.6 <= t <= hi * 1.6]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())


def parameters_figure(views: Sequence[TrialView]) -> Figure | None:
    """Stimuli explored: amplitude vs frequency per contact (electrical) or level vs rate per
    modality (sensory), coloured by cost; rejected and interrupted trials as open markers."""
    stims = [v for v in views if v.stimulus.get("kind") in ("electrical", "sensory")]
    if not stims:
        return None
    sensory = sum(v.stimulus["kind"] == "sensory" for v in stims) > len(stims) / 2
    kind = "sensory" if sensory else "electrical"
    group_key, y_key = ("modality", "level") if sensory else ("contact", "amplitude_ma")
    stims = [v for v in stims if v.stimulus["kind"] == kind]
    groups = sorted({str(v.stimulus.get(group_key)) for v in stims})
    costs = [c for v in stims if (c := _cost(v)) is not None]
    norm = plt.Normalize(min(costs), max(costs)) if costs else None
    ncol = min(4, len(groups))
    nrow = math.ceil(len(groups) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(11, 2.9 * nrow + 0.6), layout="constrained", squeeze=False,
                             sharex=True, sharey=True)
    sc = None
    for ax, g in zip(axes.flat, groups):
        mine = [v for v in stims if str(v.stimulus.get(group_key)) == g]
        done = [v for v in mine if _cost(v) is not None]
        if done:
            sc = ax.scatter([v.stimulus.get("frequency_hz") for v in done], [v.stimulus.get(y_key) for v in done],
                            c=[_cost(v) for v in done], cmap="viridis_r", norm=norm, s=36, edgecolor="k", lw=0.4)
        for status, marker in (("rejected", "x"), ("interrupted", "v"), ("sent", "v")):
            bad = [v for v in mine if v.status == status]
            if bad:
                ax.scatter([v.stimulus.get("frequency_hz") for v in bad], [v.stimulus.get(y_key) for v in bad],
                           marker=marker, color=COLORS[status], s=50, lw=1.5, label=status if status != "sent" else
                           "never finished", facecolor="none" if marker != "x" else None)
        ax.set_title(f"{group_key} {g}  ({len(mine)} trials)", fontsize=10)
        ax.margins(0.12)
        if not sensory:
            _log_hz_axis(ax, [v.stimulus.get("frequency_hz") for v in stims])
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("rate (Hz)" if sensory else "frequency (Hz)")
    for ax in axes[:, 0]:
        ax.set_ylabel("level" if sensory else "amplitude (mA)")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels))
    if sc is not None:
        fig.colorbar(sc, ax=axes, label="cost (lower is better)", shrink=0.9)
    fig.suptitle("Stimulus parameters explored" + (" (sensory)" if sensory else " (per contact)"))
    return fig


def _compress(gaps: Sequence[tuple[float, float]], t_end: float, *, longer_than: float,
              shown: float) -> tuple[np.ndarray, np.ndarray]:
    """Knots ``(real, shown)`` of a monotone map that shortens gaps longer than ``longer_than`` s to ``shown`` s."""
    real, disp = [0.0], [0.0]
    for a, b in sorted(gaps):
        if b - a > longer_than and a >= real[-1]:
            real += [a, b]
            disp += [disp[-1] + (a - real[-3]), disp[-1] + (a - real[-3]) + shown]
    real.append(max(t_end, real[-1]) + 1e-9)
    disp.append(disp[-1] + real[-1] - real[-2])
    return np.asarray(real), np.asarray(disp)


def timeline_figure(lanes: dict[str, list[tuple[float, float]]], gaps: Sequence[tuple[float, float]],
                    t_end: float) -> Figure | None:
    """Acknowledgement and fault timeline: one lane per kind of event, ``(start, duration)`` in s
    from the session's first sample; stream gaps shaded, long ones (a resumed run) shortened."""
    if not any(lanes.values()):
        return None
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    order = [k for k in ("sent", "applied", "rejected", "interrupted", "stop", "fault", "recovered", "continuous")
             if lanes.get(k)]
    colors = {"sent": COLORS["sent"], "applied": COLORS["completed"], "rejected": COLORS["rejected"],
              "interrupted": COLORS["interrupted"], "stop": COLORS["stop"], "fault": COLORS["fault"],
              "recovered": COLORS["best"], "continuous": "#17becf"}
    long_gap = max(5.0, 0.05 * t_end)
    real, disp = _compress(gaps, t_end, longer_than=long_gap, shown=0.03 * t_end + 1.0)
    fwd = lambda t: np.interp(t, real, disp)  # noqa: E731
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(order) + 1.5), layout="constrained")
    for y, name in enumerate(order):
        spans = lanes[name]
        bars = [(float(fwd(a)), float(fwd(a + d) - fwd(a))) for a, d in spans if d > 0]
        ticks = [float(fwd(a)) for a, d in spans if d <= 0]
        if bars:
            ax.broken_barh(bars, (y - 0.3, 0.6), color=colors[name], alpha=0.85)
        if ticks:
            ax.plot(ticks, [y] * len(ticks), "|", color=colors[name], ms=14, mew=1.6)
    for a, b in gaps:
        ax.axvspan(fwd(a), fwd(b), color="0.6", alpha=0.25, lw=0)
        if b - a > long_gap:
            ax.text((fwd(a) + fwd(b)) / 2, len(order) - 0.45, f"{b - a:.0f} s\ngap", ha="center", va="bottom",
                    fontsize=8, color="0.3")
    ax.set_xlim(0, float(fwd(max(t_end, 1e-3))))
    shortened = [(disp[i], disp[i + 1]) for i in range(1, len(real) - 2, 2)]
    ticks = [x for x in MaxNLocator(12).tick_values(0, disp[-1]) if 0 <= x <= disp[-1]
             and not any(a - 0.02 * disp[-1] < x < b + 0.02 * disp[-1] for a, b in shortened)]
    ticks += [b for _, b in shortened]
    ax.set_xticks(sorted(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{np.interp(x, disp, real):.0f}"))
    ax.set_yticks(range(len(order)), [f"{n} ({len(lanes[n])})" for n in order])
    ax.set_ylim(-0.7, len(order) - 0.3)
    ax.invert_yaxis()
    label = "LSL time from the first sample (s)"
    if gaps:
        label += "; grey: stream gaps" + (f", those over {long_gap:.0f} s drawn shorter" if any(
            b - a > long_gap for a, b in gaps) else "")
    ax.set_xlabel(label)
    ax.grid(axis="y", alpha=0)
    return fig


def continuous_figure(segments: dict[int, list[dict[str, Any]]]) -> Figure | None:
    """Per continuous-mode segment: biomarker with on/off thresholds and the amplitude over time."""
    if not segments:
        return None
    keys = sorted(segments)
    fig, axes = plt.subplots(len(keys), 1, figsize=(11, 2.6 * len(keys) + 0.4), layout="constrained", squeeze=False)
    for ax, seg in zip(axes[:, 0], keys):
        recs = segments[seg]
        t = np.array([r["t"] for r in recs], float)
        t = t - t[0]
        bio = np.array([np.nan if r.get("biomarker") is None else r["biomarker"] for r in recs], float)
        amp = np.array([np.nan if r.get("amplitude_ma") is None else r["amplitude_ma"] for r in recs], float)
        ax.plot(t, bio, color="#4d4d4d", lw=1.2, label="biomarker")
        for key, ls, lab in (("threshold_on", "--", "threshold on"), ("threshold_off", ":", "threshold off")):
            th = np.array([np.nan if r.get(key) is None else r[key] for r in recs], float)
            if np.isfinite(th).any():
                ax.plot(t, th, ls, color=COLORS["rejected"] if key == "threshold_on" else COLORS["best"], lw=1.2,
                        label=lab)
        ax.set_ylabel("biomarker")
        ax2 = ax.twinx()
        ax2.step(t, amp, where="post", color=COLORS["completed"], lw=1.8, label="amplitude")
        ax2.set_ylabel("amplitude (mA)", color=COLORS["completed"])
        ax2.grid(False)
        ax2.spines["right"].set_visible(True)
        top = np.nanmax(amp) if np.isfinite(amp).any() else 1.0
        ax2.set_ylim(0, max(top, 1e-3) * 1.15)
        mode = recs[0].get("mode", "?")
        mean_amp = np.nanmean(amp) if np.isfinite(amp).any() else float("nan")
        ax.set_title(f"segment {seg}: {mode}, {t[-1]:.1f} s, mean amplitude {mean_amp:.2f} mA", fontsize=10)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="upper left", bbox_to_anchor=(1.09, 1.0))
    axes[-1, 0].set_xlabel("time from segment start (s)")
    return fig
