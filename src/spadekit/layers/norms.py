"""Normalisation layers chosen by name (spectral norm: `spadekit.layers.spectral_norm`)."""
from __future__ import annotations

from torch import nn


def param_free_norm(name: str, channels: int) -> nn.Module:
    """A normalisation layer without learned affine parameters (the SPADE layer supplies them).

    batch: BatchNorm with running statistics. syncbatch: the same layer; the trainer converts it to
    SyncBatchNorm when it runs in more than one process. instance: InstanceNorm, no statistics.
    """
    try:
        factory = PARAM_FREE_NORMS[name]
    except KeyError:
        raise ValueError(f"unknown norm {name!r}; choose one of {sorted(PARAM_FREE_NORMS)}") from None
    return factory(channels)


PARAM_FREE_NORMS = {
    "batch": lambda c: nn.BatchNorm2d(c, affine=False),
    "syncbatch": lambda c: nn.BatchNorm2d(c, affine=False),
    "instance": lambda c: nn.InstanceNorm2d(c, affine=False),
}


def feature_norm(name: str, channels: int) -> nn.Module:
    """Norm after a discriminator/encoder conv: instance (no affine), batch/syncbatch (affine), none."""
    try:
        factory = FEATURE_NORMS[name]
    except KeyError:
        raise ValueError(f"unknown norm {name!r}; choose one of {sorted(FEATURE_NORMS)}") from None
    return factory(channels)


FEATURE_NORMS = {
    "instance": lambda c: nn.InstanceNorm2d(c, affine=False),
    "batch": lambda c: nn.BatchNorm2d(c, affine=True),
    "syncbatch": lambda c: nn.BatchNorm2d(c, affine=True),
    "none": lambda c: nn.Identity(),
}
