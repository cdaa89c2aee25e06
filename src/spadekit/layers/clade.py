"""CLADE (Tan et al., 2021): class-adaptive normalisation.

SPADE predicts a scale and bias for every pixel with convolutions over the semantic map; CLADE
looks them up per class in a learned table, so the modulation costs a gather instead of three
convolutions, and a label-index map is its natural input.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.layers.norms import param_free_norm


class CLADE(nn.Module):
    """out = norm(x) * gamma[class] + beta[class], gamma and beta rows of learned [N, channels] tables.

    channels: channels of x. semantic_channels: N, the rows of the tables (classes + dontcare, and the
    instance edge when the one-hot map carries one). norm: parameter-free norm name (batch,
    syncbatch, instance). The tables start at gamma = 1, beta = 0: plain normalisation.

    forward(x, semantic): semantic is either a float map [B,N,h,w] (one-hot, or soft: each pixel's
    gamma and beta are then the map-weighted sums of rows) or an integer label-index map [B,1,h,w]
    or [B,h,w] of rows (a lookup; the same result as its one-hot map). It is resized to x's size
    with nearest neighbours.
    """

    def __init__(self, channels: int, semantic_channels: int, norm: str = "batch"):
        super().__init__()
        self.norm = param_free_norm(norm, channels)
        self.gamma = nn.Parameter(torch.ones(semantic_channels, channels))
        self.beta = nn.Parameter(torch.zeros(semantic_channels, channels))

    def modulation(self, semantic: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma, beta) maps [B, channels, *size] for a float or label-index semantic map."""
        if semantic.is_floating_point():
            if semantic.shape[1] != self.gamma.shape[0]:
                raise ValueError(f"CLADE has {self.gamma.shape[0]} class rows but the semantic map has {semantic.shape[1]} channels")
            if semantic.shape[-2:] != size:
                semantic = F.interpolate(semantic, size=size, mode="nearest")
            gamma = torch.einsum("bnhw,nc->bchw", semantic, self.gamma.to(semantic.dtype))
            beta = torch.einsum("bnhw,nc->bchw", semantic, self.beta.to(semantic.dtype))
            return gamma, beta
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
