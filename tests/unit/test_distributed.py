"""Multi-GPU phase 1: SyncBatchNorm exactly when DDP runs on CUDA (the paper's batch of 64 is global)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cdfv.models import build_model
from cdfv.train.distributed import DistEnv, maybe_sync_batchnorm, wants_sync_batchnorm

CUDA, CPU = torch.device("cuda", 0), torch.device("cpu")


@pytest.mark.parametrize(
    ("world", "device", "expected"),
    [
        (2, CUDA, True),  # DDP on GPUs (nccl): BN statistics over the global batch
        (8, CUDA, True),
        (1, CUDA, False),  # one GPU: plain BN already sees the whole batch
        (2, CPU, False),  # DDP on CPU (gloo): torch has no SyncBatchNorm there
        (1, CPU, False),
    ],
)
def test_sync_batchnorm_decision(world: int, device: torch.device, expected: bool) -> None:
    env = DistEnv(rank=0, world=world, local_rank=0)
    assert wants_sync_batchnorm(env, device) is expected
    model = build_model("cresnet39", num_classes=5, embedding=False, in_channels=8, width=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = maybe_sync_batchnorm(model, env, device)
    kinds = {type(m) for m in out.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    assert kinds == ({nn.SyncBatchNorm} if expected else {nn.BatchNorm2d})
    after = out.state_dict()  # same keys and values: checkpoints load either way
    assert list(after) == list(before) and all(torch.equal(after[k], before[k]) for k in before)
