"""Verification metrics on pair scores: ROC, AUC, TAR@FAR, EER, 10-fold accuracy (pure functions).

Conventions (paper §III.B, thesis §5.8):

* A pair is *accepted* when ``score >= threshold`` (higher score = more similar).
* The ROC is :func:`sklearn.metrics.roc_curve` over **all** pairs pooled (the thesis pools the
  6,000 LFW View-2 scores into one curve), ``drop_intermediate=False`` so every distinct
  threshold is an operating point. Tied scores form a single operating point.
* **TAR@FAR rule** (the thesis only says "from the ROC points"): ``"floor"`` (default) = the
  highest TAR among ROC operating points whose FAR is **<=** the target, i.e. the best TAR a real
  threshold achieves without exceeding the FAR budget (FAR = 1e-3 on LFW = at most 3 of 3,000
  impostors). ``"linear"`` = ``np.interp`` between the upper corners (highest TAR) of the two
  distinct FAR levels bracketing the target, the usual ``np.interp(target, fpr, tpr)`` reading;
  it is never below ``"floor"``.
* **EER** = FAR at the intersection of the ROC polyline with the line FAR = 1 - TAR (the line from
  (0, 1) to (1, 0)), linear between the two ROC points that bracket it; the threshold is
  interpolated the same way.
* **10-fold accuracy** (LFW standard): for each fold, the threshold that maximises accuracy on
  the other nine folds is picked among the midpoints of consecutive distinct training scores
  (plus ``-inf``); ties go to the lowest such threshold; accuracy is then measured on the fold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from cdfv.errors import CdfvError

TarRule = Literal["floor", "linear"]


class MetricsInputError(CdfvError, ValueError):
    """Scores/labels that cannot define verification metrics (NaN, one class only, mismatch)."""


@dataclass(frozen=True)
class Roc:
    """ROC operating points, sorted by decreasing threshold (FAR and TAR non-decreasing)."""

    far: np.ndarray
    tar: np.ndarray
    thresholds: np.ndarray


def check_scores(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and coerce: 1-D, equal length, finite scores, both classes present."""
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise MetricsInputError(f"labels ({y.size}) and scores ({s.size}) differ in length")
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:
        raise MetricsInputError(
            f"{bad.size} non-finite score(s) (NaN/inf) at pair index(es) {bad[:10].tolist()}: "
            "check the embeddings of those pairs (zero vectors give NaN cosine)"
        )
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise MetricsInputError(f"need genuine and impostor pairs, got {n_pos} genuine of {y.size}")
    return y, s


def roc(labels: np.ndarray, scores: np.ndarray) -> Roc:
    """All ROC operating points (sklearn, no point dropping). First point is (0, 0) at +inf."""
    y, s = check_scores(labels, scores)
    far, tar, thr = roc_curve(y, s, drop_intermediate=False)
    return Roc(far=far, tar=tar, thresholds=thr)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC (ties count one half, as :func:`sklearn.metrics.roc_auc_score`)."""
    y, s = check_scores(labels, scores)
    return float(roc_auc_score(y, s))


def tar_at_far(curve: Roc, target: float, rule: TarRule = "floor") -> float:
    """TAR at a FAR target on ``curve`` under ``rule`` (see the module docstring)."""
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"FAR target must be in [0, 1], got {target}")
    far, tar = curve.far, curve.tar
    below = far <= target
    # far[0] == 0 always (threshold +inf), so `below` is never empty.
    floor = float(tar[below].max())
    if rule == "floor":
        return floor
    if rule != "linear":
        raise ValueError(f"unknown TAR@FAR rule {rule!r}: use 'floor' or 'linear'")
    i = int(np.flatnonzero(below)[-1])  # last point at or below target (FAR non-decreasing)
    if i + 1 >= far.size or far[i] == target:
        return floor
    f0, t0, f1 = far[i], tar[i], far[i + 1]
    t1 = float(tar[far == f1].max())  # upper corner of the next FAR level
    return float(t0 + (t1 - t0) * (target - f0) / (f1 - f0))


def eer(curve: Roc) -> tuple[float, float]:
    """Equal error rate and its threshold: ROC ∩ {FAR = 1 - TAR}, linear between bracketing points."""
    far, tar, thr = curve.far, curve.tar, curve.thresholds
    d = far + tar - 1.0  # FAR - FRR: -1 at (0,0), +1 at (1,1), non-decreasing along the ROC
    j = int(np.flatnonzero(d >= 0)[0])  # d[-1] == 1 so it exists; d[0] == -1 so j >= 1
    i = j - 1
    t = 0.0 if d[j] == d[i] else -d[i] / (d[j] - d[i])
    rate = float(far[i] + t * (far[j] - far[i]))
    t_lo = thr[i] if np.isfinite(thr[i]) else thr[j]
    threshold = float(t_lo + t * (thr[j] - t_lo))
    return rate, threshold


@dataclass(frozen=True)
class FoldAccuracy:
    """Standard LFW k-fold accuracy with per-fold thresholds picked on the other folds."""

    mean: float
    std: float
    accuracies: list[float] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)


def best_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """Threshold maximising accuracy of ``score >= t`` on these pairs (lowest on ties)."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    u = np.unique(s)
    cands = np.concatenate([[-np.inf], (u[:-1] + u[1:]) / 2.0, [np.inf]])
    pos, neg = np.sort(s[y]), np.sort(s[~y])
    # accepted genuine = pos >= t ; rejected impostors = neg < t
    tp = pos.size - np.searchsorted(pos, cands, side="left")
    tn = np.searchsorted(neg, cands, side="left")
    return float(cands[int(np.argmax(tp + tn))])


def kfold_accuracy(labels: np.ndarray, scores: np.ndarray, folds: np.ndarray) -> FoldAccuracy:
    """LFW protocol accuracy: threshold chosen on k-1 folds, accuracy measured on the held-out one."""
    y, s = check_scores(labels, scores)
    f = np.asarray(folds).ravel()
    if f.shape != y.shape:
        raise MetricsInputError(f"folds ({f.size}) and scores ({y.size}) differ in length")
    ids = np.unique(f)
    if ids.size < 2:
        raise MetricsInputError(f"k-fold accuracy needs at least 2 folds, got {ids.size}")
    accs, thrs = [], []
    for k in ids:
        test = f == k
        t = best_threshold(y[~test], s[~test])
        accs.append(float(np.mean((s[test] >= t) == y[test])))
        thrs.append(t)
    return FoldAccuracy(float(np.mean(accs)), float(np.std(accs)), accs, thrs)


def verification_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    folds: np.ndarray | None = None,
    far_targets: tuple[float, ...] = (1e-3, 1e-2),
    rule: TarRule = "floor",
) -> dict[str, float]:
    """All scalar metrics of one model, keyed as they appear in the metrics JSON."""
    curve = roc(labels, scores)
    rate, thr = eer(curve)
    out: dict[str, float] = {"auc": auc(labels, scores), "eer": rate, "eer_threshold": thr}
    for target in far_targets:
        out[far_key(target)] = tar_at_far(curve, target, rule)
    if folds is not None:
        acc = kfold_accuracy(labels, scores, folds)
        out["accuracy"] = acc.mean
        out["accuracy_std"] = acc.std
        out["n_folds"] = len(acc.accuracies)
    return out


def far_key(target: float) -> str:
    """Metric name for a FAR target: 1e-3 -> 'tar_far_1e-3'."""
    mant, exp = f"{target:.0e}".split("e")
    return f"tar_far_{mant}e{int(exp)}"
