"""CLADE (Tan et al., 2021): class-adaptive normalisation.

SPADE predicts a scale and bias for every pixel with convolutions over the semantic map; CLADE
looks them up per class in a learned table, so the modulation costs a gather instead of three
convolutions, and a label-index map is its natural input.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.layers.lookup import LabelMaps
from spadekit.layers.norms import param_free_norm
from spadekit.layers.spectral_norm import maybe_spectral_norm


class CLADE(nn.Module):
    """out = norm(x) * gamma[class] + beta[class], gamma and beta rows of learned [N, channels] tables.

    channels: channels of x. semantic_channels: N, the rows of the tables (classes + dontcare, and the
    instance edge when the one-hot map carries one). norm: parameter-free norm name (batch,
    syncbatch, instance). The tables start at gamma = 1, beta = 0: plain normalisation.

    forward(x, semantic): semantic is a float map [B,N,h,w] (one-hot, or soft: each pixel's gamma
    and beta are then the map-weighted sums of rows), an integer label-index map [B,1,h,w] or
    [B,h,w] of rows, or a `LabelMaps` (label indices, + the edge channel as the last row). Index
    maps are a lookup with the same result as their one-hot map. The map is resized to x's size
    with nearest neighbours.
    """

    def __init__(self, channels: int, semantic_channels: int, norm: str = "batch"):
        super().__init__()
        self.norm = param_free_norm(norm, channels)
        self.gamma = nn.Parameter(torch.ones(semantic_channels, channels))
        self.beta = nn.Parameter(torch.zeros(semantic_channels, channels))

    def modulation(self, semantic: torch.Tensor | LabelMaps, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma, beta) maps [B, channels, *size] for a float, label-index or `LabelMaps` semantic map."""
        if isinstance(semantic, LabelMaps):
            if semantic.channels != self.gamma.shape[0]:
                raise ValueError(f"CLADE has {self.gamma.shape[0]} class rows but the label map stands for {semantic.channels} channels")
            label, edge = semantic.at(size)
            n = semantic.num_labels
            gamma, beta = (F.embedding(label[:, 0], t[:n]).permute(0, 3, 1, 2) for t in (self.gamma, self.beta))
            if edge is not None:
                gamma = gamma + edge.to(gamma.dtype) * self.gamma[n:].view(1, -1, 1, 1)
                beta = beta + edge.to(beta.dtype) * self.beta[n:].view(1, -1, 1, 1)
            return gamma, beta
        if semantic.is_floating_point():
            if semantic.shape[1] != self.gamma.shape[0]:
                raise ValueError(f"CLADE has {self.gamma.shape[0]} class rows but the semantic map has {semantic.shape[1]} channels")
            if semantic.shape[-2:] != size:
                semantic = F.interpolate(semantic, size=size, mode="nearest")
            # the map-weighted sum of rows is a 1x1 conv with the tables as weights
            tables = torch.cat([self.gamma, self.beta], dim=1).t()[:, :, None, None].to(semantic.dtype)
            return F.conv2d(semantic, tables).chunk(2, dim=1)
        index = semantic if semantic.dim() == 3 else semantic[:, 0]
        if index.shape[-2:] != size:
            # nearest resize of integer maps: pick the source pixel as F.interpolate(mode="nearest") does
            rows = (torch.arange(size[0], device=index.device) * index.shape[-2]) // size[0]
            cols = (torch.arange(size[1], device=index.device) * index.shape[-1]) // size[1]
            index = index[:, rows][:, :, cols]
        index = index.long()
        return F.embedding(index, self.gamma).permute(0, 3, 1, 2), F.embedding(index, self.beta).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.modulation(semantic, tuple(x.shape[-2:]))
        return self.norm(x) * gamma.to(x.dtype) + beta.to(x.dtype)


class CLADEResBlock(nn.Module):
    """The SPADE residual block with CLADE layers: CLADE -> LeakyReLU -> conv3x3 (in -> mid) -> CLADE ->
    LeakyReLU -> conv3x3 (mid -> out), plus a shortcut (CLADE -> 1x1 conv, no bias, when in != out).

    mid = min(in, out); spectral norm on the block's convolutions; the same attribute names as
    `SPADEResBlock`. forward(x, semantic): semantic as `CLADE` takes it.
    """

    def __init__(self, in_channels: int, out_channels: int, semantic_channels: int, norm: str = "batch", spectral_norm: bool = True,
                 learned_shortcut: bool | None = None):
        super().__init__()
        mid = min(in_channels, out_channels)
        self.learned_shortcut = in_channels != out_channels if learned_shortcut is None else learned_shortcut
        self.norm_0 = CLADE(in_channels, semantic_channels, norm)
        self.conv_0 = maybe_spectral_norm(nn.Conv2d(in_channels, mid, 3, padding=1), spectral_norm)
        self.norm_1 = CLADE(mid, semantic_channels, norm)
        self.conv_1 = maybe_spectral_norm(nn.Conv2d(mid, out_channels, 3, padding=1), spectral_norm)
        if self.learned_shortcut:
            self.norm_shortcut = CLADE(in_channels, semantic_channels, norm)
            self.conv_shortcut = maybe_spectral_norm(nn.Conv2d(in_channels, out_channels, 1, bias=False), spectral_norm)

    def forward(self, x: torch.Tensor, semantic) -> torch.Tensor:
        shortcut = self.conv_shortcut(self.norm_shortcut(x, semantic)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, semantic), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, semantic), 0.2))
        return shortcut + dx
