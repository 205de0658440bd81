"""Data-parallel training across processes: `torchrun --nproc_per_node=N -m tinyvdm train ...`.

Every process computes the same global batch of a step (a pure function of seed and step) and takes its
own micro-batches of it; DistributedDataParallel averages the gradients, so all processes hold the same
weights after every step. Process 0 alone writes the log and the checkpoints. Single-process runs never
touch torch.distributed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group that torchrun describes in the environment (gloo on CPU, NCCL on CUDA).

    Returns the world and this process's device (cuda:LOCAL_RANK under torchrun on GPUs).
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size()), device


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def sum_across(value: torch.Tensor, world: World) -> torch.Tensor:
    """The sum of `value` over all processes (itself when alone)."""
    if world.size > 1:
        value = value.clone()
        dist.all_reduce(value)
    return value


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()
