"""Xiao et al. 2023 §3 losses and the differentiable alignment A (equal to align_lfw's warp inside the face)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from cdfv.align.geometry import align_face
from cdfv.xiao.losses import (
    affine_theta,
    differentiable_align,
    identity_loss,
    rate_bpp,
    reconstruction_loss,
    total_loss,
)

BOX = (60.0, 50.0, 190.0, 210.0)  # 130 x 160 face box inside a 250x250 LFW-sized image
LANDMARKS = np.array([[100.0, 110.0], [150.0, 100.0], [125.0, 140.0], [105.0, 175.0], [145.0, 170.0]])


def _smooth_image() -> np.ndarray:
    y, x = np.mgrid[0:250, 0:250].astype(np.float64)
    r = 127 + 100 * np.sin(x / 17.0) * np.cos(y / 23.0)
    g = 127 + 100 * np.cos((x + y) / 29.0)
    b = 0.5 * x + 0.3 * y + 20
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def _inside(aligned, size: int, margin: float = 2.0) -> np.ndarray:
    """Output pixels whose source lies inside the crop box and inside the rotated crop (not a black corner)."""
    x1, y1, x2, y2 = (int(round(v)) for v in BOX)
    w, h = x2 - x1, y2 - y1
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    pts = np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    m = np.linalg.inv(np.vstack([aligned.matrix, [0, 0, 1]]))
    src = (m @ pts)[:2] - np.array([[x1], [y1]])  # crop coordinates before the rotation
    rot = np.vstack([cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), aligned.angle, 1.0), [0, 0, 1]])
    rotated = (rot @ np.vstack([src, np.ones(src.shape[1])]))[:2]  # where it sits in the rotated crop
    ok = np.ones(src.shape[1], bool)
    for q in (src, rotated):
        ok &= (q[0] >= margin) & (q[0] <= w - 1 - margin) & (q[1] >= margin) & (q[1] <= h - 1 - margin)
    return ok.reshape(size, size)


def test_differentiable_alignment_matches_align_lfw_inside_the_face() -> None:
    img = _smooth_image()
    aligned = align_face(img, BOX, LANDMARKS, size=224, interpolation="bilinear", rotate_interpolation="bilinear")
    assert abs(aligned.angle) > 5  # a real rotation is exercised
    theta = affine_theta(aligned.matrix, img.shape[:2], 224)[None]
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    warped = differentiable_align(x, theta, 224)[0].permute(1, 2, 0).numpy()
    mask = _inside(aligned, 224)
    assert mask.mean() > 0.5
    diff = np.abs(warped - aligned.image.astype(np.float64))[mask]
    # one bilinear warp vs align_lfw's rotate-then-resize (two resamplings) of a smooth image: 0..255 scale
    # measured 0.27 mean, 0.88 99th percentile, 1.26 max (angle -11.3°, 74 % of the face inside the mask)
    assert diff.mean() < 0.5 and np.percentile(diff, 99) < 2.0 and diff.max() < 3.0, (diff.mean(), diff.max())


def test_gradients_flow_to_the_decoded_image_inside_the_box_only() -> None:
    img = _smooth_image()
    aligned = align_face(img, BOX, LANDMARKS, size=224)
    theta = affine_theta(aligned.matrix, img.shape[:2], 224)[None]
    x_hat = torch.rand(1, 3, 250, 250, requires_grad=True)
    differentiable_align(x_hat, theta, 224).sum().backward()
    g = x_hat.grad[0].abs().sum(0)
    x1, y1, x2, y2 = (int(v) for v in BOX)
    assert g[y1 + 20 : y2 - 20, x1 + 20 : x2 - 20].min() > 0  # the face centre receives gradient
    assert g[:, : x1 - 30].sum() == 0 and g[:, x2 + 30 :].sum() == 0  # far outside the box: none


def test_rate_is_bits_per_pixel_from_likelihoods() -> None:
    # 16 symbols of p = 1/2 and 8 of p = 1/4: 16 + 16 bits over 8x8 pixels = 0.5 bpp
    y = torch.full((1, 4, 2, 2), 0.5)
    z = torch.full((1, 2, 2, 2), 0.25)
    assert rate_bpp([y, z], num_pixels=64).item() == pytest.approx(0.5)


def test_reconstruction_losses() -> None:
    x = torch.zeros(1, 3, 8, 8)
    assert reconstruction_loss(x, x + 0.1, "mse").item() == pytest.approx(0.01)
    img = torch.rand(1, 3, 192, 192)
    assert reconstruction_loss(img, img, "ms-ssim").item() == pytest.approx(0.0, abs=1e-5)
    assert reconstruction_loss(img, torch.rand(1, 3, 192, 192), "ms-ssim").item() > 0.5
    with pytest.raises(ValueError, match="distortion"):
        reconstruction_loss(x, x, "l1")  # type: ignore[arg-type]


def test_identity_loss_is_one_minus_cosine() -> None:
    e = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    e_hat = torch.tensor([[2.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])  # cos 1, 0, -1
    assert identity_loss(e, e_hat).item() == pytest.approx((0 + 1 + 2) / 3)


def test_variants_combine_as_in_the_paper() -> None:
    rate, rec, ident = torch.tensor(2.0), torch.tensor(0.5), torch.tensor(0.25)
    assert total_loss("REC", rate, 0.1, rec=rec).item() == pytest.approx(0.5 + 0.2)
    assert total_loss("IP", rate, 0.1, ident=ident, lambda_id=4.0).item() == pytest.approx(0.2 + 1.0)
    assert total_loss("IPR", rate, 0.1, rec=rec, ident=ident, lambda_id=4.0).item() == pytest.approx(1.7)
    with pytest.raises(ValueError, match="L_id"):
        total_loss("IPR", rate, 0.1, rec=rec)


def test_only_the_codec_gets_gradients() -> None:
    from compressai.models import ScaleHyperprior

    torch.manual_seed(0)
    codec = ScaleHyperprior(N=16, M=24)
    recogniser = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    recogniser.requires_grad_(False).eval()
    x = torch.rand(2, 3, 64, 64)
    out = codec(x)
    rate = rate_bpp(out["likelihoods"].values(), 2 * 64 * 64)
    ident = identity_loss(recogniser(x), recogniser(out["x_hat"]))
    total_loss(
        "IPR", rate, 0.01, rec=reconstruction_loss(x, out["x_hat"], "mse"), ident=ident, lambda_id=1.0
    ).backward()
    assert all(p.grad is None for p in recogniser.parameters())
    assert codec.g_a[0].weight.grad is not None and codec.g_a[0].weight.grad.abs().sum() > 0
