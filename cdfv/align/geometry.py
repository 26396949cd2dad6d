"""Face alignment maths (thesis §5.4, paper §III.B), pure functions on numpy arrays.

Pipeline for one detected face (RGB uint8):

1. crop to the detection box ``[x1, y1, x2, y2]``;
2. rotate the crop about its centre by the eye-line angle (retina-face's alignment: the line from
   the subject's right eye to the left eye becomes horizontal), black corners, same size. The
   retina-face release the paper used rotated with PIL ``Image.rotate`` (nearest neighbour), hence
   the default ``rotate_interpolation="nearest"``; later releases use bicubic (a param);
3. **additive** resize: ``m = size - max(h, w)``, new size ``(h + m, w + m)`` (180x120 → 224x164);
4. pad the short side with black symmetrically to ``size x size`` (224x224);
5. for codecs: :func:`cdfv.encode.border.codec_input` adds a 16 px black border (224 → 256).

The composed 2x3 affine matrix (source image → aligned face) is returned so landmarks are mapped
with exactly the transform the pixels went through. Coordinates are pixel-index coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

FACE_SIZE = 224

INTERPOLATION: dict[str, int] = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}


def interpolation_flag(name: str) -> int:
    """OpenCV flag of an interpolation name (``bilinear`` -> ``cv2.INTER_LINEAR``)."""
    try:
        return INTERPOLATION[name]
    except KeyError:
        raise ValueError(f"unknown interpolation {name!r}; use one of {sorted(INTERPOLATION)}") from None


@dataclass(frozen=True)
class AlignedFace:
    """An aligned ``size x size`` face and how it was made."""

    image: np.ndarray  # size x size x 3 uint8
    pad: tuple[int, int, int, int]  # top, bottom, left, right black padding
    angle: float  # degrees, counter-clockwise, applied about the crop centre
    matrix: np.ndarray  # 2x3 affine: source-image pixel coords -> aligned-face pixel coords
    landmarks: np.ndarray | None  # 5x2 landmarks in aligned-face coords (None when not given)


def eye_angle(right_eye: Sequence[float], left_eye: Sequence[float]) -> float:
    """Angle (degrees) of the eye line; rotating by it (counter-clockwise) levels the eyes.

    ``right_eye`` is the subject's right eye (image left), as in retina-face's landmarks. The angle is
    folded into ``(-90, 90]``: a detector that swaps the eyes (right eye on the image's right) gives
    the same eye line, and must level it, not turn the face upside down (a ±180° rotation).
    """
    angle = math.degrees(math.atan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0]))
    if angle > 90.0:
        angle -= 180.0
    elif angle <= -90.0:
        angle += 180.0
    return float(angle)


def additive_size(h: int, w: int, size: int = FACE_SIZE) -> tuple[int, int]:
    """Additive resize of the paper: ``m = size - max(h, w)``; returns ``(h + m, w + m)``.

    A side that would vanish (very elongated boxes) is kept at 1 px.
    """
    if h <= 0 or w <= 0:
        raise ValueError(f"empty crop {h}x{w}")
    m = size - max(h, w)
    return max(1, h + m), max(1, w + m)


def symmetric_pad(h: int, w: int, size: int = FACE_SIZE) -> tuple[int, int, int, int]:
    """Black padding ``(top, bottom, left, right)`` bringing ``h x w`` to ``size x size``.

    The odd pixel goes to the bottom/right.
    """
    if h > size or w > size:
        raise ValueError(f"{h}x{w} does not fit in {size}x{size}")
    dh, dw = size - h, size - w
    return dh // 2, dh - dh // 2, dw // 2, dw - dw // 2


def _h(m: np.ndarray) -> np.ndarray:
    """2x3 affine → 3x3 homogeneous."""
    return np.vstack([m, [0.0, 0.0, 1.0]])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to Nx2 points."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def align_face(
    image: np.ndarray,
    box: Sequence[float],
    landmarks: np.ndarray | None = None,
    size: int = FACE_SIZE,
    interpolation: str = "bilinear",
    rotate_interpolation: str = "nearest",
) -> AlignedFace:
    """Crop ``box``, level the eyes, additive-resize so the longest side is ``size``, pad to square.

    ``landmarks`` (5x2, contract order right_eye, left_eye, nose, mouth_right, mouth_left, source
    coords) give the eye-line angle and are returned mapped into the aligned face; without them
    the crop is not rotated (e.g. the whole-image fallback).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
    H, W = image.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, W), min(y2, H)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"box {list(box)} is empty inside the {W}x{H} image")
    crop = image[y1:y2, x1:x2]
    h, w = crop.shape[:2]
    to_crop = np.array([[1.0, 0.0, -x1], [0.0, 1.0, -y1]])

    angle = 0.0
    if landmarks is not None:
        lm = np.asarray(landmarks, dtype=np.float64)
        angle = eye_angle(lm[0], lm[1])
    rot = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    if angle != 0.0:
        crop = cv2.warpAffine(
            crop,
            rot,
            (w, h),
            flags=interpolation_flag(rotate_interpolation),
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )

    nh, nw = additive_size(h, w, size)
    if (nh, nw) != (h, w):
        crop = cv2.resize(crop, (nw, nh), interpolation=interpolation_flag(interpolation))
    sx, sy = nw / w, nh / h
    # cv2.resize maps pixel centres: x' = (x + 0.5) * s - 0.5
    scale = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])

    top, bottom, left, right = symmetric_pad(nh, nw, size)
    out = cv2.copyMakeBorder(crop, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    shift = np.array([[1.0, 0.0, left], [0.0, 1.0, top]])

    matrix = (_h(shift) @ _h(scale) @ _h(rot) @ _h(to_crop))[:2]
    mapped = transform_points(matrix, landmarks) if landmarks is not None else None
    return AlignedFace(
        image=np.ascontiguousarray(out), pad=(top, bottom, left, right), angle=angle, matrix=matrix, landmarks=mapped
    )
