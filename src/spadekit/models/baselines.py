"""The paper's baselines, trainable with the same trainer by name (`ModelConfig.arch`).

- pix2pixhd: the encoder-decoder of pix2pixHD (the paper's improved "pix2pixHD++" when trained with
  our recipe: spectral norm, hinge loss, TTUR): the semantic map enters only at the input, through a
  7x7 conv and instance norm.
- concat: the SPADE decoder with plain normalisation, the semantic map concatenated to the input of
  every convolution instead of modulating the normalisation (the paper's ablation).

Both accept a `LabelMaps` as well as a dense semantic map, as every generator does. Lookups (see
`spadekit.layers.lookup`) replace only convolutions that read the one-hot map alone and carry no
spectral norm: the concat generator's input conv is one (its blocks' convs read features and the map
together, through spectral norm, so they take the dense map at each size); pix2pixhd has none (its
one conv over the map is spectral-normalised and runs once, at full resolution), so it takes the
dense map. `optimize_for_inference` still folds their spectral norm and stores their weights in the
compute dtype.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.config import ModelConfig
from spadekit.layers.lookup import LabelMaps
from spadekit.layers.norms import feature_norm
from spadekit.layers.spectral_norm import maybe_spectral_norm
from spadekit.models.generator import SPADEGenerator


class ResidualBlock(nn.Module):
    """pix2pixHD residual block: reflect-pad, conv3x3, norm, ReLU, reflect-pad, conv3x3, norm, + x."""

    def __init__(self, channels: int, norm: str = "instance", spectral_norm: bool = True):
        super().__init__()
        conv = lambda: maybe_spectral_norm(nn.Conv2d(channels, channels, 3, bias=norm == "none"), spectral_norm)  # noqa: E731
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), conv(), feature_norm(norm, channels), nn.ReLU(),
            nn.ReflectionPad2d(1), conv(), feature_norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Pix2PixHDGenerator(nn.Module):
    """Encoder-decoder: 7x7 conv, `num_downsample` stride-2 convs, `num_res_blocks` residual blocks,
    as many transposed convs, 7x7 conv to RGB. Width ngf doubling per downsample (capped at 16*ngf)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = c = config
        if c.use_vae:
            raise ValueError("the pix2pixhd baseline has no latent input (use_vae must be false)")
        norm = "instance" if c.norm in ("instance", "batch", "syncbatch") else c.norm
        sn = lambda m: maybe_spectral_norm(m, c.spectral_norm)  # noqa: E731
        width = lambda i: min(c.ngf * 2 ** i, 16 * c.ngf)  # noqa: E731
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), sn(nn.Conv2d(c.semantic_channels, c.ngf, 7, bias=False)), feature_norm(norm, c.ngf), nn.ReLU(),
        ]
        for i in range(c.num_downsample):
            layers += [sn(nn.Conv2d(width(i), width(i + 1), 3, stride=2, padding=1, bias=False)), feature_norm(norm, width(i + 1)), nn.ReLU()]
        layers += [ResidualBlock(width(c.num_downsample), norm, c.spectral_norm) for _ in range(c.num_res_blocks)]
        for i in reversed(range(c.num_downsample)):
            layers += [
                sn(nn.ConvTranspose2d(width(i + 1), width(i), 3, stride=2, padding=1, output_padding=1, bias=False)),
                feature_norm(norm, width(i)), nn.ReLU(),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c.ngf, 3, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    @property
    def size_multiple(self) -> int:
        """Output sides are multiples of this (each downsampling halves them, each transposed conv doubles)."""
        return 2 ** self.config.num_downsample

    def forward(self, semantic: torch.Tensor | LabelMaps, z: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(semantic, LabelMaps):
            semantic = semantic.dense()
        return self.net(semantic)


class ConcatResBlock(nn.Module):
    """Like SPADEResBlock, but norm is plain and the (resized) semantic map is concatenated to each conv input."""

    def __init__(self, in_channels: int, out_channels: int, semantic_channels: int, norm: str = "instance", spectral_norm: bool = True,
                 learned_shortcut: bool | None = None):
        super().__init__()
        mid = min(in_channels, out_channels)
        self.learned_shortcut = in_channels != out_channels if learned_shortcut is None else learned_shortcut
        sn = lambda m: maybe_spectral_norm(m, spectral_norm)  # noqa: E731
        plain = "instance" if norm == "instance" else "batch"
        self.norm_0 = feature_norm(plain, in_channels)
        self.conv_0 = sn(nn.Conv2d(in_channels + semantic_channels, mid, 3, padding=1))
        self.norm_1 = feature_norm(plain, mid)
        self.conv_1 = sn(nn.Conv2d(mid + semantic_channels, out_channels, 3, padding=1))
        if self.learned_shortcut:
            self.norm_shortcut = feature_norm(plain, in_channels)
            self.conv_shortcut = sn(nn.Conv2d(in_channels + semantic_channels, out_channels, 1, bias=False))

    def forward(self, x: torch.Tensor, semantic: torch.Tensor | LabelMaps) -> torch.Tensor:
        if isinstance(semantic, LabelMaps):
            semantic = semantic.dense(x.shape[-2:])
        elif semantic.shape[-2:] != x.shape[-2:]:
            semantic = F.interpolate(semantic, size=x.shape[-2:], mode="nearest")
        shortcut = self.conv_shortcut(torch.cat([self.norm_shortcut(x), semantic], 1)) if self.learned_shortcut else x
        dx = self.conv_0(torch.cat([F.leaky_relu(self.norm_0(x), 0.2), semantic], 1))
        dx = self.conv_1(torch.cat([F.leaky_relu(self.norm_1(dx), 0.2), semantic], 1))
        return shortcut + dx


class ConcatGenerator(SPADEGenerator):
    """The SPADE generator's layout with ConcatResBlocks (the paper's "concat" ablation)."""

    @staticmethod
    def make_block(in_channels: int, out_channels: int, learned_shortcut: bool, c: ModelConfig) -> nn.Module:
        return ConcatResBlock(in_channels, out_channels, c.semantic_channels, c.norm, c.spectral_norm, learned_shortcut)
