"""TFQI and the joint bit allocation (Li et al. 2019 §III, eqs. 3-8), checked against a grid search.

* TFQI = -log10(w1 D1 + w2 D2), w1 + w2 = 1 (eq. 3): D1 = texture MSE, D2 = verification error rate.
* Model-based allocation: maximise TFQI subject to R_t + R_f <= R_c (eq. 4). With the Lagrangian (eq. 5)
  the optimum satisfies the working condition w1 D_t'(R_t) = w2 D_f'(R_f) (eq. 7) on R_t + R_f = R_c
  (eq. 8). We solve it on the measured rate ranges of the fitted models: every root of
  g(R_t) = w1 D_t'(R_t) - w2 D_f'(R_c - R_t) (sign changes on a fine grid, refined by Brent's method)
  and the two ends of the interval (where the optimum sits when eq. 7 has no root inside) are
  candidates; the one of highest model TFQI is the continuous allocation (R_t*, R_f*).
* QPs from rates ("the optimal values of QP1 and QP2 can be determined", §III-B): QP1 is the grid QP whose
  measured texture rate is nearest to R_t* in log rate (QP is about linear in log rate); QP2 then takes
  what eq. 8 leaves: among the feature QPs within R_c - R_t(QP1), the one of lowest fitted D_f (the
  largest rate while D_f falls; the paper's D_f rises again past its minimum). If none fits, the next
  nearest QP1.
* Check: the brute-force optimum of the **measured** TFQI over every grid pair within the budget; the
  TFQI lost by the model-based choice is the difference (>= 0).
* Texture-only ("compress then analyse"): D2 measured on features of the decoded texture; compared with a
  joint choice at the same total rate on the texture-only rate-TFQI curve (piecewise linear in log rate
  between its QP1 points), since neither grid spends a budget exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cdfv.tfqi.rd_models import Fit

#: Sub-intervals scanned for sign changes of the working condition.
SCAN = 512


def tfqi(d1: float | np.ndarray, d2: float | np.ndarray, w1: float) -> float | np.ndarray:
    """TFQI = -log10(w1 D1 + (1 - w1) D2) (eq. 3)."""
    if not 0.0 < w1 < 1.0:
        raise ValueError(f"w1 must be in (0, 1), got {w1}")
    value = w1 * np.asarray(d1, dtype=np.float64) + (1.0 - w1) * np.asarray(d2, dtype=np.float64)
    with np.errstate(divide="ignore"):
        out = -np.log10(value)
    return float(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True)
class GridPoint:
    """One measured QP of a stream: mean rate (bpp) and distortion (D1 = MSE or D2 = error rate)."""

    qp: int
    rate: float
    distortion: float


@dataclass(frozen=True)
class Choice:
    """A (QP1, QP2) grid pair and its measured rates, D1, D2 and TFQI."""

    qp1: int
    qp2: int
    rate_t: float
    rate_f: float
    d1: float
    d2: float
    tfqi: float

    @property
    def rate(self) -> float:
        return self.rate_t + self.rate_f


def feasible_pairs(texture: Sequence[GridPoint], feature: Sequence[GridPoint], budget: float) -> list[tuple[int, int]]:
    """Indices (i, j) of the grid pairs with R_t + R_f <= R_c."""
    return [
        (i, j) for i, t in enumerate(texture) for j, f in enumerate(feature) if t.rate + f.rate <= budget * (1 + 1e-12)
    ]


def _choice(t: GridPoint, f: GridPoint, w1: float) -> Choice:
    return Choice(t.qp, f.qp, t.rate, f.rate, t.distortion, f.distortion, float(tfqi(t.distortion, f.distortion, w1)))


def grid_optimum(texture: Sequence[GridPoint], feature: Sequence[GridPoint], budget: float, w1: float) -> Choice | None:
    """Brute force: the feasible pair of highest measured TFQI (ties: lower total rate); None if none fits."""
    pairs = feasible_pairs(texture, feature, budget)
    if not pairs:
        return None
    choices = [_choice(texture[i], feature[j], w1) for i, j in pairs]
    return max(choices, key=lambda c: (c.tfqi, -c.rate))


@dataclass(frozen=True)
class ModelAllocation:
    """The continuous optimum of the fitted models on R_t + R_f = R_c and how it was found."""

    rate_t: float
    rate_f: float
    model_tfqi: float
    on_boundary: bool  # True when no root of eq. 7 beats the ends of the interval


def working_condition_allocation(
    texture_fit: Fit,
    feature_fit: Fit,
    w1: float,
    budget: float,
    rate_t_range: tuple[float, float],
    rate_f_range: tuple[float, float],
) -> ModelAllocation | None:
    """Solve w1 D_t'(R_t) = w2 D_f'(R_c - R_t) (eqs. 7-8) for R_t within the models' measured ranges.

    None when the budget leaves no R_t with both rates inside those ranges.
    """
    w2 = 1.0 - w1
    lo = max(rate_t_range[0], budget - rate_f_range[1])
    hi = min(rate_t_range[1], budget - rate_f_range[0])
    if lo > hi:
        return None

    def g(rt: float) -> float:
        return float(w1 * texture_fit.slope(rt) - w2 * feature_fit.slope(budget - rt))

    def model_tfqi(rt: float) -> float:
        return float(tfqi(texture_fit(rt), feature_fit(budget - rt), w1))

    candidates = [(lo, True), (hi, True)]
    if hi > lo:
        from scipy.optimize import brentq

        xs = np.linspace(lo, hi, SCAN + 1)
        gs = np.array([g(x) for x in xs])
        for k in range(SCAN):
            if gs[k] == 0.0:
                candidates.append((float(xs[k]), False))
            elif gs[k] * gs[k + 1] < 0:
                candidates.append((float(brentq(g, xs[k], xs[k + 1], xtol=1e-12)), False))
    scored = [(model_tfqi(rt), rt, edge) for rt, edge in candidates if math.isfinite(model_tfqi(rt))]
    if not scored:
        return None
    best_t, rt, edge = max(scored, key=lambda s: (s[0], not s[2]))
    return ModelAllocation(rt, budget - rt, best_t, edge)


def grid_pair(
    texture: Sequence[GridPoint],
    feature: Sequence[GridPoint],
    budget: float,
    rate_t: float,
    feature_fit: Fit,
    w1: float,
) -> Choice | None:
    """QPs from the continuous allocation: QP1 of the texture rate nearest to R_t* (log rate); QP2 the feature QP
    within the rest of the budget, R_c - R_t(QP1) (eq. 8), of lowest fitted D_f — the largest rate that fits
    while D_f falls with rate, not beyond the model's minimum when its rising term takes over. When no
    feature QP fits, the next nearest QP1. None when no pair fits the budget."""
    for t in sorted(texture, key=lambda t: (abs(math.log(t.rate / rate_t)), t.rate)):
        fits = [f for f in feature if f.rate <= (budget - t.rate) * (1 + 1e-12)]
        if fits:
            return _choice(t, min(fits, key=lambda f: (float(feature_fit(f.rate)), -f.rate)), w1)
    return None


def budget_grid(
    texture: Sequence[GridPoint], feature: Sequence[GridPoint], n: int, extra: Sequence[float] = ()
) -> list[float]:
    """``n`` budgets log-spaced over the joint grid's total rates (cheapest to dearest pair), plus ``extra``."""
    lo = min(t.rate for t in texture) + min(f.rate for f in feature)
    hi = max(t.rate for t in texture) + max(f.rate for f in feature)
    auto = [hi] if n == 1 else np.geomspace(lo, hi, n).tolist()
    return sorted({float(b) for b in (*auto, *extra)})


def curve_at(rates: Sequence[float], values: Sequence[float], rate: float) -> float | None:
    """A rate curve through measured points, piecewise linear in log rate, at ``rate``; None outside its range."""
    order = np.argsort(rates)
    r = np.log(np.asarray(rates, dtype=np.float64)[order])
    v = np.asarray(values, dtype=np.float64)[order]
    x = math.log(rate)
    if x < r[0] - 1e-12 or x > r[-1] + 1e-12:
        return None
    return float(np.interp(x, r, v))
