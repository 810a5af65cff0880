"""Data-parallel training with torch's DistributedDataParallel, for `fit` when torchrun started several processes.

Each epoch is the one-process epoch, shared out: the global batches come from the same seeded shuffle as
a one-process run's (`epoch_batches`), and rank r of w takes the r-th of w slices of every batch
(`RankShare`). Each image keeps its augmentation draw (seeded by seed, epoch and image index, not by
process). DDP averages the gradients over the processes, so a step sees the gradient of the whole
global batch. It is not bit-identical to one process: batch norm normalises each process's slice on its
own statistics, dropout draws its masks per process, and float sums are split differently; the
end-to-end test states the tolerance.

NCCL on CUDA (one process per GPU, LOCAL_RANK's), gloo on the CPU. One process group per process, made on
first use and left to the interpreter's exit (a stage may train twice: a control's fine-tuning and head).
"""

from __future__ import annotations

import atexit

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from facetransfer.config import ConfigError
from facetransfer.launch import Process


def ensure_process_group(process: Process, device: torch.device) -> torch.device:
    """Join torchrun's process group (once per process) and return this process's device: cuda:LOCAL_RANK on
    CUDA, the CPU otherwise."""
    if device.type == "cuda":
        device = torch.device("cuda", process.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave)
    return device


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` (its frozen parameters are left out of the gradient sync)."""
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def check_batch_size(batch_size: int, process: Process, section: str) -> None:
    if batch_size % process.world_size:
        raise ConfigError(f"{section}.batch_size: {batch_size} images do not split evenly over the "
                          f"{process.world_size} processes (distributed.nproc_per_node x nnodes); expected a "
                          f"multiple of {process.world_size}")


class _Index(Dataset):
    """0..n-1: what a DataLoader over the training set would fetch, without the images."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """The batches of indices a one-process run's shuffled DataLoader (same generator) would load. A
    DataLoader over the indices draws from `generator` exactly as the one over the images does, whatever
    torch's sampler does inside."""
    loader = DataLoader(_Index(n), batch_size=batch_size, shuffle=True, generator=generator)
    return [batch.tolist() for batch in loader]


class RankShare(Sampler[list[int]]):
    """This process's part of every global batch: rank r of w takes the r-th of w near-equal slices. A last
    batch with fewer images than processes is dropped on every rank (DDP needs every process to step)."""

    def __init__(self, batches: list[list[int]], rank: int, world_size: int) -> None:
        self.parts = [np.array_split(np.asarray(batch), world_size)[rank].tolist() for batch in batches
                      if len(batch) >= world_size]

    def __iter__(self):
        return iter(self.parts)

    def __len__(self) -> int:
        return len(self.parts)

    @property
    def samples(self) -> int:
        return sum(len(part) for part in self.parts)


def mean_over_processes(mean: float, count: int, device: torch.device) -> float:
    """The mean over every process's samples, from each process's mean over its own `count` samples."""
    pair = torch.tensor([mean * count, count], dtype=torch.float64, device=device)
    dist.all_reduce(pair)
    return float(pair[0] / pair[1])


def gather_rows(values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """Every process's (rows of, values) put together in row order: an (n, ...) array on every process."""
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (rows, values))
    out = np.empty((n, *values.shape[1:]), dtype=values.dtype)
    for part_rows, part_values in parts:
        out[part_rows] = part_values
    return out


def from_main(value):
    """Rank 0's `value` on every process (a checkpoint read once, by the process that writes them)."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    dist.barrier()


def sync_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (batch-norm running statistics) on every process: each updated its own in its last
    step, and the validation, the best state and the saved model must be one model's."""
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)
