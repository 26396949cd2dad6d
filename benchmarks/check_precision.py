"""Precision of the training-time codec encoder and ArcFace head on a device (run it on a GPU).

1. Online latents: ``OnlineLatentEncoder`` (strict fp32, the codec's layout and batch) vs the codec's
   range-decoded ŷ (:meth:`LearnedCodec.encode_with_latents` under :func:`strict_fp32`): values that
   differ (must be 0); and, for comparison, how many values a TF32 or a bf16-autocast ``g_a`` flips.
2. ArcFace step (phase 2) under bf16 autocast vs the same step in fp32: loss, logits and gradients
   (must be bit-identical), and how far a bf16 head would be.

Usage::

    python benchmarks/check_precision.py --device cuda [--images 64] [--codec Balle2018_mse_Q1] [--pretrained]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from cdfv.codecs.learned import LearnedCodec
from cdfv.config import ArcFaceParams, LearnedSettings, load_params
from cdfv.models.latent import check_against_codec, online_encoder, parse_codec_name
from cdfv.precision import strict_fp32
from cdfv.train.loop import Phase2Objective, arcface
from cdfv.weights import codec_path

SHARED = Path(__file__).resolve().parents[2] / "shared/fixtures/vggface2-mini"


def faces(n: int) -> torch.Tensor:
    """``n`` 224 faces (uint8): vggface2-mini centre views when present, else smooth random images."""
    from cdfv.io import read_rgb

    files = sorted(SHARED.rglob("*.jpg"))
    if files:
        x = torch.stack([torch.from_numpy(read_rgb(files[i % len(files)])).permute(2, 0, 1) for i in range(n)]).float()
    else:
        x = torch.randint(0, 256, (n, 3, 28, 28), generator=torch.Generator().manual_seed(0)).float()
    return F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False).round().clamp(0, 255).to(torch.uint8)


def latents(device: torch.device, n: int, codec_name: str, pretrained: bool) -> dict[str, object]:
    settings = LearnedSettings(
        pretrained=pretrained,
        untrained_gain=1.0 if pretrained else 10.0,
        device=str(device),
        batch_size=16,
        verify_sample=n,
    )
    weights = codec_path(load_params(), codec_name) if pretrained else None  # weights.codecs.learned.<codec>
    codec = LearnedCodec(parse_codec_name(codec_name), settings, weights)
    enc = online_encoder(
        codec_name, pretrained, 0, settings.untrained_gain, batch=settings.batch_size, weights=weights
    ).to(device)
    f = faces(n)
    values = check_against_codec(enc, codec, f, [str(i) for i in range(n)])  # raises on any difference
    strict = enc(f.to(device))
    x = F.pad(f.to(device).float() / 255.0, (16,) * 4).contiguous(memory_format=torch.channels_last)
    out: dict[str, object] = {"values_compared": values, "online_vs_range_decoded_differing": 0}
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with torch.no_grad():
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True  # torch's cuDNN default
        tf32 = torch.cat([torch.round(enc.g_a(x[i : i + 16])) for i in range(0, n, 16)])[..., 1:15, 1:15]
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
        with strict_fp32(device.type), torch.autocast(device.type, dtype=torch.bfloat16):
            bf16 = torch.cat([torch.round(enc.g_a(x[i : i + 16]).float()) for i in range(0, n, 16)])[..., 1:15, 1:15]
    out["tf32_g_a_differing"] = int((tf32 != strict).sum())
    out["bf16_autocast_g_a_differing"] = int((bf16 != strict).sum())
    return out


def arcface_step(device: torch.device) -> dict[str, object]:
    torch.manual_seed(0)
    head, crit = torch.nn.Linear(2048, 2048).to(device), arcface(7768, ArcFaceParams(), 2048).to(device)
    obj = Phase2Objective(head, crit)
    feats = torch.randn(64, 2048, device=device).abs().bfloat16()
    y = torch.randint(0, 7768, (64,), device=device)

    def run(autocast: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        obj.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss, _ = obj(feats, y)
            logits = obj.logits(feats)
        loss.backward()
        return loss.detach(), logits, [p.grad.clone() for p in obj.parameters()]

    a, b = run(True), run(False)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):  # what an unguarded head computes
        raw = crit.get_logits(head(feats))
    return {
        "loss_bitwise_equal": bool(torch.equal(a[0], b[0])),
        "logits_bitwise_equal": bool(torch.equal(a[1], b[1])),
        "grads_bitwise_equal": all(torch.equal(g, h) for g, h in zip(a[2], b[2])),
        "bf16_head_max_logit_error": float((raw.float() - b[1]).abs().max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--codec", default="Balle2018_mse_Q1")
    ap.add_argument("--pretrained", action="store_true", help="CompressAI zoo weights (weights: in params.yaml)")
    a = ap.parse_args()
    device = torch.device(a.device)
    out = {
        "device": str(torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"),
        "latents": latents(device, a.images, a.codec, a.pretrained),
        "arcface": arcface_step(device),
    }
    print(json.dumps(out, indent=2))
    if not (out["arcface"]["loss_bitwise_equal"] and out["arcface"]["grads_bitwise_equal"]):  # type: ignore[index]
        raise SystemExit("ArcFace step under autocast differs from fp32")


if __name__ == "__main__":
    main()
