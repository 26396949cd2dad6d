"""Face detection: backends behind one interface + the paper's centre heuristic.

``make_detector(params.detect, weights)`` builds the configured backend (``weights``: the verified
RetinaFace file from :func:`cdfv.weights.retinaface_path`); ``schedule(params.detect)`` gives its
threshold walk-down (RetinaFace: 0.985 → 0.7 by 0.005; dlib: its own score scale; MTCNN: O-Net
probabilities, ``detect.mtcnn.thresholds``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cdfv.detect.base import LANDMARK_COLUMNS, LANDMARK_NAMES, Detector, Face, clip_box
from cdfv.detect.heuristic import Choice, choose_face, fallback_box, threshold_steps

if TYPE_CHECKING:
    from cdfv.config import DetectParams, ThresholdSchedule

__all__ = [
    "LANDMARK_COLUMNS",
    "LANDMARK_NAMES",
    "Choice",
    "Detector",
    "Face",
    "choose_face",
    "clip_box",
    "fallback_box",
    "make_detector",
    "schedule",
    "threshold_steps",
]


def schedule(params: DetectParams) -> ThresholdSchedule:
    """The threshold schedule of the configured backend."""
    if params.backend == "dlib":
        return params.dlib.thresholds
    if params.backend == "mtcnn":
        return params.mtcnn.thresholds
    return params.thresholds


def make_detector(params: DetectParams, weights: Path | None = None) -> Detector:
    """Instantiate the backend named by ``detect.backend`` (RetinaFace loads ``weights``)."""
    if params.backend == "dlib":
        from cdfv.detect.dlib_backend import DlibDetector

        d = params.dlib
        return DlibDetector(model=d.model, upsample=d.upsample, landmarks=d.landmarks)
    if params.backend == "retinaface":
        from cdfv.detect.retinaface_backend import RetinaFaceDetector

        r = params.retinaface
        return RetinaFaceDetector(
            weights=weights,
            allow_upscaling=r.allow_upscaling,
            device=r.device,
            batch_size=r.batch_size,
        )
    if params.backend == "mtcnn":
        from cdfv.detect.mtcnn_backend import MtcnnDetector

        m = params.mtcnn
        return MtcnnDetector(
            min_face_size=m.min_face_size,
            stage_thresholds=m.stage_thresholds,
            factor=m.factor,
            device=m.device,
            batch_size=m.batch_size,
        )
    raise ValueError(f"unknown detect.backend {params.backend!r}")  # pragma: no cover (validated)
