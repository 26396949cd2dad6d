"""Rate-distortion models of the two streams and their fits (Li et al. 2019 §III-B, eq. 9).

* texture: D_t(R_t) = a1 e^(b1 R_t)
* feature: D_f(R_f) = a2 e^(b2 R_f) + c2 e^(d2 R_f)

Rates are bits per crop pixel, distortions the dataset means per QP (D_t = MSE, D_f = 1 - accuracy),
as the paper's Fig. 2. Fits are :func:`scipy.optimize.curve_fit` least squares on the distortions
themselves (R² on the same scale), started from a log-linear regression (texture) or from several
starting points, the paper's LFW fit among them (feature); the best R² wins. When the points cannot
support a fit — fewer points than parameters + 1, a constant distortion (e.g. D2 = 0 at every QP2 on a
tiny fixture), non-finite values, no convergence — the result says ``fit failed: <why>``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

#: The paper's LFW fits (Fig. 2): parameters and R².
PAPER_TEXTURE_FIT = {"a1": 293.4, "b1": -26.7, "r2": 0.9826}
PAPER_FEATURE_FIT = {"a2": 0.048, "b2": -276.8, "c2": 0.0068, "d2": 3.882, "r2": 0.8393}


def texture_model(r: np.ndarray | float, a1: float, b1: float) -> np.ndarray:
    """D_t = a1 e^(b1 R_t)."""
    return a1 * np.exp(b1 * np.asarray(r, dtype=np.float64))


def feature_model(r: np.ndarray | float, a2: float, b2: float, c2: float, d2: float) -> np.ndarray:
    """D_f = a2 e^(b2 R_f) + c2 e^(d2 R_f)."""
    r = np.asarray(r, dtype=np.float64)
    return a2 * np.exp(b2 * r) + c2 * np.exp(d2 * r)


def texture_slope(r: np.ndarray | float, a1: float, b1: float) -> np.ndarray:
    """dD_t/dR_t."""
    return a1 * b1 * np.exp(b1 * np.asarray(r, dtype=np.float64))


def feature_slope(r: np.ndarray | float, a2: float, b2: float, c2: float, d2: float) -> np.ndarray:
    """dD_f/dR_f."""
    r = np.asarray(r, dtype=np.float64)
    return a2 * b2 * np.exp(b2 * r) + c2 * d2 * np.exp(d2 * r)


@dataclass(frozen=True)
class Fit:
    """A fitted model: parameters and R², or ``ok=False`` with the reason."""

    model: str  # "texture" | "feature"
    ok: bool
    params: dict[str, float] = field(default_factory=dict)
    r2: float | None = None
    n_points: int = 0
    reason: str = ""

    @property
    def status(self) -> str:
        return "ok" if self.ok else f"fit failed: {self.reason}"

    def __call__(self, r: np.ndarray | float) -> np.ndarray:
        if not self.ok:
            raise ValueError(f"{self.model} model: {self.status}")
        return (texture_model if self.model == "texture" else feature_model)(r, **self.params)

    def slope(self, r: np.ndarray | float) -> np.ndarray:
        if not self.ok:
            raise ValueError(f"{self.model} model: {self.status}")
        return (texture_slope if self.model == "texture" else feature_slope)(r, **self.params)


def r_squared(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot."""
    y, y_hat = np.asarray(y, dtype=np.float64), np.asarray(y_hat, dtype=np.float64)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - y_hat) ** 2)) / ss_tot


def _check_points(r: np.ndarray, d: np.ndarray, n_params: int) -> str:
    if r.shape != d.shape or r.ndim != 1:
        return f"rates {r.shape} and distortions {d.shape} differ"
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(d))):
        return "non-finite rates or distortions"
    if r.size < n_params + 1:
        return f"{r.size} points for {n_params} parameters (need at least {n_params + 1})"
    if np.unique(r).size < n_params:
        return f"only {np.unique(r).size} distinct rates for {n_params} parameters"
    if float(np.ptp(d)) <= 1e-12 * max(1.0, float(np.abs(d).max())):
        return f"distortion constant ({float(d[0]):.4g}) at every rate: no rate dependence to fit"
    return ""


