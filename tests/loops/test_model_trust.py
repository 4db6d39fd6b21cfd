"""What the application says of a surrogate method's trust: per-trial fields, the one-time message, summaries."""

from __future__ import annotations

import numpy as np

from bfm_stim.optim import make
from bfm_stim.optim.test_problems import ContactBump
from loops.model_trust import (TRIAL_FIELDS, TrustNotice, draw_trust, model_manifest, trial_fields, trust_summary,
                               trust_text)


def run(opt, problem: ContactBump, n: int) -> list[dict]:
    """``n`` trials; each record as ``optimize`` and the session write it, and the notices said."""
    notice, rows = TrustNotice(), []
    for t in range(n):
        s = opt.ask(1)[0]
        opt.tell([s], [problem(s, noise_std=0.02, rng=np.random.default_rng(t))])
        rows.append({"trial": t + 1, **trial_fields(opt, s), "notice": notice.check(opt, t + 1)})
    return rows


def test_a_contradicted_model_is_said_once_with_what_to_do(bump):
    problem, _, wrong = bump
    opt = make("egreedy", problem.space, seed=0, cost_model=wrong, n_pool=64)
    rows = run(opt, problem, 8)
    assert all(set(TRIAL_FIELDS) <= set(r) for r in rows)
    assert all(0.0 <= r["trust"] <= 1.0 and 0.0 <= r["model_weight"] <= 1.0 for r in rows)
    assert {r["led_by"] for r in rows} <= {"model", "bo", "explore", "design"} and rows[0]["led_by"] == "model"
    said = [r for r in rows if r["notice"]]
    assert len(said) == 1  # once, when it first happens
    first = said[0]["trial"]
    assert "does not know this patient" in said[0]["notice"] and "bfm-stim adapt" in said[0]["notice"]
    assert all("trust_message" in r for r in rows if r["trial"] >= first)  # the record says it while it holds
    assert rows[-1]["trust"] < 0.25 and rows[-1]["led_by"] == "bo" and "contradict" in rows[-1]["trust_reason"]
    s = trust_summary(rows)
    assert s["trust"] == rows[-1]["trust"] and s["first_contradicted_trial"] == first
    assert s["message"] == rows[-1]["trust_message"] and s["first_message"] == said[0]["notice"]
    assert s["n_trials"] == 8 and 1 <= s["model_led_trials"] < 8


def test_a_confirmed_model_is_not_warned_about(bump):
    problem, right, _ = bump
    opt = make("egreedy", problem.space, seed=0, cost_model=right, n_pool=64)
    rows = run(opt, problem, 6)
    assert not any(r["notice"] for r in rows) and not any("trust_message" in r for r in rows)
    s = trust_summary(rows)
    assert s["trust"] > 0.5 and s["message"] is None and s["first_contradicted_trial"] is None


def test_optimizers_without_a_model_have_no_trust(bump):
    problem, right, _ = bump
    opt = make("random", problem.space, seed=0)
    rows = run(opt, problem, 2)
    assert all(r["trust"] is None and r["model_weight"] is None and r["led_by"] is None for r in rows)
    assert trust_summary(rows) is None and trust_text(None) == "–"
    assert model_manifest(opt, {"sha256_16": "x"}) == {"surrogate_method": False, "model": False, "checkpoint": None}
    bare = make("gradient", problem.space, seed=0, n_starts=2, steps=4)  # a surrogate method given no model
    m = model_manifest(bare, {"sha256_16": "x"})
    assert m["surrogate_method"] and not m["model"] and m["checkpoint"] is None and "no cost model" in m["note"]
    fitted = make("gradient", problem.space, seed=0, n_starts=2, steps=4, cost_model=right)
    assert model_manifest(fitted, {"sha256_16": "x"}) == {"surrogate_method": True, "model": True,
                                                          "checkpoint": {"sha256_16": "x"}, "trust_enabled": True}


def test_text_and_drawing():
    assert trust_text(0.8234, 1.0, "model") == "0.82 (weight 1.00, model led)"
    assert trust_text(0.5) == "0.50"
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert not draw_trust(ax, [{"trial": 1, "trust": None}])
    rows = [{"trial": 1, "trust": 0.5, "model_weight": 1.0, "led_by": "model"},
            {"trial": 2, "trust": 0.1, "model_weight": 0.2, "led_by": "bo", "trust_message": "m"}]
    assert draw_trust(ax, rows)
    labels = ax.get_legend_handles_labels()[1]
    assert "contradicted (trial 2)" in labels and "trial proposed by BO" in labels
    plt.close(fig)
