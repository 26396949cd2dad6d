"""Offline-capable detector: dlib (HOG or MMOD CNN) + the 68-point shape predictor.

Models come from the ``face-recognition-models`` package (extra ``offline``). The 68-point
iBUG predictor gives real mouth corners, so the 5-landmark contract is filled with measured
points (eye centres = mean of the 6 eye-contour points, nose tip = point 30, mouth corners =
points 48/54). With ``landmarks: five_point`` the smaller 5-point model is used instead: eye
centres = mean of its two eye-corner points, nose = its nose point, and the mouth corners are
*derived* by placing them 0.9 inter-ocular distances below each eye centre along the face's
vertical axis (documented approximation; the 5-point model has no mouth points).

Scores: HOG gives SVM margins (``run(img, upsample, adjust_threshold)``, so one pass returns every
window down to the schedule's lowest threshold); the CNN gives MMOD confidences and keeps
detections above its own internal threshold of 0, so its schedule should stop at >= 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from cdfv.detect.base import Detector, Face

# iBUG 68-point indices (image-left eye = subject's right eye)
_RIGHT_EYE = slice(36, 42)
_LEFT_EYE = slice(42, 48)
_NOSE_TIP = 30
_MOUTH_RIGHT = 48
_MOUTH_LEFT = 54


def _import_dlib():  # noqa: ANN202
    try:
        import dlib
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("detect.backend=dlib needs dlib: pip install 'cdfv[offline]' (dlib-bin)") from err
    return dlib


def model_path(kind: Literal["shape68", "shape5", "cnn"]) -> Path:
    """Location of a model file shipped by ``face-recognition-models``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its pkg_resources deprecation warning
            import face_recognition_models as frm
    except ImportError as err:  # pragma: no cover
        raise ImportError("detect.backend=dlib needs face-recognition-models: pip install 'cdfv[offline]'") from err
    path = Path(
        {
            "shape68": frm.pose_predictor_model_location,
            "shape5": frm.pose_predictor_five_point_model_location,
            "cnn": frm.cnn_face_detector_model_location,
        }[kind]()
    )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dlib model missing; reinstall face-recognition-models==0.3.0")
    return path


def landmarks_from_68(points: np.ndarray) -> np.ndarray:
    """Map iBUG-68 points (68x2) to the 5-landmark contract (5x2)."""
    return np.stack(
        [
            points[_RIGHT_EYE].mean(axis=0),
            points[_LEFT_EYE].mean(axis=0),
            points[_NOSE_TIP],
            points[_MOUTH_RIGHT],
            points[_MOUTH_LEFT],
        ]
    )


def landmarks_from_5(points: np.ndarray, mouth_drop: float = 0.9) -> np.ndarray:
    """Map dlib's 5-point model (2 corners per eye + nose base) to the 5-landmark contract.

    dlib's 5-point order: 0,1 = corners of the image-right eye (subject's left), 2,3 = corners of
    the image-left eye (subject's right), 4 = nose base. Mouth corners are derived: each eye
    centre moved ``mouth_drop`` inter-ocular distances along the downward face axis.
    """
    left_eye = points[0:2].mean(axis=0)
    right_eye = points[2:4].mean(axis=0)
    eye_vec = left_eye - right_eye
    iod = float(np.hypot(*eye_vec)) or 1.0
    down = np.array([-eye_vec[1], eye_vec[0]]) / iod  # eye line rotated +90° (y grows downwards)
    return np.stack(
        [right_eye, left_eye, points[4], right_eye + mouth_drop * iod * down, left_eye + mouth_drop * iod * down]
    )


class DlibDetector(Detector):
    """dlib HOG (default) or MMOD-CNN detector with landmarks from a dlib shape predictor."""

    name = "dlib"

    def __init__(
        self,
        model: Literal["hog", "cnn"] = "hog",
        upsample: int = 1,
        landmarks: Literal["sixty_eight", "five_point"] = "sixty_eight",
    ) -> None:
        super().__init__()
        dlib = _import_dlib()
        self._dlib = dlib
        self.model = model
        self.upsample = upsample
        self.landmarks = landmarks
        if model == "hog":
            self._hog = dlib.get_frontal_face_detector()
        elif model == "cnn":
            self._cnn = dlib.cnn_face_detection_model_v1(str(model_path("cnn")))
        else:
            raise ValueError(f"unknown dlib model {model!r}: use 'hog' or 'cnn'")
        kind = "shape68" if landmarks == "sixty_eight" else "shape5"
        self._shape = dlib.shape_predictor(str(model_path(kind)))

    def _raw(self, image: np.ndarray, min_score: float) -> list[tuple[object, float]]:
        if self.model == "hog":
            rects, scores, _ = self._hog.run(image, self.upsample, float(min_score))
            return list(zip(rects, scores))
        dets = self._cnn(image, self.upsample)
        return [(d.rect, float(d.confidence)) for d in dets]

    def _face(self, image: np.ndarray, rect: object, score: float) -> Face:
        shape = self._shape(image, rect)
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        lm = landmarks_from_68(pts) if self.landmarks == "sixty_eight" else landmarks_from_5(pts)
        # dlib rectangles are inclusive: right/bottom + 1 gives the exclusive crop bound
        box = (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)  # type: ignore[attr-defined]
        return Face(score=float(score), box=box, landmarks=lm)

    def detect_batch(self, images: Sequence[np.ndarray], min_score: float) -> list[list[Face]]:
        out: list[list[Face]] = []
        for image in images:
            image = np.ascontiguousarray(image, dtype=np.uint8)
            self.forward_passes += 1
            faces = [self._face(image, r, s) for r, s in self._raw(image, min_score) if s >= min_score]
            out.append(sorted(faces, key=lambda f: -f.score))
        return out
