"""Face recogniser plugins: image/latent batch -> embedding matrix.

* :class:`DlibRecogniser` — the off-the-shelf dlib ResNet (``face_recognition_models``, 128-d,
  extra ``offline``); no training needed, so decoded anchors can be evaluated with a frozen
  recogniser as related work does. dlib expects its own 150x150 chip: the 5-point dlib shape
  predictor runs on the **original** 224 face (the whole image as the face box, since the face
  is already cropped and aligned), and :func:`dlib.get_face_chip` with that geometry is applied
  to the image being embedded (original or decoded). So a codec changes only the pixels the
  network sees, never the alignment — the "crop then encode" semantics of pipeline B2.
* :class:`TorchRecogniser` — the trained ResNet50 (RGB faces) or cResNet39 (latents) checkpoints
  via :func:`cdfv.models.load_checkpoint`; ``model.embed`` gives the phase-2 2048-d embedding.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from cdfv.errors import CdfvError

InputKind = Literal["face", "latent"]


class RecogniserError(CdfvError, RuntimeError):
    """A recogniser that cannot be built (missing model file/package); the message says the fix."""


class Recogniser(Protocol):
    name: str
    input_kind: InputKind

    def embed(self, batch: np.ndarray, geometry: Sequence[Any] | None = None) -> np.ndarray:
        """``(B, ...)`` input -> ``(B, D)`` float32 embeddings."""
        ...

    def geometry(self, originals: np.ndarray) -> Sequence[Any] | None:
        """Per-image alignment computed on the original faces (``None`` if not needed)."""
        ...


class DlibRecogniser:
    """dlib ``face_recognition_model_v1`` (ResNet-29, 128-d) on 150x150 dlib face chips."""

    name = "Dlib"
    input_kind: InputKind = "face"
    needs_geometry = True  # alignment from the original face, applied to decoded ones too
    dim = 128

    def __init__(self, chip_size: int = 150, padding: float = 0.25) -> None:
        try:
            import dlib
            import face_recognition_models as frm
        except ImportError as err:
            raise RecogniserError(
                f"the Dlib recogniser needs the 'offline' extra: pip install 'cdfv[offline]' ({err})"
            ) from None
        self._dlib = dlib
        self._shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self._net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        self.chip_size, self.padding = chip_size, padding

    def geometry(self, originals: np.ndarray) -> list[Any]:
        """dlib 5-point shapes of each original face (box = whole image)."""
        out = []
        for img in originals:
            h, w = img.shape[:2]
            out.append(self._shape(np.ascontiguousarray(img), self._dlib.rectangle(0, 0, w - 1, h - 1)))
        return out

    def embed(self, batch: np.ndarray, geometry: Sequence[Any] | None = None) -> np.ndarray:
        shapes = geometry if geometry is not None else self.geometry(batch)
        if len(shapes) != len(batch):
            raise ValueError(f"{len(shapes)} shapes for {len(batch)} images")
        chips = [
            self._dlib.get_face_chip(np.ascontiguousarray(img), s, size=self.chip_size, padding=self.padding)
            for img, s in zip(batch, shapes)
        ]
        if not chips:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self._net.compute_face_descriptor(chips), dtype=np.float32)


class TorchRecogniser:
    """A trained cdfv checkpoint (ResNet50 on faces, cResNet39 on latents), eval mode, no flip TTA."""

    needs_geometry = False

    def __init__(
        self, name: str, checkpoint: str | os.PathLike[str], input_kind: InputKind, device: str = "auto"
    ) -> None:
        import torch

        from cdfv.models import load_checkpoint

        path = Path(checkpoint)
        if not path.is_file():
            if input_kind == "face":
                stage = "train_resnet50"
            else:  # listed under train.cresnet39.codecs (shards) or .online_codecs
                stage = f"train_cresnet39@{path.parent.name}` or `dvc repro train_cresnet39_online@{path.parent.name}"
            raise FileNotFoundError(f"{path}: checkpoint missing for {name}. Run `dvc repro {stage}` first.")
        self.name, self.input_kind = name, input_kind
        self.device = torch.device(
            "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
        )
        self.model = load_checkpoint(path).to(self.device).eval()

    def geometry(self, originals: np.ndarray) -> None:
        return None

    def embed(self, batch: np.ndarray, geometry: Sequence[Any] | None = None) -> np.ndarray:
        import torch

        from cdfv.models import resnet50_input

        with torch.inference_mode():
            if self.input_kind == "face":
                x = resnet50_input(batch, device=self.device)
            else:
                x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            return self.model.embed(x).float().cpu().numpy()


def checkpoint_path(recogniser: str, codec: str | None) -> Path:
    """Where the trained checkpoint of a recogniser lives (``models/resnet50/model.pt`` ...)."""
    from cdfv.paths import model_file

    if recogniser == "ResNet50":
        return model_file("resnet50")
    if recogniser == "cResNet39":
        if codec is None:
            raise ValueError("cResNet39 needs a codec")
        return model_file("cresnet39", codec)
    raise ValueError(f"{recogniser} has no checkpoint")


def build_recogniser(recogniser: str, codec: str | None, root: Path, device: str = "auto") -> Recogniser:
    """The plugin for a solution's recogniser name (``Dlib``, ``ResNet50``, ``cResNet39``)."""
    if recogniser == "Dlib":
        return DlibRecogniser()
    if recogniser == "ResNet50":
        return TorchRecogniser(recogniser, root / checkpoint_path(recogniser, None), "face", device)
    if recogniser == "cResNet39":
        return TorchRecogniser(recogniser, root / checkpoint_path(recogniser, codec), "latent", device)
    raise RecogniserError(f"unknown recogniser {recogniser!r}")
