"""Multi-GPU training with ``torchrun`` (DDP): environment, process group, relaunch.

``cdfv train-resnet50`` re-executes itself under ``torchrun --standalone --nproc_per_node=<gpus>``
when more than one GPU is visible and it is not already a torchrun worker; the same command can be
launched by hand::

    torchrun --standalone --nproc_per_node=8 -m cdfv.cli train-resnet50 --params params.yaml
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


@dataclass(frozen=True)
class DistEnv:
    """Rank / world size from torchrun's environment (1 process when absent)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> DistEnv:
        return cls(
            int(os.environ.get("RANK", "0")),
            int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")),
        )

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def device(self, preference: str) -> torch.device:
        """``auto`` = this worker's GPU when CUDA is available, else CPU."""
        if preference == "cpu":
            return torch.device("cpu")
        if preference.startswith("cuda") or preference == "auto":
            if not torch.cuda.is_available():
                if preference == "auto":
                    return torch.device("cpu")
                raise RuntimeError(f"train.device={preference!r} but CUDA is not available; use auto or cpu")
            if self.distributed:
                return torch.device("cuda", self.local_rank)
            return torch.device(preference if preference != "auto" else "cuda")
        raise ValueError(f"unknown device {preference!r}")

    def init(self, device: torch.device) -> None:
        if self.distributed and not torch.distributed.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def barrier(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.barrier()

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.all_reduce(t)
        return t

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (a picklable object)."""
        if self.distributed and torch.distributed.is_initialized():
            box = [obj]
            torch.distributed.broadcast_object_list(box, src=0)
            return box[0]
        return obj

    def shutdown(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def wants_sync_batchnorm(env: DistEnv, device: torch.device) -> bool:
    """SyncBatchNorm for DDP on CUDA: BN statistics over the global batch of 64 (thesis §5.5.2),
    not over each GPU's slice. Not on CPU (gloo), where torch has no SyncBatchNorm kernels."""
    return env.distributed and device.type == "cuda"


def maybe_sync_batchnorm(model: M, env: DistEnv, device: torch.device) -> M:
    """``model`` with every BatchNorm converted to SyncBatchNorm when :func:`wants_sync_batchnorm`.

    Parameters and running statistics are shared/copied, module names and state-dict keys are kept,
    so checkpoints and :func:`cdfv.models.save_model` files load into plain BatchNorm models.
    """
    if not wants_sync_batchnorm(env, device):
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[return-value]


def torchrun_argv(argv: list[str], device: str) -> list[str] | None:
    """The torchrun command re-running ``argv`` on every visible GPU, or None (single process)."""
    if "LOCAL_RANK" in os.environ or device == "cpu" or not torch.cuda.is_available():
        return None
    n = torch.cuda.device_count()
    if n < 2 or (device.startswith("cuda:")):
        return None
    exe = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    return [exe, "--standalone", f"--nproc_per_node={n}", "-m", "cdfv.cli", *argv]
