"""The frozen learned-codec pieces the models need: ``g_a`` (online latents) and ``g_s`` (MACs).

Codec names follow the codec registry (``Balle2018_mse_Q6``). Only the Ballé-2018 hyperprior
(CompressAI ``bmshj2018-hyperprior``) is used for compressed-domain training in the paper.
For the zero-mean hyperprior the entropy-decoded latent is exactly ``round(g_a(x))``
(thesis-spec §5), so online encoding needs no entropy coder.
"""

from __future__ import annotations

import torch
from torch import nn

from cdfv.codecs.names import CodecNameError, CodecSpec
from cdfv.codecs.names import parse_codec_name as _parse


class CodecWeightsError(RuntimeError):
    """Pretrained codec weights are not available offline; the message says where to put them."""


def parse_codec_name(name: str) -> CodecSpec:
    """Parse ``name`` with the codec registry's grammar; it must be a learned codec."""
    spec = _parse(name)
    if spec.family != "learned":
        raise CodecNameError(f"{name!r} is not a learned codec (expected e.g. Balle2018_mse_Q1 .. Q8)")
    return spec


def load_learned_codec(name: str, pretrained: bool = True) -> nn.Module:
    """The CompressAI model for ``name`` in eval mode (weights from the torch hub cache).

    Offline, put the file named in the error into ``$TORCH_HOME/hub/checkpoints/``.
    """
    from compressai.zoo import image as zoo

    spec = parse_codec_name(name)
    arch = spec.architecture or ""
    factory = {"bmshj2018-hyperprior": zoo.bmshj2018_hyperprior, "cheng2020-attn": zoo.cheng2020_attn}[arch]
    try:
        model = factory(spec.quality, metric=spec.metric, pretrained=pretrained, progress=False)
    except Exception as err:  # noqa: BLE001 - network/file errors from torch.hub vary
        if not pretrained:
            raise
        url = zoo.model_urls[arch][spec.metric][spec.quality]
        hub = torch.hub.get_dir()
        raise CodecWeightsError(
            f"{name}: cannot load the pretrained CompressAI weights ({type(err).__name__}: {err}). "
            f"Download {url} and place it as {hub}/checkpoints/{url.rsplit('/', 1)[-1]}, "
            "or set pretrained: false for an offline smoke run."
        ) from None
    return model.eval()


class OnlineLatentEncoder(nn.Module):
    """Frozen ``face224 uint8 -> y_hat crop`` on the training device (``latents: online``).

    pad 224 -> 256 with black (16 px each side), scale to [0, 1], ``round(g_a(x))``, centre crop
    ``[:, 1:15, 1:15]`` (thesis §6.2). Input ``(B, 3, 224, 224)`` float 0..255 or uint8.
    """

    def __init__(self, g_a: nn.Module, pad: int = 16, crop: int = 1) -> None:
        super().__init__()
        self.g_a = g_a.eval()
        for p in self.g_a.parameters():
            p.requires_grad_(False)
        self.pad, self.crop = pad, crop

    def train(self, mode: bool = True) -> "OnlineLatentEncoder":  # always frozen / eval
        return super().train(False)

    @torch.no_grad()
    def forward(self, face: torch.Tensor) -> torch.Tensor:
        x = face.float() / 255.0
        x = nn.functional.pad(x, (self.pad,) * 4)
        y_hat = torch.round(self.g_a(x))
        c = self.crop
        return y_hat[..., c : y_hat.shape[-2] - c, c : y_hat.shape[-1] - c].contiguous()


def online_encoder(name: str, pretrained: bool = True) -> OnlineLatentEncoder:
    return OnlineLatentEncoder(load_learned_codec(name, pretrained).g_a)


def synthesis(name: str, pretrained: bool = False) -> nn.Module:
    """The decoder ``g_s`` of ``name`` (for decoded-anchor MACs and timing)."""
    return load_learned_codec(name, pretrained).g_s
