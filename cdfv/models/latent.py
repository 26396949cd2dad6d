"""The frozen learned-codec pieces the models need: ``g_a`` (online latents) and ``g_s`` (MACs).

The CompressAI models come from the codec registry (:func:`cdfv.codecs.learned.load_model`, same
weights / seeded init as the codecs stages, so online latents equal the stored shards). For the
zero-mean Ballé hyperprior the entropy-decoded latent is exactly ``round(g_a(x))`` (thesis
§6.2), so online encoding needs no range coder.
"""

from __future__ import annotations

import torch
from torch import nn

from cdfv.codecs.names import parse_codec_name


def load_learned_codec(name: str, pretrained: bool = True, seed: int = 0, untrained_gain: float = 1.0) -> nn.Module:
    """The CompressAI model of ``name`` in eval mode (clear error naming the weights file offline)."""
    from cdfv.codecs.learned import load_model

    return load_model(parse_codec_name(name, "learned"), pretrained, seed=seed, untrained_gain=untrained_gain)


class OnlineLatentEncoder(nn.Module):
    """Frozen ``face224 -> y_hat crop`` on the training device (``train.cresnet39.latents: online``).

    pad 224 -> 256 with black (16 px each side), scale to [0, 1], ``round(g_a(x))``, centre crop
    ``[:, 1:15, 1:15]`` (thesis §6.2). Input ``(B, 3, 224, 224)`` float 0..255 or uint8.
    """

    def __init__(self, g_a: nn.Module, pad: int = 16, crop: int = 1) -> None:
        super().__init__()
        self.g_a = g_a.eval()
        for p in self.g_a.parameters():
            p.requires_grad_(False)
        self.pad, self.crop = pad, crop

    def train(self, mode: bool = True) -> "OnlineLatentEncoder":  # always frozen, always eval
        return super().train(False)

    @torch.no_grad()
    def forward(self, face: torch.Tensor) -> torch.Tensor:
        x = face.float() / 255.0
        x = nn.functional.pad(x, (self.pad,) * 4)
        y_hat = torch.round(self.g_a(x))
        c = self.crop
        return y_hat[..., c : y_hat.shape[-2] - c, c : y_hat.shape[-1] - c].contiguous()


def online_encoder(name: str, pretrained: bool = True, seed: int = 0, untrained_gain: float = 1.0) -> OnlineLatentEncoder:
    """:class:`OnlineLatentEncoder` around the ``g_a`` of codec ``name``."""
    return OnlineLatentEncoder(load_learned_codec(name, pretrained, seed, untrained_gain).g_a)


def synthesis(name: str) -> nn.Module:
    """The decoder ``g_s`` of ``name`` (untrained: MACs and time do not depend on weights)."""
    return load_learned_codec(name, pretrained=False).g_s
