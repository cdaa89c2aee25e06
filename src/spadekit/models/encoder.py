"""The image encoder for style-guided and multimodal synthesis (the VAE part of SPADE)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.config import EncoderConfig
from spadekit.layers.norms import feature_norm, maybe_spectral_norm


class ImageEncoder(nn.Module):
    """E(image [B,3,H,W] in [-1,1]) -> (mu, logvar), each [B, z_dim].

    Works for any input size: images are resized (bilinear) to input_size x input_size first.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        c = config
        if c.input_size % 2 ** c.num_layers:
            raise ValueError(f"encoder input_size {c.input_size} must be divisible by 2**num_layers = {2 ** c.num_layers}")
        layers = []
        channels = 3
        for i in range(c.num_layers):
            width = min(c.ndf * 2 ** i, 8 * c.ndf)
            conv = maybe_spectral_norm(nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=c.norm == "none"), c.spectral_norm)
            layers.append(nn.Sequential(conv, feature_norm(c.norm, width)))
            channels = width
        self.layers = nn.ModuleList(layers)
        grid = c.input_size // 2 ** c.num_layers
        self.fc_mu = nn.Linear(channels * grid * grid, c.z_dim)
        self.fc_logvar = nn.Linear(channels * grid * grid, c.z_dim)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.config.input_size
        if image.shape[-2:] != (size, size):
            image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
        x = image
        for i, layer in enumerate(self.layers):
            x = layer(x if i == 0 else F.leaky_relu(x, 0.2))
        x = F.leaky_relu(x, 0.2).flatten(1)
        return self.fc_mu(x), self.fc_logvar(x)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """z = mu + eps * exp(logvar / 2), eps ~ N(0, 1) unless given."""
    if eps is None:
        eps = torch.randn_like(mu)
    return eps * torch.exp(0.5 * logvar) + mu
