"""Numerical precision guards for the parts that must not run in bf16/TF32 (codecs, metric-learning heads).

* :func:`strict_fp32` — autocast off and TF32 off (cuBLAS and cuDNN): IEEE fp32 convolutions and
  matmuls. The frozen codec encoder runs under it, so ``round(g_a(x))`` computed online equals the
  entropy-decoded ŷ of the real codec on the same device (thesis §6.2: ŷ = round(g_a(x))); with
  TF32 a value near a half-integer rounds the other way.
* :func:`fp32_head` — the metric-learning head (FC 2048 embedding, normalisation, cosine, ArcFace
  loss) in fp32 under a bf16 autocast region: in bf16 the cosine logits at s = 64 move in steps of
  ~0.25 and ``acos`` of a cosine rounded to 1.0 has an infinite gradient (thesis §5.5.2, §6.3.2).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def strict_fp32(device_type: str = "cuda") -> Iterator[None]:
    """IEEE fp32 inside: autocast disabled for ``device_type``, TF32 disabled for matmul and cuDNN."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.autocast(device_type, enabled=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def fp32_head(head: nn.Module, feats: torch.Tensor) -> torch.Tensor:
    """``head(feats)`` in fp32 whatever autocast region the caller is in (features cast to fp32)."""
    with torch.autocast(feats.device.type, enabled=False):
        return head(feats.float())
