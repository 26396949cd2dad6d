"""Compressed-domain networks that take an entropy-decoded latent ``y_hat`` (N x 14 x 14).

* **cResNet39** (thesis §6.3, Table 6): ResNet50 without its root and block 1 (11 layers);
  blocks 2 and 3 keep stride 1 so block 3 is still 14x14, block 4 strides to 7x7. The first
  unit of block 2 takes N channels (192 for Ballé-2018 q1-5, 320 for q6-8) and projects the
  residual with a 1x1 ``N -> 512`` convolution.
* **cResNet50** (the thesis's future work, §10 of the spec): ``PixelShuffle(4)`` turns
  N x 14 x 14 into N/16 x 56 x 56, a 3x3 convolution adjusts the channels to 64 (the width after
  ResNet50's root), then the four ResNet50 blocks run unchanged, so they can be initialised from a
  trained ResNet50 (:meth:`CResNet50.init_from_resnet50`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cdfv.models.resnet import EXPANSION, FaceNet, init_weights_, make_block, scaled_blocks

LATENT_SIZE = 14  #: spatial size after the centre crop [:, 1:15, 1:15] of the 16x16 y_hat


class CResNet39(FaceNet):
    """cResNet39: N x 14 x 14 latent -> blocks 2 (s1), 3 (s1), 4 (s2) -> 2048."""

    arch = "cresnet39"

    def __init__(
        self, in_channels: int, num_classes: int | None = None, embedding: bool = True, width: int = 64
    ) -> None:
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        super().__init__(num_classes, embedding, width)
        self.in_channels = in_channels
        (p2, u2), (p3, u3), (p4, u4) = scaled_blocks(width)[1:]
        self.layer2 = make_block(in_channels, p2, u2, stride=1)
        self.layer3 = make_block(p2 * EXPANSION, p3, u3, stride=1)
        self.layer4 = make_block(p3 * EXPANSION, p4, u4, stride=2)
        init_weights_(self)

    def _body_blocks(self) -> list[tuple[str, nn.Module]]:
        return [("layer2", self.layer2), ("layer3", self.layer3), ("layer4", self.layer4)]

    def arch_kwargs(self) -> dict[str, Any]:
        return {**super().arch_kwargs(), "in_channels": self.in_channels}

    def input_hint(self) -> str:
        return f"expects {self.in_channels}x{LATENT_SIZE}x{LATENT_SIZE}"


class CResNet50(FaceNet):
    """cResNet50: PixelShuffle(4) + channel-adjust conv + ResNet50 blocks 1-4 on N x 14 x 14."""

    arch = "cresnet50"

    def __init__(
        self,
        in_channels: int,
        num_classes: int | None = None,
        embedding: bool = True,
        upscale: int = 4,
        adjust_kernel: int = 3,
        width: int = 64,
    ) -> None:
        if in_channels % (upscale * upscale):
            raise ValueError(
                f"cResNet50: in_channels={in_channels} must be divisible by upscale^2={upscale * upscale} "
                "for PixelShuffle"
            )
        if adjust_kernel % 2 == 0:
            raise ValueError("adjust_kernel must be odd (same padding)")
        super().__init__(num_classes, embedding, width)
        self.in_channels, self.upscale, self.adjust_kernel = in_channels, upscale, adjust_kernel
        self.adapter = nn.Sequential(
            nn.PixelShuffle(upscale),
            nn.Conv2d(in_channels // (upscale * upscale), width, adjust_kernel, padding=adjust_kernel // 2, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        inplanes = width
        for i, (planes, units) in enumerate(scaled_blocks(width), start=1):
            setattr(self, f"layer{i}", make_block(inplanes, planes, units, stride=1 if i == 1 else 2))
            inplanes = planes * EXPANSION
        init_weights_(self)

    def _body_blocks(self) -> list[tuple[str, nn.Module]]:
        return [
            ("adapter", self.adapter),
            ("layer1", self.layer1),
            ("layer2", self.layer2),
            ("layer3", self.layer3),
            ("layer4", self.layer4),
        ]

    def arch_kwargs(self) -> dict[str, Any]:
        return {
            **super().arch_kwargs(),
            "in_channels": self.in_channels,
            "upscale": self.upscale,
            "adjust_kernel": self.adjust_kernel,
        }

    def input_hint(self) -> str:
        return f"expects {self.in_channels}x{LATENT_SIZE}x{LATENT_SIZE}"

    def init_from_resnet50(self, resnet50: nn.Module | dict[str, torch.Tensor]) -> list[str]:
        """Copy blocks 1-4 from a trained ResNet50 (module or state dict); returns copied keys."""
        src = resnet50.state_dict() if isinstance(resnet50, nn.Module) else resnet50
        own = self.state_dict()
        copied = {
            k: v for k, v in src.items() if k.startswith(("layer1.", "layer2.", "layer3.", "layer4.")) and k in own
        }
        missing = [k for k in own if k.startswith("layer") and k not in copied]
        if missing:
            raise ValueError(f"ResNet50 state dict lacks {len(missing)} block weights, e.g. {missing[:3]}")
        self.load_state_dict(copied, strict=False)
        return sorted(copied)


def cresnet39(in_channels: int, num_classes: int | None = None, embedding: bool = True, width: int = 64) -> CResNet39:
    """cResNet39 for an ``in_channels x 14 x 14`` latent (N=192 Ballé q1-5, 320 q6-8)."""
    return CResNet39(in_channels, num_classes=num_classes, embedding=embedding, width=width)


def cresnet50(
    in_channels: int,
    num_classes: int | None = None,
    embedding: bool = True,
    upscale: int = 4,
    adjust_kernel: int = 3,
    width: int = 64,
) -> CResNet50:
    """cResNet50 (future work of the thesis) for an ``in_channels x 14 x 14`` latent."""
    return CResNet50(
        in_channels,
        num_classes=num_classes,
        embedding=embedding,
        upscale=upscale,
        adjust_kernel=adjust_kernel,
        width=width,
    )