def _curve_fit(
    fn: Callable[..., np.ndarray],
    r: np.ndarray,
    d: np.ndarray,
    p0: Sequence[float],
    bounds: tuple[Sequence[float], Sequence[float]],
    maxfev: int,
) -> tuple[np.ndarray, float] | None:
    from scipy.optimize import OptimizeWarning, curve_fit

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            popt, _ = curve_fit(fn, r, d, p0=list(p0), bounds=bounds, maxfev=maxfev)
    except (RuntimeError, ValueError):
        return None
    pred = fn(r, *popt)
    if not np.all(np.isfinite(pred)):
        return None
    return popt, r_squared(d, pred)


def fit_texture(rates: Sequence[float], distortions: Sequence[float], maxfev: int = 20000) -> Fit:
    """Fit D_t = a1 e^(b1 R_t) to per-QP1 (rate, MSE) points."""
    r, d = np.asarray(rates, dtype=np.float64), np.asarray(distortions, dtype=np.float64)
    why = _check_points(r, d, 2)
    if why:
        return Fit("texture", False, n_points=int(r.size), reason=why)
    starts: list[tuple[float, float]] = []
    if np.all(d > 0):
        b, log_a = np.polyfit(r, np.log(d), 1)  # log-linear regression: a good start, not the answer
        starts.append((math.exp(log_a), b))
    span = float(np.ptp(r)) or 1.0
    starts.append((float(d.max()), -3.0 / span))
    best = _best(texture_model, r, d, starts, ([0.0, -np.inf], [np.inf, np.inf]), maxfev)
    if best is None:
        return Fit("texture", False, n_points=int(r.size), reason="curve_fit did not converge from any start")
    popt, r2 = best
    return Fit("texture", True, {"a1": float(popt[0]), "b1": float(popt[1])}, r2, int(r.size))


def fit_feature(rates: Sequence[float], distortions: Sequence[float], maxfev: int = 20000) -> Fit:
    """Fit D_f = a2 e^(b2 R_f) + c2 e^(d2 R_f) (a2, c2 >= 0) to per-QP2 (rate, error rate) points."""
    r, d = np.asarray(rates, dtype=np.float64), np.asarray(distortions, dtype=np.float64)
    why = _check_points(r, d, 4)
    if why:
        return Fit("feature", False, n_points=int(r.size), reason=why)
    span = float(np.ptp(r)) or 1.0
    lo, hi = float(d.min()), float(d.max())
    paper = PAPER_FEATURE_FIT
    starts = [
        (paper["a2"], paper["b2"], paper["c2"], paper["d2"]),
        (max(hi - lo, 1e-6), -5.0 / span, max(lo, 1e-6), 0.0),
        (max(hi - lo, 1e-6), -20.0 / span, max(lo, 1e-6), 1.0 / span),
    ]
    best = _best(feature_model, r, d, starts, ([0.0, -np.inf, 0.0, -np.inf], [np.inf] * 4), maxfev)
    if best is None:
        return Fit("feature", False, n_points=int(r.size), reason="curve_fit did not converge from any start")
    popt, r2 = best
    names = ("a2", "b2", "c2", "d2")
    return Fit("feature", True, {k: float(v) for k, v in zip(names, popt)}, r2, int(r.size))


def _best(
    fn: Callable[..., np.ndarray],
    r: np.ndarray,
    d: np.ndarray,
    starts: Sequence[Sequence[float]],
    bounds: tuple[Sequence[float], Sequence[float]],
    maxfev: int,
) -> tuple[np.ndarray, float] | None:
    results = [res for p0 in starts if (res := _curve_fit(fn, r, d, _inside(p0, bounds), bounds, maxfev))]
    return max(results, key=lambda x: x[1]) if results else None


def _inside(p0: Sequence[float], bounds: tuple[Sequence[float], Sequence[float]]) -> list[float]:
    """``p0`` moved strictly inside the bounds (curve_fit's trf method requires it)."""
    return [min(max(float(v), lo + 1e-12 if np.isfinite(lo) else -np.inf), hi) for v, lo, hi in zip(p0, *bounds)]
