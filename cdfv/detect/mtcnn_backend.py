"""MTCNN (Zhang et al. 2016) through facenet-pytorch — the detector of Bian et al. 2019 (§2.3, §3.2).

facenet-pytorch ships the P-Net / R-Net / O-Net weights inside the package (``facenet_pytorch/data``),
so this backend runs offline. The three-stage cascade runs batched over images of equal size (LFW is
all 250x250); the O-Net probability of a face is its score. P-Net and R-Net keep their own
thresholds (``detect.mtcnn.stage_thresholds``, facenet-pytorch's 0.6 / 0.7); the O-Net threshold is
the lowest threshold of the walk-down schedule, so one pass returns every candidate the centre
heuristic may pick (:mod:`cdfv.detect.heuristic`).

Landmarks: MTCNN returns, in image order, the eye on the image's left, the eye on the image's right,
the nose, the mouth corner on the image's left and the one on the right — i.e. the subject's right
eye, left eye, nose, right and left mouth corners: the project's contract
(:data:`cdfv.detect.base.LANDMARK_NAMES`) in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cdfv.detect.base import Detector, Face
from cdfv.errors import CdfvError

INSTALL_HINT = (
    "detect.backend / detect_lfw_mtcnn need facenet-pytorch: "
    "pip install --no-deps facenet-pytorch==2.6.0 (its torch/Pillow pins are too old for this project; "
    "`make setup` does this)"
)


class MtcnnUnavailableError(CdfvError, ImportError):
    """facenet-pytorch (and its bundled MTCNN weights) is not installed."""


def _networks() -> tuple[type, type, type, object]:
    try:
        from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
        from facenet_pytorch.models.utils.detect_face import detect_face
    except ImportError as err:
        raise MtcnnUnavailableError(f"{INSTALL_HINT} ({err})") from None
    return PNet, RNet, ONet, detect_face


def pick_device(device: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class MtcnnDetector(Detector):
    """facenet-pytorch MTCNN with its bundled weights; batched over equal-size images."""

    name = "mtcnn"

    def __init__(
        self,
        min_face_size: int = 20,
        stage_thresholds: Sequence[float] = (0.6, 0.7),
        factor: float = 0.709,
        device: str = "auto",
        batch_size: int = 16,
    ) -> None:
        super().__init__()
        import torch

        pnet, rnet, onet, self._detect_face = _networks()
        self.device = torch.device(pick_device(device))
        try:
            self.pnet, self.rnet, self.onet = (n().eval().to(self.device) for n in (pnet, rnet, onet))
        except FileNotFoundError as err:  # the weights are package data
            raise MtcnnUnavailableError(f"MTCNN weights missing from facenet-pytorch ({err}); {INSTALL_HINT}") from None
        self.min_face_size = int(min_face_size)
        self.stage_thresholds = (float(stage_thresholds[0]), float(stage_thresholds[1]))
        self.factor = float(factor)
        self.batch_size = max(1, int(batch_size))
        self.network_calls = 0

    def _run(self, batch: np.ndarray, min_score: float) -> list[list[Face]]:
        import torch

        self.network_calls += 1
        self.forward_passes += batch.shape[0]
        with torch.inference_mode():
            boxes, points = self._detect_face(
                batch,
                self.min_face_size,
                self.pnet,
                self.rnet,
                self.onet,
                [*self.stage_thresholds, float(min_score)],
                self.factor,
                self.device,
            )
        out = []
        for b, p in zip(boxes, points, strict=True):
            b, p = np.asarray(b, dtype=np.float64), np.asarray(p, dtype=np.float64)
            faces = [
                Face(score=float(b[k, 4]), box=tuple(b[k, :4].tolist()), landmarks=p[k].reshape(5, 2))
                for k in range(len(b))
                if b[k, 4] >= min_score
            ]
            out.append(sorted(faces, key=lambda f: -f.score))
        return out

    def detect_batch(self, images: Sequence[np.ndarray], min_score: float) -> list[list[Face]]:
        results: list[list[Face]] = [[] for _ in images]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"MTCNN expects HxWx3 RGB images, got {image.shape}")
            by_shape.setdefault(image.shape, []).append(i)
        for idx in by_shape.values():
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s : s + self.batch_size]
                batch = np.stack([np.ascontiguousarray(images[i], dtype=np.uint8) for i in chunk])
                for i, faces in zip(chunk, self._run(batch, min_score), strict=True):
                    results[i] = faces
        return results
