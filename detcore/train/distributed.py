"""DDP for users who outgrow one device: ``torchrun --nproc_per_node=N -m detcore train ...``.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK (and the rendezvous address); without them this module
is a no-op and training runs in one process. Backend: NCCL on CUDA, gloo on CPU. Each rank reads
its own shard (DistributedSampler); rank 0 alone writes the run directory and validates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from detcore.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    started_here: bool = False  # we initialised the process group, so we tear it down

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (if any)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if torch_dist.is_initialized():
        return DistInfo(rank, world_size, local_rank, started_here=False)
    if use_cuda:
        torch.cuda.set_device(local_rank)
    torch_dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank, world_size, local_rank, started_here=True)


def teardown(info: DistInfo) -> None:
    if info.started_here and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def device_for(setting: str, info: DistInfo) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is a setting error, not a crash later."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda was requested but no CUDA GPU is available; use --device cpu or auto")
    if setting == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", info.local_rank if info.enabled else torch.cuda.current_device())


def train_sampler(dataset, info: DistInfo, *, seed: int, generator: torch.Generator, weights=None):
    """Each rank's shard under torchrun; else a shuffle, or with ``weights`` (one per image) a draw
    with replacement in proportion to them (``augment.balanced_crops``; not under torchrun, whose
    shards are plain shuffles)."""
    if info.enabled:
        return torch.utils.data.DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                                                   shuffle=True, seed=seed)
    if weights is not None:
        return torch.utils.data.WeightedRandomSampler(weights, len(weights), replacement=True, generator=generator)
    return torch.utils.data.RandomSampler(dataset, generator=generator)


def wrap_model(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    if not info.enabled:
        return model
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return torch.nn.parallel.DistributedDataParallel(model)


def mean_across_ranks(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The step's losses averaged over ranks, so every rank sees (and reacts to) the same NaN."""
    if not info.enabled:
        return values
    values = values.clone()
    torch_dist.all_reduce(values, op=torch_dist.ReduceOp.SUM)
    return values / info.world_size


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on any (stop requests, early stopping)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    if torch_dist.get_backend() == "nccl":
        t = t.cuda()
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        torch_dist.barrier()
