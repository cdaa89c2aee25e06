"""The image encoder for style-guided and multimodal synthesis (the VAE part of SPADE)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.config import ModelConfig
from spadekit.layers.norms import feature_norm
from spadekit.layers.spectral_norm import maybe_spectral_norm


class ImageEncoder(nn.Module):
    """E(image [B,3,H,W] in [-1,1]) -> (mu, logvar), each [B, z_dim].

    Works for any input size: images are resized (bilinear) to the config's encoder_input_size square
    first; encoder_num_layers stride-2 convs then leave a (input / 2**layers)^2 grid of
    min(2**i * encoder_ndf, 8 * encoder_ndf) channels for the two linear heads.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = c = config
        self.input_size, num_layers, ndf = c.encoder_input_size, c.encoder_num_layers, c.encoder_ndf
        if self.input_size % 2 ** num_layers:
            raise ValueError(f"encoder input size {self.input_size} must be divisible by 2**encoder_layers = {2 ** num_layers}")
        layers = []
        channels = 3
        for i in range(num_layers):
            width = min(ndf * 2 ** i, 8 * ndf)
            conv = maybe_spectral_norm(nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=c.encoder_norm == "none"), c.spectral_norm)
            layers.append(nn.Sequential(conv, feature_norm(c.encoder_norm, width)))
            channels = width
        self.layers = nn.ModuleList(layers)
        grid = self.input_size // 2 ** num_layers
        self.fc_mu = nn.Linear(channels * grid * grid, c.z_dim)
        self.fc_logvar = nn.Linear(channels * grid * grid, c.z_dim)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.input_size
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
