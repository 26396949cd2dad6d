"""The frozen learned-codec pieces the models need: ``g_a`` (online latents) and ``g_s`` (MACs).

The CompressAI models come from the codec registry (:func:`cdfv.codecs.learned.load_model`, same
weights / seeded init as the codecs stages, so online latents equal the stored shards). For the
zero-mean Ballé hyperprior the entropy-decoded latent is exactly ``round(g_a(x))`` (thesis
§6.2), so online encoding needs no range coder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cdfv.codecs.names import parse_codec_name
from cdfv.errors import CdfvError
from cdfv.precision import strict_fp32


def load_learned_codec(
    name: str, pretrained: bool = True, seed: int = 0, untrained_gain: float = 1.0, weights: Path | None = None
) -> nn.Module:
    """The CompressAI model of ``name`` in eval mode (``weights``: its verified zoo checkpoint when pretrained,
    :func:`cdfv.weights.codec_path`)."""
    from cdfv.codecs.learned import load_model

    return load_model(
        parse_codec_name(name, "learned"), pretrained, seed=seed, untrained_gain=untrained_gain, weights=weights
    )


class OnlineLatentEncoder(nn.Module):
    """Frozen ``face224 -> y_hat crop`` on the training device (``train.cresnet39.online_codecs``).

    Round to 8-bit pixels (the codec only ever sees 8-bit images), pad 224 -> 256 with black
    (16 px each side), scale to [0, 1], ``round(g_a(x))``, centre crop ``[:, 1:15, 1:15]``
    (thesis §6.2). Input ``(B, 3, 224, 224)`` float 0..255 or uint8.

    ``g_a`` runs exactly as the codec's encoder does (:class:`cdfv.codecs.learned.LearnedCodec`):
    strict fp32 (autocast and TF32 off), the same channels-last memory layout and the same chunks of
    ``batch`` images (``encode.learned.batch_size``). Convolution results depend on the kernel in
    the last bits, and a value at a half-integer then rounds the other way; with the same kernels
    the online latents equal the codec's range-decoded ŷ bit for bit (checked each run).
    """

    def __init__(self, g_a: nn.Module, pad: int = 16, crop: int = 1, batch: int = 16) -> None:
        super().__init__()
        self.g_a = g_a.eval()
        for p in self.g_a.parameters():
            p.requires_grad_(False)
        self.pad, self.crop, self.batch = pad, crop, batch

    def train(self, mode: bool = True) -> OnlineLatentEncoder:  # always frozen, always eval
        return super().train(False)

    @torch.no_grad()
    def forward(self, face: torch.Tensor) -> torch.Tensor:
        with strict_fp32(face.device.type):
            x = nn.functional.pad(face.float().round().clamp(0, 255), (self.pad,) * 4)
            x = x.contiguous(memory_format=torch.channels_last) / 255.0  # the codec's NHWC -> NCHW view
            y_hat = torch.cat([torch.round(self.g_a(x[i : i + self.batch])) for i in range(0, len(x), self.batch)])
        c = self.crop
        return y_hat[..., c : y_hat.shape[-2] - c, c : y_hat.shape[-1] - c].contiguous()


def online_encoder(
    name: str,
    pretrained: bool = True,
    seed: int = 0,
    untrained_gain: float = 1.0,
    pad: int = 16,
    batch: int = 16,
    weights: Path | None = None,
) -> OnlineLatentEncoder:
    """:class:`OnlineLatentEncoder` around the ``g_a`` of codec ``name`` (``batch``: the codec's batch size)."""
    g_a = load_learned_codec(name, pretrained, seed, untrained_gain, weights).g_a
    return OnlineLatentEncoder(g_a, pad=pad, batch=batch)


class LatentMismatchError(CdfvError, RuntimeError):
    """Online ``round(g_a(x))`` differs from the codec's range-decoded ŷ (names images and count)."""


def check_against_codec(encoder: OnlineLatentEncoder, codec: nn.Module, faces: torch.Tensor, names: list[str]) -> int:
    """Assert ``encoder(faces)`` == the entropy-decoded ŷ crop of the real codec on the same device.

    ``codec``: a :class:`cdfv.codecs.learned.LearnedCodec` whose model sits on the encoder's device
    (same weights); ``faces``: ``(B, 3, 224, 224)`` uint8. Both run under :func:`strict_fp32`.
    Returns the number of values compared.
    """
    device = next(encoder.g_a.parameters()).device
    online = encoder(faces.to(device)).to(torch.int32).cpu().numpy()
    p = encoder.pad
    images = [np.pad(f.permute(1, 2, 0).cpu().numpy(), ((p, p), (p, p), (0, 0))) for f in faces]
    with strict_fp32(device.type):
        _, decoded = codec.encode_with_latents(images)  # type: ignore[attr-defined]
    c = encoder.crop
    ref = decoded[..., c : decoded.shape[-2] - c, c : decoded.shape[-1] - c]
    if ref.shape != online.shape or not np.array_equal(ref, online):
        bad = [n for n, a, b in zip(names, online, ref) if a.shape != b.shape or not np.array_equal(a, b)]
        diff = int((ref != online).sum()) if ref.shape == online.shape else -1
        raise LatentMismatchError(
            f"online round(g_a(x)) differs from the range-decoded ŷ of {getattr(codec, 'name', 'the codec')} "
            f"on {device} "
            f"in {diff} values (images {bad[:8]}): the online latents would not be those evaluated. "
            "Train from shards (train.cresnet39.codecs) or report this as a bug."
        )
    return int(online.size)


def synthesis(name: str) -> nn.Module:
    """The decoder ``g_s`` of ``name`` (untrained: MACs and time do not depend on weights)."""
    return load_learned_codec(name, pretrained=False).g_s
