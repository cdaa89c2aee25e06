"""Distributed helpers: one process or N under torchrun, the same code path.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; without them we are a single process and nothing
is initialised. gloo on CPU, NCCL on CUDA. Only rank 0 logs and saves.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init(device: str = "auto") -> DistInfo:
    """Start the process group when launched by torchrun; pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average scalar metrics over processes (for logging)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=info.device)
    dist.all_reduce(tensor)
    tensor /= info.world_size
    return dict(zip(keys, tensor.tolist()))


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """Rank 0's decision, shared by every process (e.g. 'checkpoint now' decided by wall time)."""
    if not info.enabled:
        return flag
    tensor = torch.tensor([int(flag)], device=info.device)
    dist.broadcast(tensor, 0)
    return bool(tensor.item())


def maybe_sync_batchnorm(module: nn.Module, norm: str, info: DistInfo) -> nn.Module:
    """The BatchNorms of a network built with norm "syncbatch" -> synchronised BatchNorm, only when
    training in more than one process (as the pytorch/examples DDP trainers do); any other norm
    ("batch": statistics of each process's own batch) and one process: the module unchanged.

    CUDA: torch's SyncBatchNorm. CPU (gloo): torch's SyncBatchNorm refuses CPU tensors, so
    GlooSyncBatchNorm computes the same statistics with a differentiable all_reduce.
    """
    if norm != "syncbatch" or not info.enabled:
        return module
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        return module
    if info.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_gloo(module)


class GlooSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are taken over the batches of all processes (CPU/gloo)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dtype = x.dtype
        x32 = x.float()
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float32) * dist.get_world_size()
        stats = all_reduce(torch.stack([x32.sum((0, 2, 3)), (x32 * x32).sum((0, 2, 3))]))
        mean = stats[0] / count
        var = (stats[1] / count - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * count / (count - 1).clamp_min(1)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(unbiased.detach(), momentum)
        out = (x32 - mean[None, :, None, None]) * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out.to(dtype)


def _convert_gloo(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, GlooSyncBatchNorm):
        new = GlooSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        new.load_state_dict(module.state_dict())
        return new.to(next(iter(module.buffers()), torch.empty(0)).device)
    for name, child in module.named_children():
        module.add_module(name, _convert_gloo(child))
    return module


def wrap(module: nn.Module, info: DistInfo) -> nn.Module:
    """DDP-wrap a module that has trainable parameters when distributed; otherwise return it as is.

    Buffers are not broadcast: spectral-norm vectors evolve identically on every rank, and BN
    statistics are synchronised by SyncBatchNorm.
    """
    if not info.enabled or not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [info.device.index] if info.device.type == "cuda" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # broadcast_buffers is being renamed upstream
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


class ResumableSampler(DistributedSampler):
    """DistributedSampler that can start part-way through an epoch (to resume exactly).

    Epoch e uses the permutation of `seed + e` (as DistributedSampler); this rank takes every
    world_size-th index, so step k's global batch is the same whatever the number of processes.
    `start` = samples of this rank already consumed in the current epoch.
    """

    def __init__(self, dataset, info: DistInfo, seed: int, shuffle: bool = True):
        super().__init__(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self):
        indices = list(super().__iter__())
        return iter(indices[self.start :])

    def __len__(self) -> int:
        return self.num_samples - self.start
