"""Detector interface and result types shared by every backend.

A backend runs its network **once** per image at the lowest threshold of the schedule and
returns every candidate face; the centre heuristic (:mod:`cdfv.detect.heuristic`) then walks
the schedule down over those candidates without touching the network again.

Coordinates are pixel-index coordinates of the input image (pixel ``(i, j)`` has its centre at
``x=j, y=i``); boxes are ``[x1, y1, x2, y2]`` with the crop ``img[y1:y2, x1:x2]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The 5-landmark contract, in retina-face's order and naming. "right"/"left" are the
#: *subject's* sides: ``right_eye`` appears on the image's left (smaller x).
LANDMARK_NAMES: tuple[str, ...] = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")

#: Flat column names of the 10 landmark coordinates (``right_eye_x``, ``right_eye_y``, ...).
LANDMARK_COLUMNS: tuple[str, ...] = tuple(f"{n}_{a}" for n in LANDMARK_NAMES for a in ("x", "y"))


def landmarks_of(row: dict[str, Any]) -> np.ndarray | None:
    """5x2 landmarks of a detections (or faces) row, or None (no_face / unreadable)."""
    vals = [row.get(c) for c in LANDMARK_COLUMNS]
    if any(v is None for v in vals):
        return None
    return np.asarray(vals, dtype=np.float64).reshape(5, 2)


@dataclass(frozen=True)
class Face:
    """One candidate face: detector score, box ``[x1, y1, x2, y2]`` and 5 landmarks (5x2)."""

    score: float
    box: tuple[float, float, float, float]
    landmarks: np.ndarray = field(compare=False)

    def __post_init__(self) -> None:
        lm = np.asarray(self.landmarks, dtype=np.float64)
        if lm.shape != (5, 2):
            raise ValueError(f"landmarks must be 5x2 ({', '.join(LANDMARK_NAMES)}), got {lm.shape}")
        object.__setattr__(self, "landmarks", lm)
        if len(self.box) != 4:
            raise ValueError(f"box must be [x1, y1, x2, y2], got {self.box!r}")
        object.__setattr__(self, "box", tuple(float(v) for v in self.box))


class Detector(ABC):
    """A face detector backend.

    ``forward_passes`` counts the images that went through the network; the stage and the tests
    use it to check the paper's walk-down never re-runs the detector (one pass per image).
    """

    name: str = "base"

    def __init__(self) -> None:
        self.forward_passes = 0

    @abstractmethod
    def detect_batch(self, images: Sequence[np.ndarray], min_score: float) -> list[list[Face]]:
        """All candidate faces with ``score >= min_score`` for each RGB uint8 HxWx3 image."""

    def detect(self, image: np.ndarray, min_score: float) -> list[Face]:
        """Candidates of a single image (one forward pass)."""
        return self.detect_batch([image], min_score)[0]


def clip_box(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """Round a box to integer pixels and clip it to the image (``x2``/``y2`` exclusive)."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    return (
        min(max(x1, 0), width),
        min(max(y1, 0), height),
        min(max(x2, 0), width),
        min(max(y2, 0), height),
    )
