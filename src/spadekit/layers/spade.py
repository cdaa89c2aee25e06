"""The SPADE layer: normalise, then modulate with a scale and bias predicted from the semantic map."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.layers.norms import param_free_norm


class SPADE(nn.Module):
    """out = norm(x) * (1 + gamma(segmap)) + beta(segmap).

    channels: channels of x. semantic_channels: channels of the semantic map. hidden: width of the
    shared conv (128 in the paper, independent of the generator width). norm: parameter-free norm name.
    """

    def __init__(self, channels: int, semantic_channels: int, hidden: int = 128, kernel_size: int = 3, norm: str = "batch"):
        super().__init__()
        padding = kernel_size // 2
        self.norm = param_free_norm(norm, channels)
        self.shared = nn.Sequential(nn.Conv2d(semantic_channels, hidden, kernel_size, padding=padding), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, kernel_size, padding=padding)
        self.beta = nn.Conv2d(hidden, channels, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        normalized = self.norm(x)
        if semantic.shape[-2:] != x.shape[-2:]:
            semantic = F.interpolate(semantic, size=x.shape[-2:], mode="nearest")
        hidden = self.shared(semantic)
        return normalized * (1 + self.gamma(hidden)) + self.beta(hidden)
