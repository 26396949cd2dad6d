"""Verification metrics against sklearn/scipy references and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import roc_auc_score, roc_curve

from cdfv.evaluate import metrics as M


def _random_case(seed: int, n: int = 600, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    s = rng.normal(size=n) + 1.2 * y
    if ties:
        s = np.round(s, 1)  # many tied scores across classes
    return y, s


def _sk_tar_floor(y: np.ndarray, s: np.ndarray, target: float) -> float:
    fpr, tpr, _ = roc_curve(y, s)  # sklearn's default drops collinear points: must not matter
    return float(tpr[fpr <= target].max())


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_auc_roc_and_tar_match_sklearn(seed: int, ties: bool) -> None:
    y, s = _random_case(seed, ties=ties)
    assert M.auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    curve = M.roc(y, s)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_array_equal(curve.far, fpr)
    np.testing.assert_array_equal(curve.tar, tpr)
    for target in (1e-3, 1e-2, 0.1, 0.5):
        assert M.tar_at_far(curve, target) == pytest.approx(_sk_tar_floor(y, s, target))
        lin = M.tar_at_far(curve, target, "linear")
        assert M.tar_at_far(curve, target) <= lin + 1e-12
        # linear rule = interpolation on the ROC hull of distinct FAR values (upper envelope)
        fu = np.unique(fpr)
        tu = np.array([tpr[fpr == f].max() for f in fu])
        assert lin == pytest.approx(float(np.interp(target, fu, tu)), abs=1e-12)


def _eer_reference(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Segment-by-segment intersection of the ROC polyline with FAR + TAR = 1 (brentq per segment)."""
    for (f0, t0), (f1, t1) in zip(zip(fpr[:-1], tpr[:-1]), zip(fpr[1:], tpr[1:])):
        g0, g1 = f0 + t0 - 1.0, f1 + t1 - 1.0
        if g0 < 0 <= g1:
            if g1 == 0:
                return float(f1)
            u = brentq(
                lambda a, f0=f0, f1=f1, t0=t0, t1=t1: (f0 + a * (f1 - f0)) + (t0 + a * (t1 - t0)) - 1.0,
                0.0,
                1.0,
                xtol=1e-14,
            )
            return float(f0 + u * (f1 - f0))
    raise AssertionError("no crossing")


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_eer_matches_reference_and_bounds(seed: int, ties: bool) -> None:
    y, s = _random_case(seed, ties=ties)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    rate, thr = M.eer(M.roc(y, s))
    assert rate == pytest.approx(_eer_reference(fpr, tpr), abs=1e-9)
    # the envelope recipe (brentq on interp1d over the upper corners) differs by < one sample step
    fu = np.unique(fpr)
    tu = np.array([tpr[fpr == f].max() for f in fu])
    envelope = brentq(lambda x: 1.0 - x - interp1d(fu, tu)(x), 0.0, 1.0)
    assert abs(rate - envelope) <= 1.0 / min(y.sum(), (~y).sum()) + 1e-12
    if not ties:  # without ties, FAR and FRR at the EER threshold agree to within a few samples
        far = np.mean(s[~y] >= thr)
        frr = np.mean(s[y] < thr)
        assert abs(far - frr) < 0.02


def test_all_equal_scores_are_chance() -> None:
    y = np.array([1, 0] * 50, dtype=bool)
    s = np.full(100, 0.3)
    curve = M.roc(y, s)
    assert M.auc(y, s) == 0.5
    assert M.tar_at_far(curve, 1e-3) == 0.0  # the only threshold accepting anyone accepts everyone
    assert M.tar_at_far(curve, 1e-3, "linear") == pytest.approx(1e-3)
    assert M.eer(curve)[0] == pytest.approx(0.5)
    acc = M.kfold_accuracy(y, s, np.repeat(np.arange(10), 10))
    assert acc.mean == pytest.approx(0.5)


def test_perfect_and_inverted_separation() -> None:
    y = np.array([True] * 5 + [False] * 5)
    s = np.r_[np.linspace(0.6, 1.0, 5), np.linspace(-1.0, 0.5, 5)]
    curve = M.roc(y, s)
    assert M.auc(y, s) == 1.0 and M.eer(curve)[0] == 0.0 and M.tar_at_far(curve, 0.0) == 1.0
    inv = M.roc(y, -s)
    assert M.auc(y, -s) == 0.0 and M.eer(inv)[0] == pytest.approx(1.0)


