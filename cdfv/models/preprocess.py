"""Network input conventions shared by training and evaluation (one place, so they agree).

ResNet50: RGB float 0..255 minus the VGGFace2 mean (:data:`VGGFACE2_MEAN_RGB`), kept in
RGB channel order throughout the project (the reference code is BGR; only consistency matters
for networks trained here). No scaling to 0..1 (Caffe convention).
"""

from __future__ import annotations

import numpy as np
import torch

#: Mean of the VGGFace2 training set, RGB order (cydonia999/VGGFace2-pytorch works in BGR:
#: 91.4953, 103.8827, 131.0912). Subtract from float 0-255 RGB faces.
VGGFACE2_MEAN_RGB: tuple[float, float, float] = (131.0912, 103.8827, 91.4953)


def mean_rgb() -> tuple[float, float, float]:
    return VGGFACE2_MEAN_RGB


def subtract_mean(face: np.ndarray, mean: tuple[float, float, float] = VGGFACE2_MEAN_RGB) -> np.ndarray:
    """ResNet50 input of one ``HxWx3`` face: float32 0-255 RGB minus the VGGFace2 mean (channel-last)."""
    return face.astype(np.float32) - np.asarray(mean, dtype=np.float32)


def resnet50_input(batch: np.ndarray | torch.Tensor, device: str | torch.device | None = None) -> torch.Tensor:
    """``(B, H, W, 3)`` uint8 array or ``(B, 3, H, W)`` tensor (0..255) -> mean-subtracted float NCHW."""
    if isinstance(batch, np.ndarray):
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"expected (B, H, W, 3) RGB, got {batch.shape}")
        batch = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) RGB tensor, got {tuple(batch.shape)}")
    x = batch.to(device=device if device is not None else batch.device, dtype=torch.float32)
    mean = torch.tensor(mean_rgb(), dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return x - mean
