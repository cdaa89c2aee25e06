"""Residual blocks whose normalisation layers are SPADE."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.layers.norms import maybe_spectral_norm
from spadekit.layers.spade import SPADE


class SPADEResBlock(nn.Module):
    """SPADE -> LeakyReLU -> conv3x3 (in -> mid) -> SPADE -> LeakyReLU -> conv3x3 (mid -> out), plus shortcut.

    mid = min(in, out). When in != out the shortcut is SPADE -> 1x1 conv (no bias); else identity.
    Spectral norm applies to the block's convolutions, not to those inside SPADE.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        semantic_channels: int,
        spade_hidden: int = 128,
        spade_kernel: int = 3,
        norm: str = "batch",
        spectral_norm: bool = True,
    ):
        super().__init__()
        mid = min(in_channels, out_channels)
        self.learned_shortcut = in_channels != out_channels
        spade = lambda c: SPADE(c, semantic_channels, spade_hidden, spade_kernel, norm)  # noqa: E731
        self.norm_0 = spade(in_channels)
        self.conv_0 = maybe_spectral_norm(nn.Conv2d(in_channels, mid, 3, padding=1), spectral_norm)
        self.norm_1 = spade(mid)
        self.conv_1 = maybe_spectral_norm(nn.Conv2d(mid, out_channels, 3, padding=1), spectral_norm)
        if self.learned_shortcut:
            self.norm_shortcut = spade(in_channels)
            self.conv_shortcut = maybe_spectral_norm(nn.Conv2d(in_channels, out_channels, 1, bias=False), spectral_norm)

    def forward(self, x: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_shortcut(self.norm_shortcut(x, semantic)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, semantic), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, semantic), 0.2))
        return shortcut + dx
