"""The network input: one-hot semantic map plus the instance-edge channel.

Label maps given to these functions hold *channel indices* (0..num_channels-1): the dataset has
already turned raw ids into channels (`LabelSet.to_channels`), including the dontcare channel.
"""
from __future__ import annotations

import torch


def one_hot(label: torch.Tensor, num_channels: int) -> torch.Tensor:
    """[B,1,H,W] or [B,H,W] integer channel indices -> float one-hot [B,C,H,W]."""
    if label.dim() == 3:
        label = label.unsqueeze(1)
    label = label.long()
    out = torch.zeros(label.shape[0], num_channels, label.shape[2], label.shape[3], device=label.device)
    return out.scatter_(1, label, 1.0)


def instance_edges(instance: torch.Tensor) -> torch.Tensor:
    """1 where an instance id differs from its left, right, upper or lower neighbour, else 0.

    [B,1,H,W] (or [B,H,W]) integer ids -> float [B,1,H,W].
    """
    if instance.dim() == 3:
        instance = instance.unsqueeze(1)
    edge = torch.zeros_like(instance, dtype=torch.bool)
    horizontal = instance[:, :, :, 1:] != instance[:, :, :, :-1]
    vertical = instance[:, :, 1:, :] != instance[:, :, :-1, :]
    edge[:, :, :, 1:] |= horizontal
    edge[:, :, :, :-1] |= horizontal
    edge[:, :, 1:, :] |= vertical
    edge[:, :, :-1, :] |= vertical
    return edge.float()


def semantic_map(label: torch.Tensor, num_channels: int, instance: torch.Tensor | None = None) -> torch.Tensor:
    """One-hot of `label` over `num_channels`, with the instance-edge channel appended when given."""
    semantic = one_hot(label, num_channels)
    if instance is not None:
        semantic = torch.cat([semantic, instance_edges(instance).to(semantic.device)], dim=1)
    return semantic
