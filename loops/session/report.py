"""The session report: ``DIR/report/index.html``, rebuilt from the session directory alone.

:func:`build_report` reads ``session.json``, ``trials.jsonl`` (through
:func:`~loops.session.store.read_log` / :func:`~loops.session.store.trial_views`), ``continuous.jsonl``
and the received stream, and writes one self-contained HTML page (its PNGs embedded as base64 and
also saved beside it): a header with the patient, device, target, optimizer, trial counts, the best
stimulus, the charge delivered and the loop's timings; the cost per trial, the latent trajectory
against the target, spectra before and after, the stimulus parameters explored, the command and
fault timeline, continuous-mode segments, and a table of trials. Figures the session has no data
for are left out with a note. With a surrogate method (``guided``, ``gradient``, ``egreedy``) the
model's trust is said too: a header card (the trust at the end and its reason), the one-line
message when the trials contradicted the model, a trust-over-trials figure and a trust column.
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import BfmStimError
from bfm_stim.recording import VOLTAGE_TYPES
from loops.model_trust import NONE, trust_summary, trust_text
from loops.session import report_plots as plots
from loops.session.fif import StreamData, Timeline, load_stream, read_meta
from loops.session.store import CONTINUOUS, LOG, TrialView, read_log, trial_views

__all__ = ["build_report", "session_summary", "trial_charge_uc", "fold_timings", "REPORT_DIR"]

log = get_logger("loops.session.report")

REPORT_DIR = "report"
_AFTER_TRIALS = 5  # the "after" spectrum averages the last this many response windows


def trial_charge_uc(stim: Mapping[str, Any], seconds: float | None = None) -> float:
    """Charge delivered by an electrical train, µC: amplitude (mA) × pulse width (µs) / 1000 per phase,
    × 2 phases when biphasic, × pulses (frequency × duration), as the session's ``charge_uc``.
    ``seconds`` (s) cuts the train short (a stopped trial); 0 for other kinds."""
    if stim.get("kind") != "electrical":
        return 0.0
    try:
        amp, pw, f = float(stim["amplitude_ma"]), float(stim["pulse_width_us"]), float(stim["frequency_hz"])
        dur = float(stim.get("duration_s", 0.0))
    except (KeyError, TypeError, ValueError):
        return 0.0
    if seconds is not None:
        dur = min(dur, max(0.0, seconds))
    return amp * pw / 1000.0 * (2.0 if stim.get("biphasic", True) else 1.0) * f * dur


def fold_timings(records: Sequence[Mapping[str, Any]], views: Sequence[TrialView]) -> None:
    """Merge ``timing`` records (written after a trial's rest) into ``views[*].timing`` in place."""
    by_trial = {v.trial: v for v in views}
    for r in records:
        if r.get("type") == "timing" and r.get("trial") in by_trial:
            by_trial[r["trial"]].timing.update({k: v for k, v in r.items() if k not in ("type", "t", "lsl", "trial")})


def _target(meta: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The target: ``session.json``'s ``target``, else the last ``calibrated`` record's."""
    t = meta.get("target")
    if not isinstance(t, Mapping):
        cal = [r for r in records if r.get("type") == "calibrated" and isinstance(r.get("target"), Mapping)]
        t = cal[-1]["target"] if cal else {}
    return dict(t)


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def session_summary(meta: Mapping[str, Any], records: Sequence[Mapping[str, Any]],
                    views: Sequence[TrialView]) -> dict[str, Any]:
    """The header's numbers: counts, best trial, charge (µC), timings (s) and the end reason."""
    cfg = meta.get("config") or {}
    dev, trials_cfg, cal = (cfg.get(k) or {} for k in ("device", "trials", "calibration"))
    stream = meta.get("stream") or {}
    done = [v for v in views if v.status == "completed" and _finite(v.cost) is not None]
    best = min(done, key=lambda v: v.cost) if done else None
    stop_at = {r.get("trial"): r.get("lsl") for r in records if r.get("type") == "interrupted"}
    charge = 0.0
    for v in views:
        if v.applied_at is None:
            continue
        logged = _finite(v.extra.get("charge_uc")) if v.status == "completed" else None
        if logged is not None:
            charge += logged
            continue
        cut = None
        if v.status != "completed" and _finite(stop_at.get(v.trial)) is not None:
            cut = stop_at[v.trial] - v.applied_at
        charge += trial_charge_uc(v.stimulus, cut)
    dead = np.array([d for v in done if (d := _finite(v.timing.get("dead_s"))) is not None])
    over = np.array([_finite(v.timing.get("overhead_s")) or 0.0 for v in done])
    trial_s = np.array([_finite(v.timing.get("trial_s")) or 0.0 for v in done])
    asks = np.array([a for v in views if (a := _finite(v.ask_s)) is not None])
    ts = [r["lsl"] for r in records if _finite(r.get("lsl")) is not None]
    target = _target(meta, records)
    acq = stream.get("acquisition") or {}
    patient = meta.get("patient") or (" seed ".join(str(x) for x in (acq.get("patient_id") or acq.get("model"),
                                                                     acq.get("seed")) if x))
    ends = [r for r in records if r.get("type") == "end"]
    return {
        "patient": patient or stream.get("name") or "n/a",
        "device": " · ".join(dict.fromkeys(str(x) for x in (stream.get("source_id") or dev.get("source_id"),
                                                             stream.get("name") or dev.get("name")) if x)) or "n/a",
        "stream": (f"{stream.get('n_channels', len(stream.get('ch_names') or []))} channels at "
                   f"{stream.get('fs', float('nan')):g} Hz") if stream else "n/a",
        "target": target.get("spec") or target.get("kind") or cal.get("target") or "n/a",
        "optimizer": trials_cfg.get("optimizer") or (meta.get("optimizer") or "n/a"),
        "budget": trials_cfg.get("budget"),
        "n_trials": len(views),
        "completed": len(done),
        "interrupted": sum(v.status in ("interrupted", "sent") for v in views),
        "rejected": sum(v.status == "rejected" for v in views),
        "runs": sum(r.get("type") == "start" for r in records),
        "faults": sum(r.get("type") == "fault" for r in records),
        "stops": sum(r.get("type") == "stop" for r in records),
        "best": None if best is None else {"trial": best.trial, "cost": best.cost, "stimulus": best.stimulus},
        "first_cost": done[0].cost if done else None,
        "charge_uc": charge,
        "dead_ms": (float(np.median(dead) * 1e3), float(np.percentile(dead, 95) * 1e3)) if dead.size else None,
        "overhead_pct": float(100 * over.sum() / trial_s.sum()) if trial_s.sum() > 0 else None,
        "ask_ms": float(np.median(asks) * 1e3) if asks.size else None,
        "wall_s": (max(ts) - min(ts)) if ts else None,
        "end": ends[-1].get("reason") if ends else "not ended (killed, or still running)",
        "surrogate": dict(meta.get("surrogate") or {}),
        "trust": trust_summary([r for r in records if r.get("type") == "outcome"]),
    }


def _stim_text(s: Mapping[str, Any]) -> str:
    kind = s.get("kind")
    if kind == "electrical":
        return (f"{s.get('contact')} · {s.get('amplitude_ma', float('nan')):.2f} mA · "
                f"{s.get('frequency_hz', float('nan')):.0f} Hz · {s.get('pulse_width_us', float('nan')):.0f} µs · "
                f"{s.get('duration_s', float('nan')):g} s")
    if kind == "sensory":
        return (f"{s.get('modality')} · {s.get('frequency_hz', float('nan')):.1f} Hz · level "
                f"{s.get('level', float('nan')):.2f} · {s.get('duration_s', float('nan')):g} s")
    return str(kind or "n/a")


def _psd(stream: StreamData, spans: Sequence[tuple[float, float]], picks: np.ndarray) -> np.ndarray | None:
    """Mean Welch PSD over the spans (LSL s), ``(n_picks, nf)``, or None when too little data."""
    from scipy.signal import welch

    fs = stream.fs
    nper = int(min(fs, 2 ** int(np.log2(max(fs / 2, 8)))))  # about 0.5–1 s segments: ~1–2 Hz resolution
    acc, n = None, 0
    for a, b in spans:
        i0, i1 = np.searchsorted(stream.times, [a, b])
        x = stream.data[picks, i0:i1].astype(np.float64)
        x = x[:, np.isfinite(x).all(axis=0)]
        if x.shape[1] < nper // 2:
            continue
        f, p = welch(x, fs=fs, nperseg=min(nper, x.shape[1]), nfft=nper, axis=-1)
        acc = p if acc is None else acc + p
        n += 1
    return None if acc is None else acc / n


def _spectra(stream: StreamData | None, records: Sequence[Mapping[str, Any]], views: Sequence[TrialView],
             continuous: dict[int, list[dict[str, Any]]]) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    if stream is None or stream.n_samples == 0:
        return []
    speed = float(stream.spec.get("speed") or 1.0)
    picks = np.array([i for i, t in enumerate(stream.ch_types) if t in VOLTAGE_TYPES]) \
        if any(t in VOLTAGE_TYPES for t in stream.ch_types) else np.arange(len(stream.ch_types))
    wanted: list[tuple[str, list[tuple[float, float]]]] = []
    cal = [r for r in records if r.get("type") == "calibrated" and isinstance(r.get("rest_window"), list)]
    if cal:
        a, b = cal[-1]["rest_window"][:2]
        wanted.append((f"before: calibration rest ({(b - a) * speed:.0f} s)", [(a, b)]))
    else:
        first = next((r.get("lsl") for r in records if r.get("type") == "sent"), None)
        if _finite(first) is not None and first > stream.times[0] + 1.0:
            wanted.append((f"before: first {first - stream.times[0]:.0f} s", [(stream.times[0], first)]))
    wins = [tuple(v.window) for v in views if v.status == "completed" and isinstance(v.window, list)
            and len(v.window) == 2][-_AFTER_TRIALS:]
    if wins:
        wanted.append((f"after: last {len(wins)} response windows", wins))
    for seg, recs in sorted(continuous.items()):
        wanted.append((f"continuous segment {seg} ({recs[0].get('mode', '?')})", [(recs[0]["t"], recs[-1]["t"])]))
    out = []
    fs = stream.fs
    nper = int(min(fs, 2 ** int(np.log2(max(fs / 2, 8)))))
    f = np.fft.rfftfreq(nper, 1 / fs)
    keep = f <= min(fs / 2, 120.0)
    for label, spans in wanted:
        p = _psd(stream, spans, picks)
        if p is not None:
            out.append((label, f[keep], np.median(p, axis=0)[keep], np.percentile(p, [25, 75], axis=0)[:, keep]))
    return out


def _lanes(records: Sequence[Mapping[str, Any]], views: Sequence[TrialView], t0: float,
           continuous: dict[int, list[dict[str, Any]]], speed: float = 1.0) -> dict[str, list[tuple[float, float]]]:
    """Timeline lanes in LSL s from ``t0``; a train lasts ``duration_s / speed`` LSL s."""
    lanes: dict[str, list[tuple[float, float]]] = {k: [] for k in
                                                   ("sent", "applied", "rejected", "interrupted", "stop", "fault",
                                                    "recovered", "continuous")}
    stims = {v.trial: v.stimulus for v in views}
    for r in records:
        typ, t = r.get("type"), _finite(r.get("lsl"))
        if t is None:
            continue
        if typ == "sent":
            lanes["sent"].append((t - t0, 0.0))
        elif typ == "ack" and r.get("status") == "applied":
            at = _finite(r.get("applied_at")) or t
            dur = _finite(stims.get(r.get("trial"), {}).get("duration_s")) or 0.0
            lanes["applied"].append((at - t0, dur / speed))
        elif typ == "ack":
            lanes["rejected"].append((t - t0, 0.0))
        elif typ in ("interrupted", "stop", "fault", "recovered"):
            lanes[typ].append((t - t0, 0.0))
    for recs in continuous.values():
        lanes["continuous"].append((recs[0]["t"] - t0, recs[-1]["t"] - recs[0]["t"]))
    return lanes


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _fmt(x: Any, spec: str = ".4g", none: str = "n/a") -> str:
    return none if _finite(x) is None else format(float(x), spec)


def build_report(dir: Path) -> Path:  # noqa: A002
    """Write ``dir/report/index.html`` and its PNGs from the session directory ``dir``.

    Works on a directory left by a SIGKILL (torn tails dropped) and on one without a stream or
    without trials (those figures are left out with a note).

    Returns:
        The path of ``index.html``.

    Raises:
        RecordingError: ``dir`` is not a session directory (no ``session.json``).
    """
    t_start = time.perf_counter()
    folder = Path(dir)
    meta = read_meta(folder)
    records = read_log(folder / LOG)
    views = trial_views(records)
    fold_timings(records, views)
    continuous: dict[int, list[dict[str, Any]]] = {}
    for r in read_log(folder / CONTINUOUS):
        if _finite(r.get("t")) is not None:
            continuous.setdefault(int(r.get("segment") or 0), []).append(r)
    stream: StreamData | None = None
    notes: list[str] = []
    try:
        stream = load_stream(folder, meta)
        if stream.n_samples == 0:
            notes.append("No signal sample was received: no spectra.")
    except BfmStimError as exc:
        notes.append(f"No stream: {exc}")
    summary = session_summary(meta, records, views)
    t0 = float(stream.times[0]) if stream is not None and stream.n_samples else \
        min((r["lsl"] for r in records if _finite(r.get("lsl")) is not None), default=0.0)
    gaps: list[tuple[float, float]] = []
    t_end = max((r["lsl"] for r in records if _finite(r.get("lsl")) is not None), default=t0) - t0
    if stream is not None and stream.n_samples:
        tl = Timeline(stream.times, stream.fs, speed=stream.spec.get("speed") or 1.0)
        ts = tl.times
        for first, _, real in tl.gaps:
            i = int(np.searchsorted(tl.index, first)) - 1
            gaps.append((ts[i] - t0, ts[i] - t0 + real))
        t_end = max(t_end, float(ts[-1] - t0))
    target = _target(meta, records).get("latent")
    speed = float(stream.spec.get("speed") or 1.0) if stream is not None else 1.0
    figures = [
        ("cost", "Cost per trial", plots.cost_figure(views), "No trial was proposed."),
        ("trust", "Trust in the model", plots.trust_figure(views), None),
        ("latent", "Latent trajectory against the target", plots.latent_figure(views, target),
         "No latents were logged with the outcomes (outcome records without \"latent\")."),
        ("spectra", "Spectra before and after", plots.spectra_figure(_spectra(stream, records, views, continuous)),
         "Too little signal for spectra."),
        ("parameters", "Stimulus parameters explored", plots.parameters_figure(views), "No stimulus to show."),
        ("timeline", "Acknowledgements and faults", plots.timeline_figure(_lanes(records, views, t0, continuous, speed),
                                                                          gaps, t_end), "Nothing was sent."),
        ("continuous", "Continuous mode", plots.continuous_figure(continuous), None),
    ]
    out = folder / REPORT_DIR
    out.mkdir(exist_ok=True)
    images: list[tuple[str, str, str | None, str | None]] = []  # (name, title, base64 or None, note)
    for name, title, fig, missing in figures:
        if fig is None:
            if missing:
                images.append((name, title, None, missing))
            continue
        png = _png(fig)
        (out / f"{name}.png").write_bytes(png)
        images.append((name, title, base64.b64encode(png).decode("ascii"), None))
    # a session directory called "session" (the demo's, the benchmark's) is named by its parent
    title = folder.resolve().parent.name if folder.name == "session" else folder.name
    page = _html(title, summary, images, views, notes, time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    index = out / "index.html"
    tmp = out / "index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(index)
    log.info("report %s: %d trials, %d figures in %.2f s", index, len(views),
             sum(b is not None for _, _, b, _ in images), time.perf_counter() - t_start)
    return index


_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
main{max-width:1240px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid #dde1e7;padding-bottom:4px}
.sub{color:#5b6575;font-size:13px;margin-bottom:18px}
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:10px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:10px 14px}
.card .k{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:#6b7585}
.card .v{font-size:17px;font-weight:600;margin-top:2px;overflow-wrap:anywhere}
.card .s{font-size:12px;color:#5b6575;margin-top:2px;overflow-wrap:anywhere}
.wide{grid-column:span 2}
figure{background:#fff;border:1px solid #dde1e7;border-radius:8px;margin:0 0 14px;padding:10px}
figure img{width:100%;height:auto;display:block}
.note{color:#6b7585;font-style:italic;background:#fff;border:1px dashed #cfd5de;border-radius:8px;padding:10px 14px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px;border:1px solid #dde1e7}
th,td{padding:5px 8px;border-bottom:1px solid #edf0f3;text-align:left;white-space:nowrap}
th{background:#eef1f5;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.best td{background:#e8f6ea;font-weight:600}
.st{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;color:#fff}
.st-completed{background:#1f77b4}.st-interrupted,.st-sent{background:#ff7f0e}.st-rejected{background:#d62728}
.st-asked{background:#7f7f7f}
.reason{white-space:normal;color:#5b6575}
.warn{background:#fff4e5;border:1px solid #f0b35a;border-radius:8px;padding:10px 14px;margin:14px 0 0}
"""


def _card(k: str, v: str, s: str = "", cls: str = "card") -> str:
    sub = f'<div class="s">{html.escape(s)}</div>' if s else ""
    return f'<div class="{cls}"><div class="k">{html.escape(k)}</div><div class="v">{html.escape(v)}</div>{sub}</div>'


def _html(name: str, s: dict[str, Any], images: list[tuple[str, str, str | None, str | None]],
          views: Sequence[TrialView], notes: list[str], stamp: str) -> str:
    best = s["best"]
    dead = s["dead_ms"]
    cards = [
        _card("patient", str(s["patient"]), s["stream"]),
        _card("device", str(s["device"]), f"{s['runs']} run(s) · ended: {s['end']}"),
        _card("target", str(s["target"])),
        _card("optimizer", str(s["optimizer"]), f"budget {s['budget']}" if s["budget"] is not None else ""),
        _card("trials", f"{s['completed']} completed",
              f"{s['interrupted']} interrupted · {s['rejected']} rejected · {s['n_trials']} proposed"),
        _card("best cost", _fmt(best["cost"]) if best else "n/a",
              (f"trial {best['trial']} (first completed: {_fmt(s['first_cost'])})") if best else ""),
        _card("best stimulus", _stim_text(best["stimulus"]) if best else "n/a", cls="card wide"),
        _card("charge delivered", f"{s['charge_uc'] / 1e3:.3g} mC" if s["charge_uc"] >= 1e3 else
              f"{s['charge_uc']:.3g} µC", "trials, both phases of every pulse"),
        _card("dead time", f"{dead[0]:.1f} ms median" if dead else "n/a", f"p95 {dead[1]:.1f} ms" if dead else ""),
        _card("loop overhead", f"{s['overhead_pct']:.1f} % of trial time" if s["overhead_pct"] is not None else "n/a",
              f"ask median {s['ask_ms']:.0f} ms" if s["ask_ms"] is not None else ""),
        _card("faults / stops", f"{s['faults']} / {s['stops']}",
              f"session {s['wall_s'] / 60:.1f} min" if s["wall_s"] else ""),
    ]
    trust, sur = s.get("trust"), s.get("surrogate") or {}
    if trust is not None:
        cards.append(_card("model trust at the end", trust_text(trust["trust"], trust["model_weight"]),
                           str(trust.get("reason") or ""), cls="card wide"))
    elif sur.get("surrogate_method"):
        cards.append(_card("model trust", NONE, str(sur.get("note") or "no trial told yet"), cls="card wide"))
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>bfm-stim session "
             f"{html.escape(name)}</title><style>{_CSS}</style></head><body><main>",
             f"<h1>Closed-loop session {html.escape(name)}</h1>",
             f"<div class=\"sub\">{s['n_trials']} trials · report rebuilt from the session directory at "
             f"{html.escape(stamp)}</div>", '<div class="cards">', *cards, "</div>"]
    if trust is not None and (trust.get("message") or trust.get("first_message")):
        # said in one line: what the contradiction means and what to do (and whether it still holds)
        msg = trust.get("message") or (f"At trial {trust['first_contradicted_trial']}: {trust['first_message']} "
                                       f"Since then the trials no longer contradict it ({trust.get('reason')}).")
        parts.append(f'<p class="warn" id="trust-message">{html.escape(msg)}</p>')
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    for img_name, title, b64, note in images:
        parts.append(f"<h2 id=\"{img_name}\">{html.escape(title)}</h2>")
        if b64 is None:
            parts.append(f'<p class="note">{html.escape(note or "")}</p>')
        else:
            parts.append(f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{b64}"></figure>')
    parts.append(f"<h2 id=\"trials\">Trials ({len(views)})</h2>")
    parts.append(_table(views, best["trial"] if best else None))
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _table(views: Sequence[TrialView], best: int | None) -> str:
    if not views:
        return '<p class="note">No trial.</p>'
    head = ("<table><thead><tr><th>trial</th><th>status</th><th>stimulus</th><th>cost</th><th>best so far</th>"
            "<th>trust</th><th>led by</th><th>dead (ms)</th><th>ask (ms)</th><th>applied at (LSL s)</th>"
            "<th>reason</th></tr></thead><tbody>")
    rows, run = [], math.inf
    for v in views:
        c = _finite(v.cost) if v.status == "completed" else None
        if c is not None:
            run = min(run, c)
        dead = _finite(v.timing.get("dead_s"))
        ask = _finite(v.ask_s)
        cls = ' class="best"' if v.trial == best else ""
        rows.append(
            f"<tr{cls}><td class=\"num\">{v.trial}{' (probe)' if v.probe else ''}</td>"
            f"<td><span class=\"st st-{html.escape(v.status)}\">{html.escape(v.status)}</span></td>"
            f"<td>{html.escape(_stim_text(v.stimulus))}</td><td class=\"num\">{_fmt(c, '.4g', '')}</td>"
            f"<td class=\"num\">{_fmt(run, '.4g', '') if c is not None else ''}</td>"
            f"<td class=\"num\" title=\"{html.escape(str(v.extra.get('trust_reason') or ''))}\">"
            f"{_fmt(v.extra.get('trust'), '.2f', NONE) if c is not None else ''}</td>"
            f"<td>{html.escape(str(v.extra.get('led_by') or NONE)) if c is not None else ''}</td>"
            f"<td class=\"num\">{_fmt(None if dead is None else dead * 1e3, '.1f', '')}</td>"
            f"<td class=\"num\">{_fmt(None if ask is None else ask * 1e3, '.0f', '')}</td>"
            f"<td class=\"num\">{_fmt(v.applied_at, '.3f', '')}</td>"
            f"<td class=\"reason\">{html.escape(str(v.reason or ''))}</td></tr>")
    return head + "".join(rows) + "</tbody></table>"
