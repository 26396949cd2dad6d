"""The 160x160 face crops both streams code (Li et al. 2019 §IV-A: "cropped and resized to 160x160 by MTCNN").

A box crop as FaceNet's data preparation makes it: the detection box grown by ``margin`` pixels *of the
output crop* (half on each side; in source pixels ``margin * box_side / (size - margin)``), clipped to
the image, and resized to ``size x size``. Pure numpy / OpenCV.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from cdfv.align.geometry import interpolation_flag


def margin_window(
    box: Sequence[float], width: int, height: int, size: int, margin: int
) -> tuple[float, float, float, float]:
    """The source window ``[x1, y1, x2, y2]`` (x2/y2 exclusive) of the box grown by the output margin, clipped."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"empty detection box {list(box)}")
    if not 0 <= margin < size:
        raise ValueError(f"margin {margin} must be in [0, size={size})")
    mx = margin * (x2 - x1) / (size - margin)
    my = margin * (y2 - y1) / (size - margin)
    return (
        max(x1 - mx / 2.0, 0.0),
        max(y1 - my / 2.0, 0.0),
        min(x2 + mx / 2.0, float(width)),
        min(y2 + my / 2.0, float(height)),
    )


def box_crop(
    image: np.ndarray, box: Sequence[float], size: int = 160, margin: int = 32, interpolation: str = "area"
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """``(size x size x 3 crop, source window)`` of an RGB uint8 image around a detection box."""
    h, w = image.shape[:2]
    wx1, wy1, wx2, wy2 = margin_window(box, w, h, size, margin)
    x1, y1 = int(round(wx1)), int(round(wy1))
    x2, y2 = max(int(round(wx2)), x1 + 1), max(int(round(wy2)), y1 + 1)
    window = np.ascontiguousarray(image[y1:y2, x1:x2])
    crop = cv2.resize(window, (size, size), interpolation=interpolation_flag(interpolation))
    return np.ascontiguousarray(crop, dtype=np.uint8), (float(x1), float(y1), float(x2), float(y2))
