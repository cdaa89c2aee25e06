"""The multi-scale PatchGAN discriminator, returning every intermediate feature for feature matching."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.config import ModelConfig
from spadekit.layers.norms import feature_norm
from spadekit.layers.spectral_norm import maybe_spectral_norm


class PatchDiscriminator(nn.Module):
    """4x4 convs, padding 2: stride-2 layers, the last hidden one stride 1, then a 1-channel prediction.

    Widths ndf, 2ndf, ... capped at 512. Hidden layers: spectral norm + norm + LeakyReLU(0.2); the first
    conv has no norm, the last is a plain conv. Returns the output of every group.
    """

    def __init__(self, input_channels: int, ndf: int = 64, num_layers: int = 4, norm: str = "instance", spectral_norm: bool = True):
        super().__init__()
        groups = [nn.Sequential(nn.Conv2d(input_channels, ndf, 4, stride=2, padding=2), nn.LeakyReLU(0.2))]
        width = ndf
        for n in range(1, num_layers):
            previous, width = width, min(width * 2, 512)
            stride = 1 if n == num_layers - 1 else 2
            conv = maybe_spectral_norm(nn.Conv2d(previous, width, 4, stride=stride, padding=2, bias=norm == "none"), spectral_norm)
            groups.append(nn.Sequential(conv, feature_norm(norm, width), nn.LeakyReLU(0.2)))
        groups.append(nn.Sequential(nn.Conv2d(width, 1, 4, stride=1, padding=2)))
        self.groups = nn.ModuleList(groups)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for group in self.groups:
            x = group(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    """D(semantic, image) -> [scale][group] features; scale 0 at full size, each next one avg-pooled 3/2/1."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = c = config
        self.scales = nn.ModuleList(
            PatchDiscriminator(c.discriminator_input_channels, c.d_ndf, c.d_num_layers, c.d_norm, c.spectral_norm)
            for _ in range(c.d_num_scales)
        )

    def forward(self, semantic: torch.Tensor, image: torch.Tensor) -> list[list[torch.Tensor]]:
        x = torch.cat([semantic, image], dim=1)
        outputs = []
        for i, discriminator in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)
            outputs.append(discriminator(x))
        return outputs
