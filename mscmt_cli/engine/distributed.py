"""Data-parallel training under ``torchrun`` (DistributedDataParallel).

Launched with ``torchrun --nproc-per-node N -m mscmt_cli train ...`` (or with
``--nnodes``/``--rdzv-endpoint`` on several machines), each process trains on
its share of every global batch: all ranks draw the same epoch (same seed, the
same class-balanced sampler), cut it into the same global batches, and rank
``r`` takes items ``r, r + N, ...`` of each. DDP averages the gradients, so a
step equals a single process's step on the whole global batch. Validation is
predicted in shards and gathered, so every rank computes the same metrics and
takes the same early-stopping decision; only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job (``world == 1`` when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: list[int]) -> list[int]:
        """This rank's part of one global batch."""
        return batch[self.rank :: self.world]

    def usable(self, batches: list[list[int]]) -> list[list[int]]:
        """Global batches every rank gets at least one item of (the rest are dropped)."""
        return [b for b in batches if len(b) >= self.world]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def gather(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order (``[obj]`` when not distributed)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def init_distributed(device_name: str) -> DistContext:
    """Join the ``torchrun`` process group if this process was launched by it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank, world, local_rank)


def device_for(ctx: DistContext, device: torch.device) -> torch.device:
    """The CUDA device of this local rank, or ``device`` unchanged."""
    return torch.device("cuda", ctx.local_rank) if device.type == "cuda" and ctx.enabled else device
