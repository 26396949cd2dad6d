"""fp32 where bf16 autocast would hurt: the ArcFace head/loss and the online codec encoder.

The trainer enables autocast on CUDA only, so these tests wrap the steps in
``torch.autocast("cpu", dtype=torch.bfloat16)`` themselves: CPU autocast runs ``linear``/``matmul``
/``conv2d`` in bf16 exactly like CUDA autocast, so a missing guard shows up here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cdfv.config import ArcFaceParams
from cdfv.precision import fp32_head, strict_fp32
from cdfv.train.loop import Phase2Objective, arcface

CODEC = "Balle2018_mse_Q1"


def bf16() -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def arcface_reference(emb: torch.Tensor, w: torch.Tensor, y: torch.Tensor, s: float, m_deg: float) -> torch.Tensor:
    """ArcFace (Deng et al. 2019) restated in float64: CE over s*cos(theta_y + m) and s*cos(theta_j)."""
    cos = F.normalize(emb.double(), dim=1) @ F.normalize(w.double(), dim=0)
    theta = torch.acos(cos.clamp(-1, 1))
    target = torch.cos(theta.gather(1, y[:, None]) + math.radians(m_deg))
    logits = cos.scatter(1, y[:, None], target) * s
    return F.cross_entropy(logits, y)


@pytest.fixture
def objective() -> tuple[Phase2Objective, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    dim, classes = 256, 40
    head = torch.nn.Linear(dim, dim)
    crit = arcface(classes, ArcFaceParams(), dim)
    feats = torch.randn(32, dim).abs()  # pooled ReLU features are non-negative
    labels = torch.randint(0, classes, (32,))
    return Phase2Objective(head, crit), feats, labels


def step(
    obj: Phase2Objective, feats: torch.Tensor, y: torch.Tensor, autocast: bool = False
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """One phase-2 step as the trainer runs it: forward in the autocast region, backward after it."""
    obj.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss, _ = obj(feats, y)
        logits = obj.logits(feats)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in obj.parameters()], logits


def test_arcface_step_under_bf16_autocast_equals_fp32(objective) -> None:
    obj, feats, y = objective
    half = feats.bfloat16()  # features as a backbone under bf16 autocast gives them
    loss, grads, logits = step(obj, half, y, autocast=True)
    ref_loss, ref_grads, ref_logits = step(obj, half.float(), y)  # the same step in fp32
    assert loss.dtype == logits.dtype == torch.float32 and all(g.dtype == torch.float32 for g in grads)
    assert torch.equal(loss, ref_loss) and torch.equal(logits, ref_logits)  # bit-identical
    assert all(torch.equal(a, b) for a, b in zip(grads, ref_grads))
    # and the loss is ArcFace with s = 64, m = 28.6 degrees (independent float64 restatement)
    with torch.no_grad():
        expected = arcface_reference(obj.embedding(half.float()), obj.criterion.W, y, 64.0, 28.6)
    assert float(ref_loss) == pytest.approx(float(expected), rel=1e-5)


def test_fp32_head_ignores_autocast() -> None:
    torch.manual_seed(1)
    head = torch.nn.Linear(64, 64)
    x = torch.randn(8, 64)
    with bf16():
        got = fp32_head(head, x.bfloat16())
        plain = head(x)
    assert got.dtype == torch.float32 and plain.dtype == torch.bfloat16  # the guard is what makes the difference
    assert torch.equal(got, head(x.bfloat16().float()))


def test_strict_fp32_disables_tf32_and_autocast_and_restores() -> None:
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.allow_tf32 = True
    try:
        with bf16(), strict_fp32("cpu"):
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
            assert torch.nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.float32
        assert torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.fixture(scope="module")
def codec_and_encoder():
    from cdfv.codecs.learned import LearnedCodec
    from cdfv.config import LearnedSettings
    from cdfv.models.latent import online_encoder, parse_codec_name

    settings = LearnedSettings(pretrained=False, untrained_gain=30.0, device="cpu", verify_sample=4)
    return LearnedCodec(parse_codec_name(CODEC), settings), online_encoder(CODEC, False, 0, 30.0)


def faces(n: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (n, 3, 28, 28), generator=g, dtype=torch.uint8).float()
    return F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False).round().to(torch.uint8)


def test_online_encoder_under_autocast_equals_range_decoded_latents(codec_and_encoder) -> None:
    """round(g_a(x)) in the loop (inside a bf16 autocast region) == the codec's entropy-decoded ŷ."""
    from cdfv.models.latent import check_against_codec

    codec, enc = codec_and_encoder
    f = faces()
    with bf16():
        online = enc(f)
    images = [np.pad(im.permute(1, 2, 0).numpy(), ((16, 16), (16, 16), (0, 0))) for im in f]
    _, decoded = codec.encode_with_latents(images)
    assert online.dtype == torch.float32 and np.abs(decoded).max() > 1  # non-trivial latents
    assert np.array_equal(online.to(torch.int32).numpy(), decoded[..., 1:15, 1:15])
    assert check_against_codec(enc, codec, f, ["a", "b", "c"]) == online.numel()


def test_online_check_names_images_on_mismatch(codec_and_encoder) -> None:
    from cdfv.models.latent import (
        LatentMismatchError,
        check_against_codec,
        online_encoder,
    )

    codec, _ = codec_and_encoder
    other = online_encoder(CODEC, False, 0, 31.0)  # different weights than the codec's
    with pytest.raises(LatentMismatchError, match=r"differs from the range-decoded ŷ of Balle2018_mse_Q1.*\['a', 'b'"):
        check_against_codec(other, codec, faces(2), ["a", "b"])
