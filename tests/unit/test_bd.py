"""Bjøntegaard deltas on curves with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from cdfv.rd.bd import BdError, bd_metric, bd_rate

RATE = np.array([0.10, 0.17, 0.38, 0.65])  # the paper's target rates (bpp)
TAR = np.array([0.829, 0.892, 0.903, 0.903 + 1e-3])  # ResNet50_Balle2018_mse_Qn (Table II), made monotonic


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_half_the_rate_is_minus_fifty_percent(method: str) -> None:
    # (a near-flat top end makes the cubic fit of ln(rate) on TAR ill-conditioned: 1e-6 tolerance)
    assert bd_rate(RATE, TAR, RATE * 0.5, TAR, method) == pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(RATE, TAR, RATE * 1.2, TAR, method) == pytest.approx(20.0, abs=1e-6)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_constant_metric_offset(method: str) -> None:
    assert bd_metric(RATE, TAR, RATE, TAR + 0.02, method) == pytest.approx(0.02, abs=1e-12)
    assert bd_metric(RATE, TAR, RATE, TAR, method) == pytest.approx(0.0, abs=1e-12)


def test_linear_in_log_rate_closed_form() -> None:
    # metric = a + b ln r; test shifted by rate factor k => metric offset b ln k over the overlap
    b, k = 0.05, 0.8
    r = np.array([0.1, 0.2, 0.4, 0.8])
    m = 0.5 + b * np.log(r)
    assert bd_metric(r, m, r * k, m, "cubic") == pytest.approx(-b * np.log(k), rel=1e-9)
    assert bd_rate(r, m, r * k, m, "cubic") == pytest.approx((k - 1) * 100, rel=1e-9)


def test_errors() -> None:
    with pytest.raises(BdError, match=">= 4"):
        bd_rate(RATE[:3], TAR[:3], RATE[:3], TAR[:3])
    with pytest.raises(BdError, match="overlap"):
        bd_metric(RATE, TAR, RATE * 100, TAR)
    with pytest.raises(BdError, match="positive"):
        bd_rate(np.array([0.0, 0.1, 0.2, 0.3]), TAR, RATE, TAR)
    with pytest.raises(BdError, match="strictly increasing"):
        bd_rate(RATE, np.array([0.8, 0.9, 0.85, 0.95]), RATE, TAR, "pchip")
