"""A small 4x super-resolution network that works at the input's resolution and ends in a pixel shuffle.

Every convolution runs on the low-resolution grid (the cost grows with the input's pixels, not the
output's); the last one predicts scale**2 sub-pixels per channel, which the pixel shuffle lays out on
the large grid, added to a bilinear enlargement of the input (so the network learns only the detail).

Variants (UpscalerConfig.arch):
- "compact": a plain chain of 3x3 convolutions with PReLU (Real-ESRGAN's SRVGG-compact idea);
- "residual": residual blocks of two 3x3 convolutions, as EDSR without batch norm, scaled by 0.2 as in
  ESRGAN's residual-in-residual blocks, so deep stacks train from the start.

    model = Upscaler(UpscalerConfig(channels=48, num_convs=12))
    large = model(small)                       # [B,3,H,W] in [-1,1] -> [B,3,4H,4W]
    model.save_pretrained("upscaler-x4");  Upscaler.from_pretrained("upscaler-x4")
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from spadekit import SpadekitError
from spadekit.models.folder import load_network_folder, save_network_folder


@dataclass
class UpscalerConfig:
    """arch: "compact" or "residual" (module docstring); channels: feature width; num_convs: 3x3
    convolutions between the first and the last (a residual block holds two); scale: 2 or 4."""

    arch: str = "compact"
    channels: int = 48
    num_convs: int = 12
    scale: int = 4

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise SpadekitError(f"upscaler arch {self.arch!r} is unknown; choose one of {', '.join(sorted(ARCHS))}")
        if self.scale not in (2, 4):
            raise SpadekitError(f"upscaler scale must be 2 or 4, got {self.scale}")
        if self.channels < 1 or self.num_convs < 0:
            raise SpadekitError(f"upscaler channels must be positive and num_convs non-negative, got {self.channels}, {self.num_convs}")
        if self.arch == "residual" and self.num_convs % 2:
            raise SpadekitError(f"a residual upscaler needs an even num_convs (two a block), got {self.num_convs}")


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, residual_scale: float = 0.2):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.residual_scale = residual_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual_scale * self.conv2(F.leaky_relu(self.conv1(x), 0.2))


def _compact_body(channels: int, num_convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(channels)]
    return nn.Sequential(*layers)


def _residual_body(channels: int, num_convs: int) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlock(channels) for _ in range(num_convs // 2)])


ARCHS = {"compact": _compact_body, "residual": _residual_body}


class Upscaler(nn.Module):
    """forward(images [B,3,H,W] in [-1,1]) -> [B,3,scale*H,scale*W] (not clamped)."""

    def __init__(self, config: UpscalerConfig | None = None):
        super().__init__()
        self.config = config = config or UpscalerConfig()
        self.head = nn.Sequential(nn.Conv2d(3, config.channels, 3, padding=1), nn.PReLU(config.channels))
        self.body = ARCHS[config.arch](config.channels, config.num_convs)
        self.tail = nn.Conv2d(config.channels, 3 * config.scale**2, 3, padding=1)
        # The tail starts small, so an untrained model is the bilinear enlargement.
        nn.init.normal_(self.tail.weight, std=1e-3)
        nn.init.zeros_(self.tail.bias)

    @property
    def receptive_radius(self) -> int:
        """Input pixels on each side that reach one output pixel: one per 3x3 convolution."""
        return self.config.num_convs + 2

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        detail = F.pixel_shuffle(self.tail(self.body(self.head(images))), self.config.scale)
        base = F.interpolate(images, scale_factor=self.config.scale, mode="bilinear", align_corners=False)
        return base + detail

    def save_pretrained(self, directory: str | os.PathLike, extra: dict | None = None) -> Path:
        """Write config.json (the config, plus `extra` fields such as the training photos) and model.safetensors."""
        return save_network_folder(directory, self.state_dict(), {**asdict(self.config), **(extra or {})})

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> Upscaler:
        """The upscaler saved in `directory` by save_pretrained, in eval mode."""
        def build(fields: dict) -> Upscaler:
            return cls(UpscalerConfig(**{k: fields[k] for k in UpscalerConfig.__dataclass_fields__ if k in fields}))

        model, state = load_network_folder(directory, "an upscaler", "give the bundled 'upscaler-x4' or a folder "
                                           "written by tools/train_upscaler.py", build)
        model.load_state_dict(state)
        return model.to(map_location).eval()
