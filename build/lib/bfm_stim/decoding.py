"""Decoding a state or a variable from window features, with time-respecting cross-validation.

* :func:`blocked_folds` — contiguous folds (windows of one labelled block never straddle train and
  test: neighbouring windows of a recording are correlated, so shuffled folds overstate accuracy);
* :func:`cross_validate` — a linear read-out (logistic regression or ridge, its regularisation chosen
  by an inner blocked CV on the training windows only) scored by balanced accuracy or R², optionally
  with only the first ``n_train`` windows of labels (the labels a session collects first);
* :class:`RestAlignment` — the baseline cross-patient alignment: re-centre and whiten each patient's
  features by the statistics of its own rest (no labels needed; CORAL / Riemannian re-centring);
* :class:`StateDecoder` — a fitted linear decoder saved as plain arrays (``.npz``, no pickle) that the
  session's continuous mode reads as its biomarker.

The same decoder and the same folds serve every feature set (latents, hand-crafted, a random-init
encoder), so differences come from the features.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bfm_stim.exceptions import ValidationError

__all__ = ["TASKS", "blocked_folds", "label_subset", "fit_decoder", "cross_validate", "score", "RestAlignment",
           "StateDecoder"]

TASKS = ("classification", "regression")
C_GRID = (0.01, 0.1, 1.0, 10.0)
ALPHA_GRID = tuple(np.logspace(-2, 4, 7))
DECODER_FORMAT = "bfm-stim-state-decoder"


def _groups(n: int, groups: Sequence[Any] | None) -> np.ndarray:
    if groups is None:
        return np.arange(n)
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValidationError("groups", g.shape, f"({n},): one block id per window, in time order")
    return g


def blocked_folds(n: int, n_folds: int = 5, groups: Sequence[Any] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Contiguous folds over windows in time order.

    Args:
        n: number of windows.
        n_folds: folds (>= 2, <= number of blocks).
        groups: (n,) block id per window (windows of one block stay together); default one block each.

    Returns: [(train_idx, test_idx)] with every window tested once.
    """
    g = _groups(n, groups)
    _, first = np.unique(g, return_index=True)
    order = g[np.sort(first)]  # blocks in order of appearance
    if not 2 <= n_folds <= len(order):
        raise ValidationError("n_folds", n_folds, f"2 to {len(order)} (the number of blocks)")
    out = []
    for part in np.array_split(order, n_folds):
        test = np.flatnonzero(np.isin(g, part))
        out.append((np.setdiff1d(np.arange(n), test), test))
    return out


def label_subset(idx: np.ndarray, y: np.ndarray, n_train: int | None, task: str, groups: np.ndarray) -> np.ndarray:
    """The first ``n_train`` windows of ``idx`` a session would have labels for: whole blocks in time
    order, for a classification keeping the classes balanced (a block is taken while its class has no
    more windows than the others)."""
    if n_train is None or n_train >= len(idx):
        return idx
    if task == "regression":
        return idx[:n_train]
    classes = np.unique(y[idx])
    count = {c: 0 for c in classes}
    keep: list[int] = []
    seen: set[Any] = set()
    for i in idx:
        b = groups[i]
        if b in seen:
            continue
        seen.add(b)
        members = idx[groups[idx] == b]
        c = y[members[0]]
        if count[c] > min(count.values()):
            continue
        take = members[: max(0, n_train - len(keep))]
        keep.extend(take.tolist())
        count[c] += len(take)
        if len(keep) >= n_train:
            break
    return np.asarray(sorted(keep), dtype=int)


