"""Rate and distortion: bpp, PSNR, MS-SSIM and Bjøntegaard tables between codec curves (pure).

bpp = bits / pixels (paper eq. 7). Each point is reported over the 256^2 codec input and over the
unpadded 224^2 face (the denominator is ambiguous in the thesis, spec §4). Distortion is measured on
the 224^2 face (the 16 px black border removed), which is what ResNet50 sees.
BD deltas reuse :mod:`cdfv.evaluate.bd` (VCEG-M33 cubic fit, or PCHIP).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cdfv.evaluate.bd import BdError, BdMethod, bd_metric, bd_rate


def bpp(n_bytes: int, pixels: int) -> float:
    """Bits per pixel of ``n_bytes`` over ``pixels``."""
    if pixels <= 0:
        raise ValueError(f"pixels must be positive, got {pixels}")
    return n_bytes * 8.0 / pixels


def psnr(ref: np.ndarray, test: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB over all samples (inf for identical images)."""
    if ref.shape != test.shape:
        raise ValueError(f"shape mismatch {ref.shape} vs {test.shape}")
    mse = float(np.mean((ref.astype(np.float64) - test.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


_MS_WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])


def _gauss_win(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _valid_filter(img: np.ndarray, win: np.ndarray) -> np.ndarray:
    """'Valid' separable Gaussian filtering of an HxWxC float64 image (skips axes shorter than the window)."""
    import cv2

    r = len(win) // 2
    h, w = img.shape[:2]
    kx = win if w >= len(win) else np.array([1.0])
    ky = win if h >= len(win) else np.array([1.0])
    out = cv2.sepFilter2D(img, cv2.CV_64F, kx, ky, borderType=cv2.BORDER_REFLECT)
    out = out.reshape(img.shape)
    ry, rx = (r if len(ky) > 1 else 0), (r if len(kx) > 1 else 0)
    return out[ry : h - ry, rx : w - rx]


def _avg_pool2(img: np.ndarray) -> np.ndarray:
    """torch ``avg_pool2d(kernel 2, padding = size % 2)`` with zero padding counted."""
    ph, pw = img.shape[0] % 2, img.shape[1] % 2
    if ph or pw:
        img = np.pad(img, ((ph, ph), (pw, pw), (0, 0)))
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    return img[:h, :w].reshape(h // 2, 2, w // 2, 2, -1).mean(axis=(1, 3))


def ms_ssim(ref: np.ndarray, test: np.ndarray, data_range: float = 255.0) -> float:
    """MS-SSIM of two HxWx3 images, averaged over channels (Wang et al. 2003).

    Numerically the same as ``pytorch_msssim.ms_ssim`` (11-tap sigma 1.5 Gaussian, 5 scales, its
    weights, K = (0.01, 0.03); checked by a unit test) but with OpenCV's separable filters in float64,
    ~50x faster on CPU than the torch version. Needs min(H, W) > 160 (224^2 faces qualify).
    """
    if ref.shape != test.shape or ref.ndim != 3:
        raise ValueError(f"expected two equal HxWxC images, got {ref.shape} vs {test.shape}")
    if min(ref.shape[:2]) <= 160:
        raise ValueError(f"MS-SSIM needs images larger than 160 px, got {ref.shape[:2]}")
    x, y = ref.astype(np.float64), test.astype(np.float64)
    win = _gauss_win()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for level in range(len(_MS_WEIGHTS)):
        mu1, mu2 = _valid_filter(x, win), _valid_filter(y, win)
        s11 = _valid_filter(x * x, win) - mu1 * mu1
        s22 = _valid_filter(y * y, win) - mu2 * mu2
        s12 = _valid_filter(x * y, win) - mu1 * mu2
        cs_map = (2 * s12 + c2) / (s11 + s22 + c2)
        cs = cs_map.reshape(-1, x.shape[2]).mean(axis=0)
        if level < len(_MS_WEIGHTS) - 1:
            values.append(np.maximum(cs, 0))
            x, y = _avg_pool2(x), _avg_pool2(y)
        else:
            ssim_map = (2 * mu1 * mu2 + c1) / (mu1 * mu1 + mu2 * mu2 + c1) * cs_map
            values.append(np.maximum(ssim_map.reshape(-1, x.shape[2]).mean(axis=0), 0))
    per_channel = np.prod(np.stack(values) ** _MS_WEIGHTS[:, None], axis=0)
    return float(per_channel.mean())


def ms_ssim_batch(ref: np.ndarray, test: np.ndarray) -> np.ndarray:
    """MS-SSIM per image of two (B, H, W, 3) uint8 batches (data range 255)."""
    if ref.shape != test.shape or ref.ndim != 4:
        raise ValueError(f"expected equal (B,H,W,3) batches, got {ref.shape} vs {test.shape}")
    return np.array([ms_ssim(a, b) for a, b in zip(ref, test, strict=True)])


def crop_border(img: np.ndarray, pad: int) -> np.ndarray:
    """Remove ``pad`` pixels on every side of an HxW(xC) image."""
    return img[pad : img.shape[0] - pad, pad : img.shape[1] - pad] if pad else img


@dataclass(frozen=True)
class RdPoint:
    """One codec x quality point: mean rate and distortion."""

    codec: str
    series: str
    bpp: float
    psnr: float
    ms_ssim: float


def curves(points: Sequence[RdPoint]) -> dict[str, list[RdPoint]]:
    """Group points by series (``JPEG``, ``HEVC``, ``Balle2018_mse`` ...), each sorted by rate."""
    out: dict[str, list[RdPoint]] = {}
    for p in points:
        out.setdefault(p.series, []).append(p)
    return {k: sorted(v, key=lambda p: p.bpp) for k, v in sorted(out.items())}


def bd_table(
    points: Sequence[RdPoint], anchor: str, metric: str = "psnr", method: BdMethod = "cubic"
) -> dict[str, dict[str, float | None]]:
    """BD-rate (%) and BD-<metric> of every series against ``anchor``.

    Returns ``{series: {"bd_rate": ..., "bd_<metric>": ...}}``; a delta that is undefined (too few
    points, no overlap) is None. Raises KeyError naming the series when ``anchor`` has no points.
    """
    by = curves(points)
    if anchor not in by:
        raise KeyError(f"anchor series {anchor!r} has no points (have: {', '.join(by) or 'none'})")
    a = by[anchor]
    ar, am = [p.bpp for p in a], [getattr(p, metric) for p in a]
    table: dict[str, dict[str, float | None]] = {}
    for series, pts in by.items():
        tr, tm = [p.bpp for p in pts], [getattr(p, metric) for p in pts]
        row: dict[str, float | None] = {}
        for key, fn in (("bd_rate", bd_rate), (f"bd_{metric}", bd_metric)):
            try:
                row[key] = fn(ar, am, tr, tm, method)
            except BdError:
                row[key] = None
        table[series] = row
    return table


def bd_markdown(tables: Mapping[str, Mapping[str, Mapping[str, float | None]]], anchor: str) -> str:
    """Markdown BD table: one row per series, columns per metric (``tables[metric][series]``)."""
    metrics = list(tables)
    series = sorted({s for t in tables.values() for s in t})
    head = ["series"] + [f"BD-rate % ({m})" for m in metrics] + [f"BD-{m}" for m in metrics]
    lines = [f"Bjøntegaard deltas vs **{anchor}** (negative BD-rate = fewer bits for the same quality).", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def fmt(v: float | None, digits: int) -> str:
        return "n/a" if v is None else f"{v:+.{digits}f}"

    for s in series:
        cells = [fmt(tables[m].get(s, {}).get("bd_rate"), 1) for m in metrics]
        cells += [fmt(tables[m].get(s, {}).get(f"bd_{m}"), 3 if m == "psnr" else 4) for m in metrics]
        lines.append("| " + " | ".join([s, *cells]) + " |")
    return "\n".join(lines) + "\n"
