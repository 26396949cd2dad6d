"""Similarity-transform alignment to 5 reference points (SphereFace / CosFace crops; Bian et al. §3.2).

The 5 detected landmarks (subject's right eye, left eye, nose, right and left mouth corner; pixel-index
coordinates) are mapped onto a reference template (``align.references``, e.g. the 96x112
``sphereface_96x112`` points) by the **least-squares similarity transform** (rotation, uniform scale,
translation; no reflection, no shear): with the linear parametrisation ``[[a, -b, tx], [b, a, ty]]``
the 10 equations ``M · p_i = q_i`` are solved in the least-squares sense (the 2-D Umeyama solution,
what ``skimage.transform.SimilarityTransform.estimate`` computes). The face is then resampled with
``cv2.warpAffine`` into ``width x height`` with black outside the source image.

When no face was found the recorded fallback box is used instead: the template rectangle, scaled
uniformly to fit the box and centred in it, gives synthetic landmarks, so the same code path crops
the box's centre to the template's aspect ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from cdfv.align.geometry import interpolation_flag, transform_points
from cdfv.config import ReferenceSet


@dataclass(frozen=True)
class SimilarityFace:
    """A face aligned to a reference template and the transform that made it."""

    image: np.ndarray  # height x width x 3 uint8
    matrix: np.ndarray  # 2x3: source pixel coords -> aligned pixel coords
    landmarks: np.ndarray  # 5x2 source landmarks mapped into the aligned face
    scale: float
    angle: float  # degrees, counter-clockwise rotation applied
    residual: float  # RMS distance (aligned px) between the mapped landmarks and the template


def reference_points(ref: ReferenceSet) -> np.ndarray:
    """The template as a 5x2 float array."""
    return np.asarray(ref.points, dtype=np.float64).reshape(5, 2)


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (2x3) mapping the Nx2 points ``src`` onto ``dst`` (N >= 2)."""
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two equal Nx2 point sets (N >= 2), got {src.shape} and {dst.shape}")
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - ms, dst - md
    norm = float((s**2).sum())
    if norm <= 1e-12:
        raise ValueError("landmarks are all at one point: no similarity transform")
    a = float((s * d).sum()) / norm  # sum(x u + y v) / sum(x^2 + y^2)
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / norm  # sum(x v - y u) / sum(x^2 + y^2)
    rot = np.array([[a, -b], [b, a]])
    t = md - rot @ ms
    return np.hstack([rot, t[:, None]])


def box_landmarks(box: Sequence[float], ref: ReferenceSet) -> np.ndarray:
    """Synthetic landmarks for a no-face fallback box: the template fitted (uniform scale) and centred in it."""
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = x2 - x1, y2 - y1
    if bw <= 0 or bh <= 0:
        raise ValueError(f"empty box {list(box)}")
    s = min(bw / ref.width, bh / ref.height)
    ox, oy = x1 + (bw - s * ref.width) / 2.0, y1 + (bh - s * ref.height) / 2.0
    return reference_points(ref) * s + np.array([ox, oy])


def align_to_reference(
    image: np.ndarray, landmarks: np.ndarray, ref: ReferenceSet, interpolation: str = "bilinear"
) -> SimilarityFace:
    """Warp ``image`` (HxWx3 uint8) so its 5 ``landmarks`` land on ``ref``'s points (least squares)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    target = reference_points(ref)
    m = similarity_matrix(lm, target)
    out = cv2.warpAffine(
        np.ascontiguousarray(image),
        m,
        (ref.width, ref.height),
        flags=interpolation_flag(interpolation),
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    mapped = transform_points(m, lm)
    return SimilarityFace(
        image=np.ascontiguousarray(out),
        matrix=m,
        landmarks=mapped,
        scale=float(np.hypot(m[0, 0], m[1, 0])),
        angle=float(np.degrees(np.arctan2(m[1, 0], m[0, 0]))),
        residual=float(np.sqrt(((mapped - target) ** 2).sum(axis=1).mean())),
    )


def realign(image: np.ndarray, source: ReferenceSet, ref: ReferenceSet, interpolation: str = "bilinear") -> np.ndarray:
    """A face already aligned to template ``source`` re-aligned to ``ref`` (its landmarks = ``source``'s points).

    Pre-aligned 112x112 training faces (``arcface_112x112``) → ``sphereface_96x112`` is a pure
    translation by -8 px in x: exactly the central 96 columns, no resampling.
    """
    if image.shape[:2] != (source.height, source.width):
        raise ValueError(
            f"image is {image.shape[1]}x{image.shape[0]}, but template {source.width}x{source.height} was named"
        )
    return align_to_reference(image, reference_points(source), ref, interpolation).image
