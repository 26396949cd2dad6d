"""CompNet, RecNet and sphere20 of Bian et al. 2019 (§2.2.1, §2.3.1) and their composition (§2.4).

* :class:`CompNet`: conv (stride 1) → [residual blocks] → 3 x (conv stride 2 → [residual blocks]) →
  conv (stride 1) to ``C`` channels → tanh: an ``H/8 x W/8 x C`` compact map in [-1, 1] (five convs,
  layers 2-4 stride 2, Fig. 5).
* :class:`RecNet`: the mirror image: conv → [blocks] → 3 x (x2 transposed conv → [blocks]) → conv to
  3 channels → tanh (an image in [-1, 1]).
* Residual block (Fig. 6b, "dropout added", PReLU instead of ReLU): conv → PReLU → dropout → conv,
  plus the identity. Widths, kernels, block counts and the dropout rate are not given in the paper:
  ``bian.compnet`` / ``bian.recnet`` (documented in docs/bian.md).
* :class:`Sphere20`: CosFace's sphere20 (SphereFace-20): 4 stages of (conv 3x3 stride 2 + PReLU,
  then 1/2/4/1 residual units of two conv 3x3 + PReLU), 64/128/256/512 channels, then FC 512; 20 conv
  layers, 112x96 input → 7x6x512.
* Quantisation (eq. 1): ``X_Q = round((X + 1) * 255 / 2)``; dequantisation ``X_Q * 2 / 255 - 1``. In
  training the rounding is straight-through (:func:`quantise_ste`: forward rounds, gradient 1) or
  skipped (``bian.train.quantise: none``, what §2.2.2 did).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cdfv.config import BianNetParams, BianParams

#: The downsampling factor of CompNet (three stride-2 layers, §2.2.1).
FACTOR = 8


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 / 0..255 images (B, 3, H, W) → float in [-1, 1] (§2.2.2)."""
    return images.float() / 127.5 - 1.0


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → uint8 0..255 (rounded, clamped)."""
    return ((x.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Eq. (1): ``round((x + 1) * 255 / 2)`` as uint8 (the PNG samples)."""
    return torch.round((x.float().clamp(-1, 1) + 1.0) * 255.0 / 2.0).to(torch.uint8)


def dequantise(q: torch.Tensor) -> torch.Tensor:
    """``X_Q * 2 / 255 - 1`` (§2.2.2)."""
    return q.float() * 2.0 / 255.0 - 1.0


def quantise_ste(x: torch.Tensor) -> torch.Tensor:
    """Quantise-dequantise in the forward pass, identity gradient (straight-through)."""
    y = dequantise(quantise(x)).to(x.dtype)
    return x + (y - x).detach()


class ResidualBlock(nn.Module):
    """Fig. 6b: conv → PReLU → dropout → conv, + identity (PReLU after the sum)."""

    def __init__(self, width: int, kernel: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, kernel, padding=kernel // 2)
        self.act1 = nn.PReLU(width)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(width, width, kernel, padding=kernel // 2)
        self.act2 = nn.PReLU(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(x + self.conv2(self.drop(self.act1(self.conv1(x)))))


def _blocks(p: BianNetParams) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(p.width, p.kernel, p.dropout) for _ in range(p.blocks)))


class CompNet(nn.Module):
    """Image in [-1, 1] (B, 3, H, W) → compact map in [-1, 1] (B, C, H/8, W/8)."""

    def __init__(self, channels: int = 3, p: BianNetParams | None = None) -> None:
        super().__init__()
        p = p or BianNetParams()
        k, dk, w = p.kernel, p.down_kernel, p.width
        pad_down = (dk - 2 + 1) // 2  # exact halving for even sizes: k=4 -> 1, k=3 -> 1, k=5 -> 2
        layers: list[nn.Module] = [nn.Conv2d(3, w, k, padding=k // 2), nn.PReLU(w), _blocks(p)]
        for _ in range(3):
            layers += [nn.Conv2d(w, w, dk, stride=2, padding=pad_down), nn.PReLU(w), _blocks(p)]
        layers += [nn.Conv2d(w, channels, k, padding=k // 2)]
        self.net = nn.Sequential(*layers)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % FACTOR or x.shape[-2] % FACTOR:
            raise ValueError(f"CompNet input sides must be multiples of {FACTOR}, got {tuple(x.shape[-2:])}")
        return torch.tanh(self.net(x))


class RecNet(nn.Module):
    """Compact map in [-1, 1] (B, C, h, w) → image in [-1, 1] (B, 3, 8h, 8w)."""

    def __init__(self, channels: int = 3, p: BianNetParams | None = None) -> None:
        super().__init__()
        p = p or BianNetParams()
        k, dk, w = p.kernel, p.down_kernel, p.width
        pad, out_pad = (dk - 1) // 2, dk % 2  # (h-1)*2 - 2 pad + dk + out_pad = 2h
        layers: list[nn.Module] = [nn.Conv2d(channels, w, k, padding=k // 2), nn.PReLU(w), _blocks(p)]
        for _ in range(3):
            layers += [
                nn.ConvTranspose2d(w, w, dk, stride=2, padding=pad, output_padding=out_pad),
                nn.PReLU(w),
                _blocks(p),
            ]
        layers += [nn.Conv2d(w, 3, k, padding=k // 2)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(z))


class _SphereUnit(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.act1 = nn.Conv2d(c, c, 3, padding=1), nn.PReLU(c)
        self.conv2, self.act2 = nn.Conv2d(c, c, 3, padding=1), nn.PReLU(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act2(self.conv2(self.act1(self.conv1(x))))


class Sphere20(nn.Module):
    """CosFace's sphere20 on 112x96 faces in [-1, 1] → ``embedding``-d features (Fig. 7)."""

    UNITS = (1, 2, 4, 1)
    WIDTHS = (64, 128, 256, 512)

    def __init__(self, embedding: int = 512, size: tuple[int, int] = (112, 96)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for units, c in zip(self.UNITS, self.WIDTHS):
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.PReLU(c)]
            layers += [_SphereUnit(c) for _ in range(units)]
            c_in = c
        self.features = nn.Sequential(*layers)
        h, w = size
        for _ in range(4):
            h, w = (h + 1) // 2, (w + 1) // 2
        self.fc = nn.Linear(self.WIDTHS[-1] * h * w, embedding)
        self.embedding = embedding
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


class BianNet(nn.Module):
    """CompNet → (quantise) → RecNet → sphere20: the framework of Fig. 4 / Fig. 8 in one module."""

    def __init__(self, channels: int, params: BianParams, size: tuple[int, int] = (112, 96)) -> None:
        super().__init__()
        self.compnet = CompNet(channels, params.compnet)
        self.recnet = RecNet(channels, params.recnet)
        self.sphere20 = Sphere20(params.embedding, size)
        self.channels = channels

    def codec_parameters(self) -> list[nn.Parameter]:
        return [*self.compnet.parameters(), *self.recnet.parameters()]

    def reconstruct(self, x: torch.Tensor, quantise_mode: str = "ste") -> torch.Tensor:
        """[-1, 1] image → compact map → (straight-through) quantisation → RecNet image in [-1, 1]."""
        z = self.compnet(x)
        if quantise_mode == "ste":
            z = quantise_ste(z)
        return self.recnet(z)

    def forward(self, x: torch.Tensor, quantise_mode: str = "ste") -> torch.Tensor:
        return self.sphere20(self.reconstruct(x, quantise_mode))


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. (2) (mean over all samples), in fp32."""
    return F.mse_loss(a.float(), b.float())
