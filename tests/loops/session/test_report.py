"""The session report: rebuilt from the directory alone, every figure embedded, numbers from the log."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import numpy as np
import pytest

from loops.session.report import build_report, fold_timings, session_summary, trial_charge_uc
from loops.session.store import LOG, SessionStore, read_log, trial_views

from ._fake_session import make_session, tear

ALL_FIGURES = {"cost", "latent", "spectra", "parameters", "timeline", "continuous"}


def _imgs(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("report") / "sess"
    truth = make_session(path, n_trials=8, seed=2)
    index = build_report(path)
    return path, truth, index, index.read_text(encoding="utf-8")


def test_self_contained_page_embeds_every_png(built) -> None:
    path, _, index, page = built
    assert index == path / "report" / "index.html"
    pngs = {p.stem: p.read_bytes() for p in (path / "report").glob("*.png")}
    assert set(pngs) == ALL_FIGURES
    embedded = _imgs(page)
    assert len(embedded) == len(pngs)
    assert sorted(embedded) == sorted(pngs.values())  # the same bytes, inline
    assert all(b.startswith(b"\x89PNG") for b in embedded)
    assert "http://" not in page and "https://" not in page and "<script" not in page  # nothing fetched


def test_header_counts_best_and_table_match_the_log(built) -> None:
    _, truth, _, page = built
    n = len(truth.status)
    done = [k for k, s in truth.status.items() if s == "completed"]
    assert f"Trials ({n})" in page
    assert page.count("<tr") - 1 == n  # one row per trial under the header row
    assert f"{len(done)} completed" in page
    assert "1 interrupted · 1 rejected" in page
    best = min(done, key=lambda k: truth.costs[k])
    assert f"trial {best} (first completed" in page
    assert format(truth.costs[best], ".4g") in page
    assert re.search(r'<tr class="best"><td class="num">' + str(best) + r"\b", page)


def test_summary_numbers(built) -> None:
    path, truth, _, _ = built
    records = read_log(path / LOG)
    views = trial_views(records)
    fold_timings(records, views)  # the runner logs timings in "timing" records after the rest
    s = session_summary(SessionStore(path, create=False).meta, records, views)
    # charge: completed trials in full, the interrupted one up to its stop
    expected = sum(trial_charge_uc(truth.stimuli[k]) for k, st in truth.status.items() if st == "completed")
    k_int = next(k for k, st in truth.status.items() if st == "interrupted")
    stop = next(r["lsl"] for r in records if r["type"] == "interrupted")
    expected += trial_charge_uc(truth.stimuli[k_int], stop - truth.applied[k_int])
    assert s["charge_uc"] == pytest.approx(expected)
    stim = truth.stimuli[0]
    # mA × µs / 1000 = µC per phase; two phases; frequency × duration pulses
    assert trial_charge_uc(stim) == pytest.approx(stim["amplitude_ma"] * stim["pulse_width_us"] / 1000 * 2
                                                   * stim["frequency_hz"] * stim["duration_s"])
    assert s["patient"] == "bg-beta-v0 seed 3" and s["target"] == "healthy"
    dead = [v.timing["dead_s"] for v in views if v.status == "completed"]
    assert s["dead_ms"][0] == pytest.approx(np.median(dead) * 1e3)
    assert s["dead_ms"][1] == pytest.approx(np.percentile(dead, 95) * 1e3)
    over = sum(v.timing["overhead_s"] for v in views if v.status == "completed")
    total = sum(v.timing["trial_s"] for v in views if v.status == "completed")
    assert s["overhead_pct"] == pytest.approx(100 * over / total)
    assert (s["completed"], s["interrupted"], s["rejected"], s["runs"]) == (7, 1, 1, 2)


def test_torn_directory_still_builds(tmp_path: Path) -> None:
    path = tmp_path / "torn"
    truth = make_session(path, n_trials=4, seed=4, resume=False, continuous=False, nonfinite=None, interrupt=None)
    tear(path)
    page = build_report(path).read_text(encoding="utf-8")
    assert f"Trials ({len(truth.status)})" in page
    assert len(_imgs(page)) == 5  # no continuous segment


def test_missing_pieces_are_skipped_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "sensory"
    truth = make_session(path, n_trials=5, seed=6, kind="sensory", latents=False, continuous=False, resume=False)
    page = build_report(path).read_text(encoding="utf-8")
    assert "No latents were logged" in page
    assert not (path / "report" / "latent.png").exists() and not (path / "report" / "continuous.png").exists()
    assert (path / "report" / "parameters.png").exists()
    for s in truth.stimuli.values():  # every sensory stimulus in the trials table
        assert f"{s['modality']} · {s['frequency_hz']:.1f} Hz · level {s['level']:.2f}" in page, s
    # no stream at all: still a page, without spectra
    bare = tmp_path / "bare"
    store = SessionStore(bare, create=True)
    store.write_meta({"config": {"trials": {"optimizer": "random"}}})
    store.append("start", lsl=1.0, run=0, resume=False, session_id="x", first_seq=0)
    store.close()
    page = build_report(bare).read_text(encoding="utf-8")
    assert "No stream" in page and "Trials (0)" in page


def test_200_trials_under_10_s(tmp_path: Path) -> None:
    path = tmp_path / "long"
    truth = make_session(path, n_trials=200, seed=7, trial_rest_s=0.1)
    t = time.perf_counter()
    page = build_report(path).read_text(encoding="utf-8")
    assert time.perf_counter() - t < 10.0
    assert f"Trials ({len(truth.status)})" in page and len(_imgs(page)) == len(ALL_FIGURES)