def test_tar_at_far_exact_constructed_case() -> None:
    # 1,000 impostors with distinct scores 0.000..0.999 and 10 genuine pairs.
    neg = np.arange(1000) / 1000.0
    pos = np.array([0.9985, 0.9975, 0.9965, 0.9955, 0.9945, 0.99, 0.98, 0.5, 0.2, 0.1])
    y = np.r_[np.ones(10, bool), np.zeros(1000, bool)]
    s = np.r_[pos, neg]
    curve = M.roc(y, s)
    # FAR <= 1e-3 allows exactly one impostor (0.999) => threshold 0.999, TAR = 1/10 (0.9985 rejected)...
    # ...but threshold 0.9985 (no impostor accepted) already gives TAR 1/10; the next, 0.999, adds an
    # impostor and no genuine. So floor TAR@1e-3 = 0.1.
    assert M.tar_at_far(curve, 1e-3) == pytest.approx(0.1)
    # FAR <= 1e-2: 10 impostors (0.990..0.999) accepted at threshold 0.99 => genuine >= 0.99: 6/10.
    assert M.tar_at_far(curve, 1e-2) == pytest.approx(0.6)
    # FAR 5e-3: at most 5 impostors (0.995..0.999) => lowest usable threshold 0.9945 => 5/10 genuine.
    assert M.tar_at_far(curve, 5e-3) == pytest.approx(0.5)
    # FAR 4e-3 (4 impostors, threshold 0.9955): 4/10. Linear at 4.5e-3: halfway between the upper
    # corners (4e-3, 0.4) and (5e-3, 0.5).
    assert M.tar_at_far(curve, 4e-3) == pytest.approx(0.4)
    assert M.tar_at_far(curve, 4.5e-3, "linear") == pytest.approx(0.45)
    assert M.tar_at_far(curve, 4.5e-3) == pytest.approx(0.4)


def test_tar_linear_interpolates_between_points() -> None:
    # ROC points: (0,0) (0,0.5) (0.5,0.5) (0.5,1.0) (1,1)
    y = np.array([True, False, True, False])
    s = np.array([0.9, 0.8, 0.7, 0.1])
    curve = M.roc(y, s)
    assert M.tar_at_far(curve, 0.25) == 0.5
    # upper corners (0, 0.5) and (0.5, 1.0): halfway => 0.75
    assert M.tar_at_far(curve, 0.25, "linear") == 0.75
    y2 = np.array([True, False, False, True])
    s2 = np.array([0.9, 0.8, 0.7, 0.6])  # (0,0.5) (0.5,0.5) (1,0.5) (1,1)
    c2 = M.roc(y2, s2)
    assert M.tar_at_far(c2, 0.75, "linear") == 0.75  # corners (0.5, 0.5) and (1, 1)
    assert M.tar_at_far(c2, 0.75) == 0.5
    y3 = np.array([False, True, True, False])
    s3 = np.array([0.9, 0.8, 0.7, 0.6])  # (0,0) (0.5,0) (0.5,0.5) (0.5,1) (1,1)
    c3 = M.roc(y3, s3)
    assert M.tar_at_far(c3, 0.25) == 0.0
    assert M.tar_at_far(c3, 0.25, "linear") == pytest.approx(0.5)  # corners (0, 0) and (0.5, 1)
    assert M.tar_at_far(c3, 0.5) == 1.0


def test_kfold_accuracy_known_case() -> None:
    # Two folds of 4 pairs. Fold 0 is separable at any t in (0.4, 0.6]; fold 1 has one overlap.
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0], dtype=bool)
    s = np.array([0.9, 0.6, 0.4, 0.1, 0.8, 0.3, 0.5, 0.2])
    f = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    acc = M.kfold_accuracy(y, s, f)
    # Test fold 0: trained on fold 1 (scores .2 .3 .5 .8): best accuracy 3/4 at t=0.25 (lowest of the
    # ties 0.25 and 0.65) => fold 0 with t=0.25: .9 .6 accepted, .4 accepted (wrong), .1 rejected => 3/4.
    # Test fold 1: trained on fold 0: best (4/4) lowest midpoint t=0.5 => .8 ok, .3 rejected (wrong),
    # .5 accepted (wrong), .2 ok => 2/4.
    assert acc.thresholds == pytest.approx([0.25, 0.5])
    assert acc.accuracies == pytest.approx([0.75, 0.5])
    assert acc.mean == pytest.approx(0.625)
    assert acc.std == pytest.approx(0.125)


def test_kfold_accuracy_on_separable_folds_is_one() -> None:
    rng = np.random.default_rng(0)
    y = np.tile([True] * 30 + [False] * 30, 10)
    s = np.where(y, rng.uniform(0.6, 1.0, y.size), rng.uniform(-1.0, 0.4, y.size))
    acc = M.kfold_accuracy(y, s, np.repeat(np.arange(10), 60))
    assert acc.mean == 1.0 and len(acc.accuracies) == 10


def test_bad_inputs_are_rejected_with_clear_errors() -> None:
    y = np.array([True, False, True])
    with pytest.raises(M.MetricsInputError, match="non-finite"):
        M.roc(y, np.array([0.1, np.nan, 0.3]))
    with pytest.raises(M.MetricsInputError, match="genuine and impostor"):
        M.auc(np.ones(3, bool), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(M.MetricsInputError, match="length"):
        M.auc(y, np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="rule"):
        M.tar_at_far(M.roc(y, np.array([0.1, 0.2, 0.3])), 0.1, "cubic")  # type: ignore[arg-type]


def test_verification_metrics_keys_and_far_key() -> None:
    y, s = _random_case(1, n=200)
    out = M.verification_metrics(y, s, np.arange(200) % 10)
    assert {"auc", "eer", "eer_threshold", "tar_far_1e-3", "tar_far_1e-2", "accuracy", "n_folds"} <= set(out)
    assert M.far_key(1e-3) == "tar_far_1e-3" and M.far_key(0.01) == "tar_far_1e-2"
