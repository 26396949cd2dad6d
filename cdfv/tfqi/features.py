"""Deep features of the face crops (Li et al. 2019 §II: "the output of the last layer", FaceNet).

* :class:`FaceNetExtractor` — facenet-pytorch's ``InceptionResnetV1`` with the VGGFace2 weights on the
  160x160 crop, standardised as FaceNet expects ((x - 127.5) / 128). That package fetches its weights
  from GitHub at run time; here they are read from a file (``tfqi.feature.facenet_weights``, default
  the very path facenet-pytorch caches them to), and a missing file stops the stage naming the URL.
  Note: the paper's FaceNet emits 128-d features; the VGGFace2 InceptionResnetV1 that facenet-pytorch
  ships emits **512-d** ones (the feature coder works for any dimension).
* :class:`DlibCropExtractor` — offline: the dlib ResNet 128-d descriptor (:class:`~cdfv.evaluate.
  recognisers.DlibRecogniser`) on its 150x150 chip, whose 5-point landmarks are found inside the
  detection box of a box crop (the crop minus its margin; the whole crop for a similarity crop), on the
  **lossless** crop; a decoded crop is chipped with the same geometry, so the codec changes pixels,
  never the alignment.

Every feature is L2-normalised (§II "deep features are normalized").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cdfv.config import TfqiFacesParams, TfqiFeatureParams
from cdfv.evaluate.recognisers import DlibRecogniser, RecogniserError
from cdfv.tfqi.quantise import l2_normalise

FACENET_URL = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt"
FACENET_FILE = "20180402-114759-vggface2.pt"


def default_facenet_weights() -> Path:
    """Where facenet-pytorch caches the VGGFace2 weights: ``$TORCH_HOME/checkpoints`` (~/.cache/torch)."""
    torch_home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(torch_home).expanduser() / "checkpoints" / FACENET_FILE


class FaceNetExtractor:
    """FaceNet (InceptionResnetV1, VGGFace2 weights), 512-d unit vectors, 160x160 RGB input."""

    name = "FaceNet"
    dim = 512
    needs_geometry = False

    def __init__(self, weights: str | os.PathLike[str] | None = None, device: str = "auto") -> None:
        try:
            import torch
            from facenet_pytorch import InceptionResnetV1
        except ImportError as err:
            raise RecogniserError(
                f"the FaceNet extractor needs facenet-pytorch: pip install --no-deps facenet-pytorch==2.6.0 ({err}); "
                "or set tfqi.feature.extractor: dlib"
            ) from None
        path = Path(weights).expanduser() if weights else default_facenet_weights()
        if not path.is_file():
            raise RecogniserError(
                f"{path}: FaceNet weights missing (facenet-pytorch downloads them at run time from {FACENET_URL}). "
                f"Download that file to {path}, or point tfqi.feature.facenet_weights at your copy; "
                "offline, tfqi.feature.extractor: dlib uses the bundled dlib 128-d recogniser."
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
            raise RecogniserError(f"{path}: not a readable PyTorch state dict ({err}); download it again") from None
        model = InceptionResnetV1(pretrained=None, classify=False)
        state = {k: v for k, v in state.items() if not k.startswith("logits.")}  # the 8,631-class head is unused
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RecogniserError(
                f"{path}: not InceptionResnetV1 weights (missing {list(missing)[:3]}, "
                f"unexpected {list(unexpected)[:3]})"
            )
        self.device = torch.device(
            "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
        )
        self.model = model.eval().to(self.device)

    def geometry(self, originals: np.ndarray) -> None:
        return None

    def embed(self, batch: np.ndarray, geometry: Sequence[Any] | None = None) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device).permute(0, 3, 1, 2).float()
        with torch.inference_mode():
            return self.model((x - 127.5) / 128.0).float().cpu().numpy()


class DlibCropExtractor(DlibRecogniser):
    """dlib 128-d descriptor on a face crop: landmarks searched inside ``face_box`` (default the whole crop)."""

    def __init__(self, face_box: tuple[int, int, int, int] | None = None) -> None:
        super().__init__()
        self.face_box = face_box

    def geometry(self, originals: np.ndarray) -> list[Any]:
        out = []
        for img in originals:
            h, w = img.shape[:2]
            x1, y1, x2, y2 = self.face_box or (0, 0, w - 1, h - 1)
            out.append(self._shape(np.ascontiguousarray(img), self._dlib.rectangle(x1, y1, x2, y2)))
        return out


def crop_face_box(faces: TfqiFacesParams) -> tuple[int, int, int, int] | None:
    """Where the detection box lies in a box crop (the crop minus its margin); None for similarity crops."""
    if faces.crop != "box":
        return None
    half = faces.margin / 2.0
    lo, hi = int(round(half)), int(round(faces.size - half)) - 1
    return (lo, lo, hi, hi)


def build_extractor(params: TfqiFeatureParams, faces: TfqiFacesParams) -> FaceNetExtractor | DlibCropExtractor:
    """The extractor ``tfqi.feature.extractor`` names."""
    if params.extractor == "facenet":
        return FaceNetExtractor(params.facenet_weights, params.device)
    return DlibCropExtractor(crop_face_box(faces))


def embed_images(
    extractor: FaceNetExtractor | DlibCropExtractor,
    images: Sequence[np.ndarray],
    originals: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """L2-normalised ``(N, dim)`` features of ``images``; dlib's alignment comes from ``originals`` when given."""
    if not images:
        return np.zeros((0, extractor.dim), np.float32)
    batch = np.stack(images)
    geometry = extractor.geometry(np.stack(originals) if originals is not None else batch)
    return l2_normalise(extractor.embed(batch, geometry)).astype(np.float32)
