"""Caffe-style ResNet50 of VGGFace2 (cydonia999/VGGFace2-pytorch layout) and its building blocks.

Differences from torchvision's ResNet50 that matter for MACs and weights (thesis §5.5.1):
the stride of a down-sampling bottleneck sits on its *first* 1x1 convolution (not the 3x3), the
root is a 7x7/2 convolution (pad 3) followed by a 3/2 max-pool with ``padding=0, ceil_mode=True``,
the head pools with ``AvgPool2d(7)``; convolutions are bias-free and each is followed by BN.
Module names (``conv1, bn1, layer1..layer4, fc``) follow the reference so its weights map 1:1.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cdfv.models.heads import FEATURES, ClassifierHead, EmbeddingHead

EXPANSION = 4
#: (planes, residual units) of blocks 1-4 (Table 4 of the thesis)
RESNET50_BLOCKS: tuple[tuple[int, int], ...] = ((64, 3), (128, 4), (256, 6), (512, 3))


class Bottleneck(nn.Module):
    """Residual unit [1x1, p] -> [3x3, p] -> [1x1, 4p], stride on the first 1x1 (Caffe style)."""

    expansion = EXPANSION

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * EXPANSION, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def scaled_blocks(width: int = 64) -> tuple[tuple[int, int], ...]:
    """Block (planes, units) at base ``width`` (64 = the paper; smaller only for quick loop tests)."""
    return tuple((planes * width // 64, units) for planes, units in RESNET50_BLOCKS)


def make_block(inplanes: int, planes: int, units: int, stride: int = 1) -> nn.Sequential:
    """One residual block; the first unit projects the input (1x1 conv + BN) when shape changes.

    For cResNet39's block 2 this projection is the 1x1 ``N -> 512`` of the thesis (Fig. 44).
    """
    downsample = None
    if stride != 1 or inplanes != planes * EXPANSION:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * EXPANSION, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(planes * EXPANSION),
        )
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    layers += [Bottleneck(planes * EXPANSION, planes) for _ in range(1, units)]
    return nn.Sequential(*layers)


def init_weights_(module: nn.Module) -> None:
    """The reference initialisation: He-normal convs (fan-out), BN gamma 1 / beta 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class FaceNet(nn.Module):
    """Common part of ResNet50 / cResNet39 / cResNet50: body -> AvgPool(7) -> 2048 -> head.

    ``fc`` is the phase-1 classifier (logits), ``embedding`` the phase-2 FC 2048 -> 2048.
    ``forward`` returns the embedding when that head exists, else the logits, else the pooled
    2048-d features. Subclasses define ``_body_blocks`` (name -> module, applied in order).
    """

    arch: str = "facenet"

    def __init__(self, num_classes: int | None, embedding: bool, width: int = 64) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.width = width
        #: pooled feature size: 2048 at the paper's width 64 (= embedding size of the FC head)
        self.feature_dim = FEATURES * width // 64
        self.avgpool = nn.AvgPool2d(7, stride=1)
        self.fc = ClassifierHead(num_classes, self.feature_dim) if num_classes is not None else None
        self.embedding = EmbeddingHead(self.feature_dim, self.feature_dim) if embedding else None
        self.num_classes = num_classes

    # -- structure -------------------------------------------------------------------------
    def _body_blocks(self) -> list[tuple[str, nn.Module]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def arch_kwargs(self) -> dict[str, Any]:
        """Constructor arguments (besides heads) needed to rebuild the model from a checkpoint."""
        return {} if self.width == 64 else {"width": self.width}

    def backbone_modules(self) -> list[nn.Module]:
        """Everything except the heads (frozen in phase 2)."""
        return [m for _, m in self._body_blocks()]

    # -- forward ---------------------------------------------------------------------------
    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Output of every named body block (for shape checks and feature inspection)."""
        out: dict[str, torch.Tensor] = {}
        for name, block in self._body_blocks():
            x = block(x)
            out[name] = x
        return out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled 2048-d face descriptor (before any head)."""
        for _, block in self._body_blocks():
            x = block(x)
        x = self.avgpool(x)
        if x.shape[-2:] != (1, 1):
            raise ValueError(
                f"{self.arch}: block-4 output must be 7x7 before AvgPool(7), got {tuple(x.shape[-2:])} "
                f"pooled; check the input size ({self.input_hint()})"
            )
        return torch.flatten(x, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Phase-2 face embedding ``(B, 2048)``."""
        if self.embedding is None:
            raise RuntimeError(
                f"{self.arch} has no embedding head (a phase-1 model): call with_embedding_head() "
                "or load the phase-2 checkpoint (models/<model>/model.pt)"
            )
        return self.embedding(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        if self.embedding is not None:
            return self.embedding(f)
        if self.fc is not None:
            return self.fc(f)
        return f

    def input_hint(self) -> str:
        return "?"

    # -- phase switch ----------------------------------------------------------------------
    def with_embedding_head(self, init_from: nn.Linear | dict[str, torch.Tensor] | None = None) -> FaceNet:
        """Drop the classifier and add a (random or copied) FC 2048 -> 2048 embedding head."""
        from cdfv.models.heads import copy_linear_

        self.fc = None
        self.num_classes = None
        head = EmbeddingHead(self.feature_dim, self.feature_dim)
        ref = next(self.parameters())
        head.to(device=ref.device, dtype=ref.dtype)
        if init_from is not None:
            copy_linear_(head, init_from)
        self.embedding = head
        return self


class ResNet50Caffe(FaceNet):
    """ResNet50 of VGGFace2 (Caffe style): input 3x224x224 -> 2048. Table 4 of the thesis."""

    arch = "resnet50_caffe"

    def __init__(self, num_classes: int | None = None, embedding: bool = True, width: int = 64) -> None:
        super().__init__(num_classes, embedding, width)
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
        inplanes = width
        for i, (planes, units) in enumerate(scaled_blocks(width), start=1):
            setattr(self, f"layer{i}", make_block(inplanes, planes, units, stride=1 if i == 1 else 2))
            inplanes = planes * EXPANSION
        assert inplanes == self.feature_dim
        init_weights_(self)

    def _root(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def _body_blocks(self) -> list[tuple[str, nn.Module]]:
        root = nn.Sequential(self.conv1, self.bn1, self.relu, self.maxpool)
        return [
            ("root", root),
            ("layer1", self.layer1),
            ("layer2", self.layer2),
            ("layer3", self.layer3),
            ("layer4", self.layer4),
        ]

    def input_hint(self) -> str:
        return "expects 3x224x224"


def resnet50_caffe(num_classes: int | None = None, embedding: bool = True, width: int = 64) -> ResNet50Caffe:
    """ResNet50 (VGGFace2 Caffe style). ``num_classes`` adds the phase-1 classifier FC;
    ``embedding`` adds the phase-2 FC 2048 -> 2048 (``model.embed(x)``). ``width`` 64 = paper."""
    return ResNet50Caffe(num_classes=num_classes, embedding=embedding, width=width)
