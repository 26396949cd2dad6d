"""Scalar quantisation of normalised deep features (Li et al. 2019 §II, eqs. 1-2), pure numpy.

* Q_step = 2^((QP - 4)/6) / s with s = 2^10, i.e. 2^((QP - 4)/6 - 10) (eq. 1): the HEVC step size law,
  shifted so a unit-norm feature's components (|c| <= 1) get a useful range of levels.
* l = floor(c / Q_step) (eq. 2): truncation towards minus infinity.
* Reconstruction (not stated by the paper; our choice): the **midpoint** of the quantisation cell,
  c_hat = (l + 1/2) Q_step. ``floor`` maps c to the cell [l Q, (l + 1) Q), so the midpoint is the
  reconstruction with the smallest worst-case error, |c - c_hat| <= Q_step / 2 per component, and it
  is sign-symmetric: cells l and -l-1 reconstruct to +-(l + 1/2) Q_step.
"""

from __future__ import annotations

import numpy as np

#: s of eq. 1 (the paper's empirically chosen scale factor).
SCALE = 2.0**10


def q_step(qp: float) -> float:
    """Q_step of eq. 1 for quantisation parameter ``qp``."""
    return float(2.0 ** ((qp - 4.0) / 6.0) / SCALE)


def l2_normalise(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float64); a zero row is an error (it has no direction)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(norms)):
        bad = np.flatnonzero((norms[:, 0] == 0) | ~np.isfinite(norms[:, 0]))
        raise ValueError(f"feature rows {bad[:10].tolist()} have zero or non-finite norm")
    return x / norms


def quantise(c: np.ndarray, qp: float) -> np.ndarray:
    """Levels l = floor(c / Q_step) (eq. 2) as int32."""
    return np.floor(np.asarray(c, dtype=np.float64) / q_step(qp)).astype(np.int32)


def dequantise(levels: np.ndarray, qp: float) -> np.ndarray:
    """Midpoint reconstruction c_hat = (l + 1/2) Q_step (float64)."""
    return (np.asarray(levels, dtype=np.float64) + 0.5) * q_step(qp)
