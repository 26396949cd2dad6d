"""Training losses of Xiao et al. 2023 (§3) and the differentiable alignment A they need.

* ``L_rec``: MSE (images in 0..1) or 1 - MS-SSIM;
* ``L_rate``: bits per pixel from the entropy models' likelihoods, ``sum(-log2 p) / (B * H * W)``;
* ``L_id = 1 - cos(R(A(x)), R(A(x_hat)))`` with a frozen recogniser R (§3.1);
* REC = L_rec + λ·L_rate, IP = λ·L_rate + λ_id·L_id (eq. 2), IPR = L_rec + λ·L_rate + λ_id·L_id (eq. 3).

A = the face alignment of ``align_lfw`` (:func:`cdfv.align.geometry.align_face`: source → aligned face
2x3 matrix from the cached detection of x) applied to x_hat with ``F.affine_grid`` + ``F.grid_sample``
(bilinear, zeros outside), so gradients reach the decoded image.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

Variant = Literal["REC", "IP", "IPR"]
Distortion = Literal["mse", "ms-ssim"]


def affine_theta(matrix: np.ndarray, src_hw: tuple[int, int], size: int) -> torch.Tensor:
    """``F.affine_grid`` theta (2x3, ``align_corners=False``) of the warp whose source → output pixel-index
    map is ``matrix`` (2x3), from a ``src_hw`` image to a ``size x size`` output."""
    h, w = src_hw
    m = np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    # normalised (-1..1, pixel edges) <-> pixel index: x = ((xn + 1) * n - 1) / 2
    out_from_norm = np.array([[size / 2, 0, (size - 1) / 2], [0, size / 2, (size - 1) / 2], [0, 0, 1.0]])
    src_to_norm = np.array([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1.0]])
    theta = src_to_norm @ np.linalg.inv(m) @ out_from_norm
    return torch.tensor(theta[:2], dtype=torch.float32)


def differentiable_align(images: torch.Tensor, thetas: torch.Tensor, size: int) -> torch.Tensor:
    """Warp ``(B, C, H, W)`` images with per-image ``(B, 2, 3)`` thetas to ``(B, C, size, size)``."""
    grid = F.affine_grid(thetas.to(images), [images.shape[0], images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rate_bpp(likelihoods: Iterable[torch.Tensor], num_pixels: int) -> torch.Tensor:
    """Bits per pixel of the (noisy) latents: ``sum(-log2 p) / num_pixels`` (fp32)."""
    return sum((-torch.log2(p.float())).sum() for p in likelihoods) / num_pixels


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor, distortion: Distortion) -> torch.Tensor:
    """MSE of images in 0..1, or 1 - MS-SSIM (data range 1)."""
    x, x_hat = x.float(), x_hat.float()
    if distortion == "mse":
        return F.mse_loss(x_hat, x)
    if distortion == "ms-ssim":
        from pytorch_msssim import ms_ssim

        return 1.0 - ms_ssim(x_hat, x, data_range=1.0)
    raise ValueError(f"distortion must be 'mse' or 'ms-ssim', not {distortion!r}")


def identity_loss(e: torch.Tensor, e_hat: torch.Tensor) -> torch.Tensor:
    """``mean(1 - cos(e, e_hat))`` over the batch (fp32)."""
    return (1.0 - F.cosine_similarity(e.float(), e_hat.float(), dim=1)).mean()


def total_loss(
    variant: Variant,
    rate: torch.Tensor,
    lmbda: float,
    rec: torch.Tensor | None = None,
    ident: torch.Tensor | None = None,
    lambda_id: float = 0.0,
) -> torch.Tensor:
    """REC = L_rec + λ·L_rate; IP = λ·L_rate + λ_id·L_id; IPR = L_rec + λ·L_rate + λ_id·L_id."""
    need_rec, need_id = variant in ("REC", "IPR"), variant in ("IP", "IPR")
    if variant not in ("REC", "IP", "IPR"):
        raise ValueError(f"variant must be REC, IP or IPR, not {variant!r}")
    if (need_rec and rec is None) or (need_id and ident is None):
        raise ValueError(f"{variant} needs {'L_rec ' if need_rec else ''}{'L_id' if need_id else ''}".strip())
    loss = lmbda * rate
    if need_rec:
        loss = loss + rec
    if need_id:
        loss = loss + lambda_id * ident
    return loss
