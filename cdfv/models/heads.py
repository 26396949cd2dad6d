"""Heads put on top of the 2048-d pooled features of (c)ResNet backbones.

Phase 1 (identification) uses :class:`ClassifierHead` (FC 2048 -> number of identities, trained
with cross-entropy). Phase 2 (verification) replaces it with :class:`EmbeddingHead` (FC 2048 ->
2048, the face embedding, trained with ArcFace whose class weights live in the loss). Thesis §5.5.
"""

from __future__ import annotations

import torch
from torch import nn

FEATURES = 2048  #: width of the pooled features of block 4 (512 x expansion 4)
EMBEDDING = 2048  #: face-embedding size of the paper (Table 4/6: "avg. pool, 2048-dim fc")


def ClassifierHead(num_classes: int, in_features: int = FEATURES) -> nn.Linear:  # noqa: N802
    """Phase-1 identification head: ``Linear(features, num_classes)`` (logits).

    A plain ``nn.Linear`` (not a subclass) so MAC counters such as ptflops recognise it.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return nn.Linear(in_features, num_classes)


def EmbeddingHead(dim: int = EMBEDDING, in_features: int = FEATURES) -> nn.Linear:  # noqa: N802
    """Phase-2 verification head: ``Linear(features, 2048)`` whose output is the embedding."""
    return nn.Linear(in_features, dim)


def copy_linear_(dst: nn.Linear, src: nn.Linear | dict[str, torch.Tensor]) -> None:
    """Copy weight and bias of ``src`` (a Linear or its state dict) into ``dst`` in place.

    Used to initialise cResNet39's phase-2 FC from the ResNet50 phase-2 FC (thesis §6.3.2).
    """
    state = src.state_dict() if isinstance(src, nn.Module) else src
    if tuple(state["weight"].shape) != tuple(dst.weight.shape):
        raise ValueError(f"cannot copy FC of shape {tuple(state['weight'].shape)} into {tuple(dst.weight.shape)}")
    with torch.no_grad():
        dst.weight.copy_(state["weight"])
        dst.bias.copy_(state["bias"])
