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

import torch


@dataclass(frozen=True)
class DistEnv:
    """Rank / world size from torchrun's environment (1 process when absent)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> DistEnv:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))

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

    def shutdown(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def torchrun_argv(argv: list[str], device: str) -> list[str] | None:
    """The torchrun command re-running ``argv`` on every visible GPU, or None (single process)."""
    if "LOCAL_RANK" in os.environ or device == "cpu" or not torch.cuda.is_available():
        return None
    n = torch.cuda.device_count()
    if n < 2 or (device.startswith("cuda:")):
        return None
    exe = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    return [exe, "--standalone", f"--nproc_per_node={n}", "-m", "cdfv.cli", *argv]
