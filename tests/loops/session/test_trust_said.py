"""The model's trust in a session: on each trial's ``outcome`` record, in the live view, in ``session.json``'s
summary and in the report (header message, trust figure, trust column); nothing of it for other optimizers.

The trials run through the real :class:`~loops.session.proposer.Proposer` and
:class:`~loops.session.store.SessionStore` without a device: the closed-form problem's cost stands for the
measured response (the LSL sessions check the same records end to end in ``test_session_e2e``).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest

from bfm_stim.optim import make
from loops.model_trust import TRIAL_FIELDS, model_manifest
from loops.session.live import LiveView
from loops.session.proposer import Proposer
from loops.session.report import build_report
from loops.session.runner import summarize
from loops.session.store import LOG, SessionStore, read_log


def play(path: Path, opt, problem, n: int, view: LiveView) -> list[dict]:
    """``n`` trials through the proposer; returns the ``outcome`` records."""
    store = SessionStore(path, create=True)
    store.write_meta({"session_id": "s", "config": {"trials": {"optimizer": opt.name, "budget": n}},
                      "checkpoint": {"path": "model.pt", "sha256_16": "0123456789abcdef"}})
    store.update_meta(surrogate=model_manifest(opt, store.meta["checkpoint"]))
    prop = Proposer(opt, store, on_told=view.trust_done)
    for k in range(1, n + 1):
        k, stim, _ = prop.result(k)
        prop.tell(k, stim, float(problem(stim, noise_std=0.02, rng=np.random.default_rng(k)).cost), None)
        prop.wait_idle()
    prop.close()
    store.append("end", reason="budget", best=None)
    store.close()
    return [r for r in read_log(path / LOG) if r["type"] == "outcome"]


@pytest.fixture(scope="module")
def contradicted(tmp_path_factory, bump):
    problem, _, wrong = bump
    path = tmp_path_factory.mktemp("trust") / "sess"
    opt = make("egreedy", problem.space, seed=0, cost_model=wrong, n_pool=64)
    view = LiveView(enabled=False, budget=8)
    outcomes = play(path, opt, problem, 8, view)
    return path, outcomes, view


def test_each_outcome_record_carries_the_trust_after_it(contradicted):
    _, outcomes, _ = contradicted
    assert len(outcomes) == 8 and all(set(TRIAL_FIELDS) <= set(o) for o in outcomes)
    assert all(0.0 <= o["trust"] <= 1.0 and isinstance(o["trust_reason"], str) for o in outcomes)
    assert outcomes[0]["led_by"] == "model" and outcomes[-1]["led_by"] == "bo"
    said = [o for o in outcomes if o.get("trust_message")]
    assert said and said[-1] is outcomes[-1] and "does not know this patient" in said[0]["trust_message"]


def test_live_view_shows_trust_and_the_message(contradicted):
    from rich.console import Console

    _, outcomes, view = contradicted
    assert view.state["trust"] == outcomes[-1]["trust"] and view.state["trust_message"]
    console = Console(file=io.StringIO(), width=400)
    console.print(view._render())
    text = console.file.getvalue()
    assert "model trust" in text and "bo led" in text and "does not know this patient" in text


def test_session_json_and_report(contradicted):
    import json

    path, outcomes, _ = contradicted
    summary = summarize(path)
    t = summary["trust"]
    assert t["trust"] == outcomes[-1]["trust"] and t["message"] == outcomes[-1]["trust_message"]
    assert t["first_contradicted_trial"] == next(o["trial"] for o in outcomes if o.get("trust_message"))
    meta = json.loads((path / "session.json").read_text())
    assert meta["surrogate"] == {"surrogate_method": True, "model": True, "trust_enabled": True,
                                 "checkpoint": {"path": "model.pt", "sha256_16": "0123456789abcdef"}}
    page = build_report(path).read_text(encoding="utf-8")
    assert 'id="trust-message"' in page and "does not know this patient" in page
    assert '<h2 id="trust">' in page and (path / "report" / "trust.png").is_file()
    assert "<th>trust</th><th>led by</th>" in page and "model trust at the end" in page
    assert f">{outcomes[-1]['trust']:.2f}</td><td>bo</td>" in page


def test_no_trust_for_an_optimizer_without_a_model(tmp_path, bump, caplog):
    problem = bump[0]
    view = LiveView(enabled=False, budget=3)
    with caplog.at_level(logging.INFO, logger="bfm_stim.loops.session"):
        outcomes = play(tmp_path / "sess", make("random", problem.space, seed=0), problem, 3, view)
    assert all(o["trust"] is None and o["led_by"] is None and "trust_message" not in o for o in outcomes)
    assert "model trust" not in caplog.text
    assert summarize(tmp_path / "sess")["trust"] is None
    page = build_report(tmp_path / "sess").read_text(encoding="utf-8")
    assert '<h2 id="trust">' not in page and "trust-message" not in page and "model trust" not in page
    assert page.count('<td class="num" title="">–</td><td>–</td>') == 3  # the trust column says "none"
