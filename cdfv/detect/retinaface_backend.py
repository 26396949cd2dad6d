"""RetinaFace (PyPI ``retina-face``, PyTorch engine) — the paper's detector.

The network forward runs here, batched over images of equal size (LFW is all 250x250), on the GPU
when present; the per-image post-processing (anchor decoding, score filter, NMS 0.4, landmark
decoding) is retina-face's own ``RetinaFace.detect_faces``, fed the precomputed network outputs,
so boxes and landmarks are bit-for-bit the library's.

The weights (``retinaface.pth``) are ``weights.retinaface`` in ``params.yaml``: fetched like LFW on first
use, cached and sha256-verified on every use by :func:`cdfv.weights.retinaface_path`, which also
looks in ``$DEEPFACE_HOME/.deepface/weights`` first and, offline, names every place it looked, the
URL and ``detect.backend: dlib``. The detector receives the verified file.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cdfv.detect.base import Detector, Face
from cdfv.errors import CdfvError


class WeightsNotUsableError(CdfvError, ValueError):
    """A weights file that torch cannot load as RetinaFace's state dict."""


def _retinaface_modules() -> tuple[Any, Any, Any]:
    """Import retina-face on its PyTorch engine (never TensorFlow)."""
    os.environ.setdefault("DEEPFACE_BACKEND_ENGINE", "pytorch")
    from retinaface import RetinaFace as rf_api
    from retinaface.commons import preprocess
    from retinaface.model import retinaface_pth_model

    return rf_api, preprocess, retinaface_pth_model


def pick_device(device: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class _Replay:
    """A stand-in "model" handing retina-face's post-processing the outputs already computed."""

    def __init__(self, outputs: list[Any], shape: tuple[int, ...]) -> None:
        self.outputs = outputs
        self.shape = shape

    def __call__(self, x: Any) -> list[Any]:
        if tuple(x.shape) != self.shape:  # the library preprocessed differently: never silently mix
            raise RuntimeError(f"retina-face preprocessing mismatch: {tuple(x.shape)} != {self.shape}")
        return self.outputs


class RetinaFaceDetector(Detector):
    """Batched RetinaFace-ResNet50 loading ``weights`` (a verified ``retinaface.pth``, see
    :func:`cdfv.weights.retinaface_path`). ``pretrained=False`` keeps random weights (tests only)."""

    name = "retinaface"

    def __init__(
        self,
        weights: Path | None = None,
        allow_upscaling: bool = True,
        device: str = "auto",
        batch_size: int = 8,
        pretrained: bool = True,
    ) -> None:
        super().__init__()
        import torch

        if pretrained and weights is None:
            raise WeightsNotUsableError(
                "RetinaFace needs its weights file: pass cdfv.weights.retinaface_path(params) (weights.retinaface)"
            )
        path = Path(weights) if pretrained and weights is not None else None
        self._rf, self._pre, pth = _retinaface_modules()
        self.allow_upscaling = allow_upscaling
        self.batch_size = max(1, batch_size)
        self.device = torch.device(pick_device(device))
        net = pth.RetinaFace()
        if path is not None:
            try:
                net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            except (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError) as err:
                raise WeightsNotUsableError(
                    f"{path}: not a usable retinaface.pth ({str(err).splitlines()[0]}). Replace it (weights.retinaface "
                    "in params.yaml names the URL and sha256)."
                ) from None
        self.net = net.eval().to(self.device)
        self.network_calls = 0

    def _forward(self, tensors: np.ndarray) -> list[np.ndarray]:
        """One network call on an (B, H, W, 3) float batch; outputs as CPU NHWC arrays."""
        import torch

        self.network_calls += 1
        self.forward_passes += tensors.shape[0]
        with torch.inference_mode():
            outs = self.net(torch.from_numpy(tensors).to(self.device))
        return [o.float().cpu().numpy() for o in outs]

    def detect_batch(self, images: Sequence[np.ndarray], min_score: float) -> list[list[Face]]:
        import torch

        prepped = []
        for image in images:
            bgr = np.ascontiguousarray(image[:, :, ::-1])  # retina-face works on BGR arrays
            tensor, _, _ = self._pre.preprocess_image(bgr, self.allow_upscaling)
            prepped.append((bgr, tensor))
        results: list[list[Face]] = [[] for _ in images]
        # group equal shapes so each network call is one real batch
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, (_, t) in enumerate(prepped):
            by_shape.setdefault(t.shape, []).append(i)
        for shape, idx in by_shape.items():
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s : s + self.batch_size]
                outs = self._forward(np.concatenate([prepped[i][1] for i in chunk]))
                for b, i in enumerate(chunk):
                    per_image = [torch.from_numpy(o[b : b + 1]) for o in outs]
                    resp = self._rf.detect_faces(
                        prepped[i][0],
                        threshold=float(min_score),
                        model=_Replay(per_image, shape),
                        allow_upscaling=self.allow_upscaling,
                    )
                    results[i] = faces_from_response(resp)
        return results


def faces_from_response(resp: dict[str, Any]) -> list[Face]:
    """Convert ``RetinaFace.detect_faces`` output to :class:`Face` objects, best score first."""
    faces = []
    for item in (resp or {}).values():
        lm = item["landmarks"]
        points = np.array(
            [lm["right_eye"], lm["left_eye"], lm["nose"], lm["mouth_right"], lm["mouth_left"]], dtype=np.float64
        )
        faces.append(
            Face(score=float(item["score"]), box=tuple(float(v) for v in item["facial_area"]), landmarks=points)
        )
    return sorted(faces, key=lambda f: -f.score)
