"""Bjøntegaard deltas between two rate–metric curves (VCEG-M33), e.g. rate vs TAR@FAR=1e-3.

* **BD-rate** (%): mean difference of ``ln(rate)`` of the test curve vs the anchor over the
  overlapping *metric* interval, as ``100 * (exp(mean_diff) - 1)``. Negative = the test needs
  fewer bits for the same verification quality.
* **BD-metric** (e.g. BD-TAR, "BD-accuracy"): mean difference of the metric over the overlapping
  ``ln(rate)`` interval. Positive = the test verifies better at the same rate.

``method="cubic"`` is Bjøntegaard's original least-squares cubic fit (exact through 4 points);
``method="pchip"`` is the piecewise-cubic Hermite variant of later common test conditions, which
needs the metric strictly monotonic in rate (else a clear error). Curves need >= 4 points for
``cubic`` (a cubic is under-determined otherwise) and >= 2 for ``pchip``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.polynomial import polynomial as P
from scipy.interpolate import PchipInterpolator

from cdfv.errors import CdfvError

BdMethod = Literal["cubic", "pchip"]


class BdError(CdfvError, ValueError):
    """Curves on which a Bjøntegaard delta is undefined (too few points, no overlap, bad rates)."""


def _prepare(
    rate: Sequence[float], metric: Sequence[float], name: str, min_points: int
) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64)
    m = np.asarray(metric, dtype=np.float64)
    if r.shape != m.shape or r.ndim != 1:
        raise BdError(f"{name}: rate and metric must be 1-D of equal length")
    if r.size < min_points:
        raise BdError(f"{name}: needs >= {min_points} rate points, got {r.size}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(m)) and np.all(r > 0)):
        raise BdError(f"{name}: rates must be positive and finite, metrics finite")
    order = np.argsort(r)
    return np.log(r[order]), m[order]


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: BdMethod, name: str) -> float:
    """Integral over [lo, hi] of the curve y(x) fitted to the points."""
    if method == "cubic":
        coef = P.polyfit(x, y, 3)
        anti = P.polyint(coef)
        return float(P.polyval(hi, anti) - P.polyval(lo, anti))
    if method == "pchip":
        # points come in increasing-rate order: the metric must increase with rate too
        if np.any(np.diff(x) <= 0):
            raise BdError(f"{name}: pchip needs a strictly increasing rate–metric curve; use method='cubic'")
        return float(PchipInterpolator(x, y).integrate(lo, hi))
    raise BdError(f"unknown BD method {method!r}: use 'cubic' or 'pchip'")


def _overlap(a: np.ndarray, b: np.ndarray, what: str) -> tuple[float, float]:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    if not hi > lo:
        raise BdError(f"the two curves do not overlap in {what}: no Bjøntegaard delta")
    return float(lo), float(hi)


def _curves(
    anchor_rate: Sequence[float],
    anchor_metric: Sequence[float],
    test_rate: Sequence[float],
    test_metric: Sequence[float],
    method: BdMethod,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(log-rate, metric) of both curves, checked for the points ``method`` needs."""
    need = 4 if method == "cubic" else 2
    la, ma = _prepare(anchor_rate, anchor_metric, "anchor", need)
    lt, mt = _prepare(test_rate, test_metric, "test", need)
    return la, ma, lt, mt


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_metric: Sequence[float],
    test_rate: Sequence[float],
    test_metric: Sequence[float],
    method: BdMethod = "cubic",
) -> float:
    """BD-rate of ``test`` relative to ``anchor`` in percent (negative = fewer bits)."""
    la, ma, lt, mt = _curves(anchor_rate, anchor_metric, test_rate, test_metric, method)
    lo, hi = _overlap(ma, mt, "metric")
    ia = _integral(ma, la, lo, hi, method, "anchor")
    it = _integral(mt, lt, lo, hi, method, "test")
    return float((np.exp((it - ia) / (hi - lo)) - 1.0) * 100.0)


def bd_metric(
    anchor_rate: Sequence[float],
    anchor_metric: Sequence[float],
    test_rate: Sequence[float],
    test_metric: Sequence[float],
    method: BdMethod = "cubic",
) -> float:
    """BD-metric of ``test`` relative to ``anchor`` (same unit as the metric; positive = better)."""
    la, ma, lt, mt = _curves(anchor_rate, anchor_metric, test_rate, test_metric, method)
    lo, hi = _overlap(la, lt, "log-rate")
    ia = _integral(la, ma, lo, hi, method, "anchor")
    it = _integral(lt, mt, lo, hi, method, "test")
    return float((it - ia) / (hi - lo))