def score(task: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Balanced accuracy (classification) or R² (regression)."""
    import warnings

    from sklearn.metrics import balanced_accuracy_score, r2_score

    with warnings.catch_warnings():  # a blocked test fold may lack a class the decoder predicts: expected
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(y_true, y_pred) if task == "classification" else r2_score(y_true, y_pred))


def _estimator(task: str, reg: float) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "classification":
        return make_pipeline(StandardScaler(), LogisticRegression(C=reg, class_weight="balanced", max_iter=2000))
    return make_pipeline(StandardScaler(), Ridge(alpha=reg))


def fit_decoder(F: np.ndarray, y: np.ndarray, task: str = "classification", groups: Sequence[Any] | None = None) -> Any:
    """A fitted linear read-out; its regularisation picked by an inner blocked CV on (F, y) only.

    Returns: a scikit-learn pipeline (StandardScaler + LogisticRegression or Ridge) with ``reg_``
    (the chosen C or alpha) set on it.
    """
    if task not in TASKS:
        raise ValidationError("task", task, f"one of {TASKS}")
    F, y = np.asarray(F, dtype=np.float64), np.asarray(y)
    if len(F) != len(y) or len(F) < 2:
        raise ValidationError("labels", (len(F), len(y)), "one label per window, >= 2 windows")
    if not np.isfinite(F).all():
        raise ValidationError("features", "non-finite values", "finite features")
    if task == "classification" and len(np.unique(y)) < 2:
        raise ValidationError("labels", f"one class ({y[0]!r})", ">= 2 classes among the training windows")
    g = _groups(len(F), groups)
    grid = C_GRID if task == "classification" else ALPHA_GRID
    best = 1.0 if task == "classification" else 1.0
    n_blocks = len(np.unique(g))
    if n_blocks >= 3:
        means = []
        for reg in grid:
            s = []
            for tr, te in blocked_folds(len(F), 3, g):
                if task == "classification" and len(np.unique(y[tr])) < 2:
                    continue
                s.append(score(task, y[te], _estimator(task, reg).fit(F[tr], y[tr]).predict(F[te])))
            means.append(np.mean(s) if s else -np.inf)
        if np.isfinite(max(means)):
            best = grid[int(np.argmax(means))]
    est = _estimator(task, best).fit(F, y)
    est.reg_ = float(best)
    return est


def cross_validate(F: np.ndarray, y: np.ndarray, task: str = "classification", *, groups: Sequence[Any] | None = None,
                   n_folds: int = 5, n_train: int | None = None) -> dict[str, Any]:
    """Blocked cross-validated score of the linear read-out.

    Args:
        F: (N, D) features in time order; y: (N,) labels or targets.
        task: ``"classification"`` (balanced accuracy) or ``"regression"`` (R²).
        groups: (N,) block id per window (default: each window its own block).
        n_folds: outer blocked folds.
        n_train: labelled windows per fold (the first ones, :func:`label_subset`); None: all.

    Returns: ``{"score" (mean over folds), "folds", "n_train" (median), "task"}``.
    """
    F, y = np.asarray(F, dtype=np.float64), np.asarray(y)
    g = _groups(len(F), groups)
    scores, sizes = [], []
    for tr, te in blocked_folds(len(F), n_folds, g):
        tr = label_subset(tr, y, n_train, task, g)
        if task == "classification" and (len(np.unique(y[tr])) < 2 or len(np.unique(y[te])) < 2):
            continue
        est = fit_decoder(F[tr], y[tr], task, g[tr])
        scores.append(score(task, y[te], est.predict(F[te])))
        sizes.append(len(tr))
    if not scores:
        raise ValidationError("labels", "no fold with every class in train and test",
                              "blocks of each class spread over the recording (or fewer folds)")
    return {"score": float(np.mean(scores)), "folds": scores, "n_train": int(np.median(sizes)), "task": task}


@dataclass
class RestAlignment:
    """Re-centre and whiten features by a patient's rest statistics (cross-patient baseline).

    ``transform(F) = (F - mean) @ W`` with ``W = C^(-1/2)`` of the rest features' covariance ``C``,
    shrunk towards a scaled identity (Ledoit-Wolf's data-driven shrinkage by default, or ``shrink``):
    every patient's rest becomes zero-mean and white, so a decoder trained on some patients meets a
    new one in the same frame. A few seconds of rest in 65 dimensions give a covariance of low rank:
    the shrinkage keeps the whitening from blowing up its unseen directions.
    """

    shrink: float | None = None
    whiten: bool = True
    mean_: np.ndarray | None = None
    W_: np.ndarray | None = None
    shrinkage_: float | None = None

    def fit(self, F_rest: np.ndarray) -> "RestAlignment":
        F = np.asarray(F_rest, dtype=np.float64)
        if F.ndim != 2 or len(F) < 2 or not np.isfinite(F).all():
            raise ValidationError("rest features", F.shape, "(N >= 2, D) finite values")
        self.mean_ = F.mean(0)
        if self.whiten:
            if self.shrink is None:
                from sklearn.covariance import ledoit_wolf

                c, self.shrinkage_ = ledoit_wolf(F)
            else:
                c0 = np.cov(F, rowvar=False)
                mu = np.trace(c0) / len(c0)
                self.shrinkage_ = float(self.shrink)
                c = (1 - self.shrink) * c0 + self.shrink * mu * np.eye(len(c0))
            w, v = np.linalg.eigh(c)
            self.W_ = (v / np.sqrt(np.clip(w, 1e-12, None))) @ v.T
        else:
            self.W_ = np.eye(F.shape[1])
        return self

    def transform(self, F: np.ndarray) -> np.ndarray:
        if self.mean_ is None:
            raise ValidationError("alignment", "not fitted", "fit(rest features) first")
        return (np.asarray(F, dtype=np.float64) - self.mean_) @ self.W_


@dataclass
class StateDecoder:
    """A linear state decoder on pooled window features, as plain arrays.

    Attributes:
        coef: (D,) weights on standardised (and aligned) features; intercept: bias (logit).
        scale_mean, scale_std: (D,) standardisation of the features.
        classes: the two labels, ``classes[1]`` the one whose probability :meth:`probability` gives.
        window_s: window length the features pool, s.
        align_mean, align_W: rest alignment applied first (None: none).
        meta: what it was trained on (features, pool, model digest, scores).
    """

    coef: np.ndarray
    intercept: float
    scale_mean: np.ndarray
    scale_std: np.ndarray
    classes: tuple[str, str]
    window_s: float
    align_mean: np.ndarray | None = None
    align_W: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_pipeline(cls, est: Any, window_s: float, alignment: RestAlignment | None = None,
                      meta: dict[str, Any] | None = None) -> "StateDecoder":
        """From :func:`fit_decoder`'s classification pipeline with two classes."""
        sc, lr = est[0], est[-1]
        if len(lr.classes_) != 2:
            raise ValidationError("classes", list(lr.classes_), "exactly two (a state and its absence)")
        return cls(lr.coef_[0].copy(), float(lr.intercept_[0]), sc.mean_.copy(), sc.scale_.copy(),
                   (str(lr.classes_[0]), str(lr.classes_[1])), float(window_s),
                   None if alignment is None else alignment.mean_, None if alignment is None else alignment.W_,
                   dict(meta or {}))

    def probability(self, F: np.ndarray) -> np.ndarray:
        """P(``classes[1]``) for features (N, D) (or (D,) -> (1,))."""
        F = np.atleast_2d(np.asarray(F, dtype=np.float64))
        if F.shape[1] != len(self.coef):
            raise ValidationError("features", F.shape[1], f"{len(self.coef)} per window")
        if self.align_mean is not None:
            F = (F - self.align_mean) @ self.align_W
        logit = ((F - self.scale_mean) / self.scale_std) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part.npz")
        arrays = {"format": np.array(DECODER_FORMAT), "coef": self.coef, "intercept": np.array(self.intercept),
                  "scale_mean": self.scale_mean, "scale_std": self.scale_std, "classes": np.array(self.classes, dtype=str),
                  "window_s": np.array(self.window_s), "meta": np.array(json.dumps(self.meta, sort_keys=True, default=str))}
        if self.align_mean is not None:
            arrays.update(align_mean=self.align_mean, align_W=self.align_W)
        np.savez(tmp, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "StateDecoder":
        path = Path(path)
        if not path.is_file():
            raise ValidationError("decoder", str(path), "a decoder file written by `bfm-stim decode --save`")
        with np.load(path, allow_pickle=False) as f:
            if "format" not in f or str(f["format"]) != DECODER_FORMAT:
                raise ValidationError("decoder", str(path), "a decoder file written by `bfm-stim decode --save`")
            am = f["align_mean"] if "align_mean" in f else None
            aw = f["align_W"] if "align_W" in f else None
            c = tuple(str(x) for x in f["classes"])
            return cls(f["coef"], float(f["intercept"]), f["scale_mean"], f["scale_std"], (c[0], c[1]),
                       float(f["window_s"]), am, aw, json.loads(str(f["meta"])))
