"""Face-verification networks of the paper and their checkpoints.

* :func:`resnet50_caffe` — ResNet50 of VGGFace2 (Caffe style), RGB 224x224 -> 2048.
* :func:`cresnet39` — compressed-domain cResNet39, latent N x 14 x 14 -> 2048.
* :func:`cresnet50` — the thesis's future-work cResNet50 (PixelShuffle x4 + ResNet50 blocks).

Every model has ``features(x)`` (pooled 2048), ``embed(x)`` (phase-2 FC 2048 embedding) and
``forward`` (embedding, else logits). :func:`save_model` / :func:`load_checkpoint` store the
architecture with the weights so ``load_checkpoint(path)`` alone rebuilds the network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from cdfv.errors import CdfvError
from cdfv.models.cresnet import CResNet39, CResNet50, cresnet39, cresnet50
from cdfv.models.heads import EMBEDDING, FEATURES, ClassifierHead, EmbeddingHead
from cdfv.models.preprocess import resnet50_input
from cdfv.models.resnet import FaceNet, ResNet50Caffe, resnet50_caffe

FORMAT = "cdfv-model/1"
ARCHS: dict[str, type[FaceNet]] = {"resnet50_caffe": ResNet50Caffe, "cresnet39": CResNet39, "cresnet50": CResNet50}

__all__ = [
    "ARCHS",
    "EMBEDDING",
    "FEATURES",
    "CResNet39",
    "CResNet50",
    "CheckpointError",
    "ClassifierHead",
    "EmbeddingHead",
    "FaceNet",
    "ResNet50Caffe",
    "build_model",
    "cresnet39",
    "cresnet50",
    "load_checkpoint",
    "model_record",
    "read_record",
    "resnet50_caffe",
    "resnet50_input",
    "save_model",
]


class CheckpointError(CdfvError, RuntimeError):
    """A model file that is missing, unreadable or not a cdfv model; the message names it."""


def build_model(arch: str, num_classes: int | None = None, embedding: bool = True, **kwargs: Any) -> FaceNet:
    """Construct ``arch`` (one of :data:`ARCHS`) with the given heads."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHS)}")
    return ARCHS[arch](num_classes=num_classes, embedding=embedding, **kwargs)


def model_record(model: FaceNet, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """A self-describing, ``weights_only``-loadable dict: architecture, heads, weights, metadata."""
    return {
        "format": FORMAT,
        "arch": model.arch,
        "arch_kwargs": model.arch_kwargs(),
        "num_classes": model.num_classes,
        "embedding": model.embedding is not None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }


def save_model(model: FaceNet, path: str | os.PathLike[str], meta: dict[str, Any] | None = None) -> None:
    """Write ``model`` atomically to ``path`` (see :func:`load_checkpoint`)."""
    from cdfv.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save(model_record(model, meta), tmp)


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check a model record; :class:`CheckpointError` naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: model file not found. Run the training stage (`dvc repro train_...`).")
    try:
        rec = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle/zip errors vary
        raise CheckpointError(
            f"{path}: unreadable or corrupt model file ({type(err).__name__}: {err}). "
            "Delete it and rerun the training stage."
        ) from None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cdfv model file (expected format {FORMAT}).")
    return rec


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", eval_mode: bool = True
) -> FaceNet:
    """Rebuild the network stored at ``path`` (from :func:`save_model`), in eval mode.

    Final training outputs (``models/resnet50/model.pt``, ``models/cresnet39/<codec>/model.pt``)
    carry the embedding head, so ``model.embed(x)`` gives the 2048-d face embedding.
    """
    rec = read_record(path)
    model = build_model(rec["arch"], rec["num_classes"], rec["embedding"], **rec["arch_kwargs"])
    try:
        model.load_state_dict(rec["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not match {rec['arch']}: {err}") from None
    model.meta = rec.get("meta", {})  # type: ignore[attr-defined]
    model.to(device)
    return model.eval() if eval_mode else model
