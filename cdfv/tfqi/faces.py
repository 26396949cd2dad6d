"""The 160x160 face crops both streams code (Li et al. 2019 §IV-A: "cropped and resized to 160x160 by MTCNN").

Two crops from an MTCNN detection (``tfqi.faces.crop``), pure numpy / OpenCV:

* ``box`` (the paper's wording, FaceNet's data preparation): the detection box grown by ``margin`` pixels
  *of the output crop* (half on each side; in source pixels ``margin * box_side / (size - margin)``),
  clipped to the image, and resized to ``size x size`` (its aspect ratio is not kept, as FaceNet's);
* ``similarity``: the 5 landmarks warped onto a square template (``align.references``, e.g.
  ``facenet_160x160``) by the least-squares similarity of :mod:`cdfv.align.similarity`; a face the
  detector missed is cropped from its fallback box the same way (synthetic landmarks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from cdfv import schemas
from cdfv.align.geometry import interpolation_flag

if TYPE_CHECKING:
    from cdfv.config import ReferenceSet

#: The 10 landmark columns of the detections schema, in the project's landmark order (x, y per point).
LANDMARK_COLUMNS = tuple(n for n in schemas.LFW_DETECTIONS.names if n.endswith(("_x", "_y")))


def detection_landmarks(row: dict[str, object]) -> np.ndarray | None:
    """5x2 landmarks of a detections row, None when the detector found no face (fallback box)."""
    values = [row.get(c) for c in LANDMARK_COLUMNS]
    if len(values) != 10 or any(v is None for v in values):
        return None
    return np.asarray(values, dtype=np.float64).reshape(5, 2)


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


def similarity_crop(
    image: np.ndarray,
    landmarks: np.ndarray | None,
    box: Sequence[float],
    ref: ReferenceSet,
    interpolation: str = "bilinear",
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """``(template-size crop, source window)``: landmarks (or, when None, the box's synthetic ones) onto ``ref``.

    The window is the source-image bounding box of the crop's corners.
    """
    from cdfv.align.similarity import align_to_reference, box_landmarks

    lm = np.asarray(landmarks, dtype=np.float64) if landmarks is not None else box_landmarks(box, ref)
    face = align_to_reference(image, lm, ref, interpolation)
    inverse = cv2.invertAffineTransform(face.matrix)
    corners = np.array([[0, 0], [ref.width, 0], [0, ref.height], [ref.width, ref.height]], dtype=np.float64)
    src = corners @ inverse[:, :2].T + inverse[:, 2]
    (x1, y1), (x2, y2) = src.min(axis=0), src.max(axis=0)
    return face.image, (float(x1), float(y1), float(x2), float(y2))
